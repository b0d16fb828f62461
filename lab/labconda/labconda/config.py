"""condarc search path, parsing and merging (conda/common/configuration.py rules).

- Sources low -> high precedence: /etc/conda, /var/lib/conda, $CONDA_ROOT (the
  base prefix), $XDG_CONFIG_HOME/conda, ~/.config/conda, ~/.conda (each:
  .condarc, condarc, condarc.d/*.yml|yaml), ~/.condarc, $CONDA_PREFIX/...,
  $CONDARC, then CONDA_* environment variables.
- Scalars: last wins. Sequences: higher-precedence entries first, duplicates
  dropped; '#!top'/'#!bottom' move an item. Maps: merged by key.
- '#!final' on a key line (env vars: '!important' suffix): sources of higher
  precedence are ignored for that key.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from .errors import CondaError

SEQ, MAP, SCALAR = "seq", "map", "scalar"

DEFAULT_CHANNELS = ["https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"]

# name -> (kind, default). Defaults that depend on the root prefix are filled in Config.
PARAMETERS: dict[str, tuple[str, object]] = {
    "add_anaconda_token": (SCALAR, True),
    "add_pip_as_python_dependency": (SCALAR, True),
    "aggressive_update_packages": (SEQ, []),
    "allow_conda_downgrades": (SCALAR, False),
    "allow_cycles": (SCALAR, True),
    "allow_non_channel_urls": (SCALAR, False),
    "allow_softlinks": (SCALAR, False),
    "allowlist_channels": (SEQ, []),
    "always_copy": (SCALAR, False),
    "always_softlink": (SCALAR, False),
    "always_yes": (SCALAR, None),
    "auto_activate": (SCALAR, True),
    "auto_stack": (SCALAR, 0),
    "auto_update_conda": (SCALAR, True),
    "changeps1": (SCALAR, True),
    "channel_alias": (SCALAR, "https://conda.anaconda.org"),
    "channel_priority": (SCALAR, "flexible"),
    "channel_settings": (SEQ, []),
    "channels": (SEQ, []),
    "client_ssl_cert": (SCALAR, None),
    "client_ssl_cert_key": (SCALAR, None),
    "create_default_packages": (SEQ, []),
    "custom_channels": (MAP, {}),
    "custom_multichannels": (MAP, {}),
    "default_channels": (SEQ, list(DEFAULT_CHANNELS)),
    "default_threads": (SCALAR, None),
    "denylist_channels": (SEQ, []),
    "envs_dirs": (SEQ, []),
    "env_prompt": (SCALAR, "({default_env}) "),
    "extra_safety_checks": (SCALAR, False),
    "json": (SCALAR, False),
    "local_repodata_ttl": (SCALAR, 1),
    "no_lock": (SCALAR, False),
    "notify_outdated_conda": (SCALAR, True),
    "offline": (SCALAR, False),
    "override_channels_enabled": (SCALAR, True),
    "path_conflict": (SCALAR, "clobber"),
    "pinned_packages": (SEQ, []),
    "pip_interop_enabled": (SCALAR, False),
    "pkgs_dirs": (SEQ, []),
    "proxy_servers": (MAP, {}),
    "quiet": (SCALAR, False),
    "remote_backoff_factor": (SCALAR, 1),
    "remote_connect_timeout_secs": (SCALAR, 9.15),
    "remote_max_retries": (SCALAR, 3),
    "remote_read_timeout_secs": (SCALAR, 60.0),
    "repodata_threads": (SCALAR, None),
    "report_errors": (SCALAR, None),
    "rollback_enabled": (SCALAR, True),
    "safety_checks": (SCALAR, "warn"),
    "shortcuts": (SCALAR, True),
    "show_channel_urls": (SCALAR, None),
    "solver": (SCALAR, "libmamba"),
    "ssl_verify": (SCALAR, True),
    "target_prefix_override": (SCALAR, ""),
    "unsatisfiable_hints": (SCALAR, True),
    "use_index_cache": (SCALAR, False),
    "use_local": (SCALAR, False),
    "use_only_tar_bz2": (SCALAR, None),
    "verbosity": (SCALAR, 0),
}
ALIASES = {"auto_activate_base": "auto_activate", "yes": "always_yes", "whitelist_channels": "allowlist_channels"}
# CONDA_* variables whose sequence values use another delimiter than ','
ENV_DELIMS = {"envs_dirs": os.pathsep}


class MultipleKeysError(CondaError):
    def __init__(self, source, keys, preferred_key):
        self.source = source
        self.keys = keys
        self.preferred_key = preferred_key
        super().__init__(f"Multiple aliased keys in file {source}:\n"
                         + "".join(f"  - {k}\n" for k in keys)
                         + f"Must declare only one. Prefer '{preferred_key}'")


class ConfigParseError(CondaError):
    pass


def expand(p: str) -> str:
    return os.path.abspath(os.path.expanduser(os.path.expandvars(p)))


def search_path(root_prefix: str, target_prefix: str | None = None) -> list[str]:
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    dirs = ["/etc/conda", "/var/lib/conda", root_prefix, os.path.join(xdg, "conda"),
            os.path.join(home, ".config", "conda"), os.path.join(home, ".conda")]
    out: list[str] = []

    def add_dir(d):
        out.extend([os.path.join(d, ".condarc"), os.path.join(d, "condarc"), os.path.join(d, "condarc.d")])

    for d in dirs:
        add_dir(d)
    out.append(os.path.join(home, ".condarc"))
    active = os.environ.get("CONDA_PREFIX")
    if active:
        add_dir(active)
    if os.environ.get("CONDARC"):
        out.append(os.environ["CONDARC"])
    seen, uniq = set(), []
    for p in out:
        ap = os.path.abspath(p)
        if ap not in seen:
            seen.add(ap)
            uniq.append(ap)
    return uniq


def _files_of(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(path, f) for f in os.listdir(path)
                      if f.endswith((".yml", ".yaml")) and os.path.isfile(os.path.join(path, f)))
    if os.path.isfile(path):
        return [path]
    return []


@dataclass
class Source:
    path: str
    data: dict
    final: set = field(default_factory=set)          # keys marked #!final / !important
    markers: dict = field(default_factory=dict)      # (key, item) -> 'top' | 'bottom'


def _parse_markers(text: str) -> tuple[set, dict]:
    final, markers = set(), {}
    key = None
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$", line)
        if m:
            key = ALIASES.get(m.group(1), m.group(1))
            if "#!final" in m.group(2):
                final.add(key)
            continue
        m = re.match(r"^\s*-\s*(.+?)\s*#!(top|bottom)\s*$", line)
        if m and key:
            item = m.group(1).strip().strip("'\"")
            markers[(key, item)] = m.group(2)
    return final, markers


def load_source(path: str) -> Source | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigParseError(f"Unable to parse YAML file {path}\n{e}")
    if not isinstance(data, dict):
        raise ConfigParseError(f"Invalid configuration file {path}: expected a mapping")
    present = [k for k in data if k in ALIASES or k in ALIASES.values()]
    for canon in set(ALIASES.values()):
        keys = [k for k in present if ALIASES.get(k, k) == canon]
        if len(keys) > 1:
            raise MultipleKeysError(path, keys, canon)
    data = {ALIASES.get(k, k): v for k, v in data.items()}
    final, markers = _parse_markers(text)
    return Source(path, data, final, markers)


def env_source() -> Source:
    data, final = {}, set()
    names = {n.upper(): n for n in PARAMETERS}
    names.update({a.upper(): c for a, c in ALIASES.items()})
    for var, val in os.environ.items():
        if not var.startswith("CONDA_"):
            continue
        key = names.get(var[6:])
        if not key:
            continue
        if val.endswith("!important"):
            val = val[: -len("!important")]
            final.add(key)
        kind = PARAMETERS[key][0]
        if kind == SEQ:
            delim = ENV_DELIMS.get(key, ",")
            data[key] = [v.strip() for v in val.split(delim) if v.strip()]
        elif kind == MAP:
            continue
        else:
            data[key] = yaml.safe_load(val) if val else None
    return Source("envvars", data, final, {})


def _merge(kind: str, key: str, sources: list[Source]):
    relevant = []
    for s in sources:
        if key in s.data and s.data[key] is not None or (kind == SCALAR and key in s.data):
            relevant.append(s)
            if key in s.final:
                break
    if not relevant:
        return None, False
    if kind == SCALAR:
        return relevant[-1].data[key], True
    if kind == MAP:
        out: dict = {}
        for s in relevant:
            v = s.data[key]
            if isinstance(v, dict):
                out.update(v)
        return out, True
    top, mid, bottom = [], [], []
    for s in reversed(relevant):
        v = s.data[key]
        if not isinstance(v, list):
            v = [v]
        for item in v:
            where = s.markers.get((key, str(item)))
            (top if where == "top" else bottom if where == "bottom" else mid).append(item)
    out, seen = [], set()
    for item in top + mid + bottom:
        h = str(item)
        if h not in seen:
            seen.add(h)
            out.append(item)
    return out, True


class Config:
    def __init__(self, root_prefix: str | None = None, target_prefix: str | None = None):
        self.root_prefix = os.path.abspath(root_prefix or sys.prefix)
        self.files: list[str] = []
        sources = []
        for p in search_path(self.root_prefix, target_prefix):
            for f in _files_of(p):
                s = load_source(f)
                if s is not None:
                    sources.append(s)
                    self.files.append(f)
        sources.append(env_source())
        self.sources = sources
        self.values: dict[str, object] = {}
        for key, (kind, default) in PARAMETERS.items():
            v, found = _merge(kind, key, sources)
            self.values[key] = v if found else (list(default) if isinstance(default, list)
                                                else dict(default) if isinstance(default, dict) else default)
        self.values["channel_alias"] = str(self.values["channel_alias"]).rstrip("/")

    # ---- derived values -------------------------------------------------
    @property
    def root_writable(self) -> bool:
        return _dir_writable(self.root_prefix)

    @property
    def pkgs_dirs(self) -> list[str]:
        conf = self.values["pkgs_dirs"]
        if conf:
            dirs = [expand(str(p)) for p in conf]
        else:
            dirs = [os.path.join(self.root_prefix, "pkgs"), expand("~/.conda/pkgs")]
        return _uniq(dirs)

    @property
    def envs_dirs(self) -> list[str]:
        fixed = [os.path.join(self.root_prefix, "envs"), expand("~/.conda/envs")]
        if not self.root_writable:
            fixed.reverse()
        return _uniq([expand(str(p)) for p in self.values["envs_dirs"]] + fixed)

    def first_writable_envs_dir(self) -> str:
        for d in self.envs_dirs:
            if _dir_writable(d) or (not os.path.exists(d) and _creatable(d)):
                return d
        return self.envs_dirs[0]

    def first_writable_pkgs_dir(self) -> str:
        for d in self.pkgs_dirs:
            if pkgs_dir_writable(d) or (not os.path.exists(d) and _creatable(d)):
                return d
        raise CondaError("No writeable pkgs directories configured.\n"
                         + "".join(f"  - {d}\n" for d in self.pkgs_dirs))

    @property
    def channel_priority(self) -> str:
        return str(self.values["channel_priority"])

    def __getitem__(self, key):
        return self.values[key]


def _uniq(items):
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _dir_writable(d: str) -> bool:
    return os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)


def _creatable(d: str) -> bool:
    p = os.path.dirname(os.path.abspath(d))
    while p and not os.path.exists(p):
        p = os.path.dirname(p)
    return os.access(p, os.W_OK | os.X_OK)


def pkgs_dir_writable(d: str) -> bool:
    """conda: a package cache is writable only if it holds a writable urls.txt."""
    urls = os.path.join(d, "urls.txt")
    if os.path.isfile(urls):
        return os.access(urls, os.W_OK)
    return _dir_writable(d) and not os.path.exists(urls)


# ---- channel objects as `conda config --show` prints them --------------------

def channel_object(url_or_name: str, name: str | None = None) -> dict:
    u = urlparse(url_or_name)
    if u.scheme:
        location = u.netloc + u.path.rstrip("/")
        chan_name = name
        if name is None:
            # conda splits "repo.anaconda.com/pkgs/main" into location + name
            parts = (u.path.strip("/")).split("/") if u.path.strip("/") else []
            if parts:
                chan_name = "/".join(parts[-2:]) if len(parts) >= 2 and parts[0] == "pkgs" else parts[-1]
                loc_parts = u.path.strip("/").split("/")[: len(parts) - len(chan_name.split("/"))]
                location = u.netloc + ("/" + "/".join(loc_parts) if loc_parts else "")
        return {"auth": None, "location": location, "name": chan_name, "package_filename": None,
                "platform": None, "scheme": u.scheme, "token": None}
    return {"auth": None, "location": None, "name": url_or_name, "package_filename": None,
            "platform": None, "scheme": None, "token": None}


def show_value(cfg: Config, key: str):
    """A parameter's value in the form `conda config --show --json` prints it."""
    if key == "pkgs_dirs":
        return cfg.pkgs_dirs
    if key == "envs_dirs":
        return cfg.envs_dirs
    v = cfg.values[key]
    if key == "channel_alias":
        o = channel_object(v)
        o["name"] = None
        o["location"] = urlparse(v).netloc + urlparse(v).path.rstrip("/")
        return o
    if key == "default_channels":
        return [channel_object(str(c)) for c in v]
    if key == "custom_channels":
        out = {}
        for name, base in (v or {}).items():
            o = channel_object(str(base).rstrip("/"), name=name)
            o["location"] = urlparse(str(base)).netloc + urlparse(str(base)).path.rstrip("/")
            out[name] = o
        return out
    return v
