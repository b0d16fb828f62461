"""Environments, package cache, solve and link on top of py-rattler."""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import __version__
from .channels import canonical_name, resolve_channels
from .config import Config, pkgs_dir_writable
from .errors import (
    CondaEnvException,
    CondaError,
    CondaHTTPError,
    CondaValueError,
    LibMambaUnsatisfiableError,
    NoChannelsConfiguredError,
    PackagesNotFoundInChannelsError,
)

PLATFORM = "linux-64"
CONDA_VERSION = __version__


def run_async(coro):
    return asyncio.run(coro)


# ----------------------------------------------------------------------------
# environments
# ----------------------------------------------------------------------------

def is_conda_env(prefix: str) -> bool:
    return os.path.isfile(os.path.join(prefix, "conda-meta", "history"))


def environments_txt() -> str:
    return os.path.join(os.path.expanduser("~"), ".conda", "environments.txt")


def _read_env_txt() -> list[str]:
    try:
        return [ln.strip() for ln in Path(environments_txt()).read_text().splitlines() if ln.strip()]
    except OSError:
        return []


def register_env(prefix: str) -> None:
    prefix = os.path.abspath(prefix)
    envs = _read_env_txt()
    if prefix in envs:
        return
    try:
        os.makedirs(os.path.dirname(environments_txt()), exist_ok=True)
        with open(environments_txt(), "a") as f:
            f.write(prefix + "\n")
    except OSError:
        pass


def unregister_env(prefix: str) -> None:
    prefix = os.path.abspath(prefix)
    envs = _read_env_txt()
    if prefix not in envs:
        return
    try:
        Path(environments_txt()).write_text("".join(e + "\n" for e in envs if e != prefix))
    except OSError:
        pass


def list_envs(cfg: Config) -> list[str]:
    found = set()
    for e in _read_env_txt():
        if is_conda_env(e):
            found.add(os.path.abspath(e))
    for d in cfg.envs_dirs:
        try:
            for n in os.listdir(d):
                p = os.path.join(d, n)
                if is_conda_env(p):
                    found.add(os.path.abspath(p))
        except OSError:
            pass
    root = cfg.root_prefix
    found.discard(root)
    return ([root] if is_conda_env(root) or os.path.isdir(os.path.join(root, "conda-meta")) else []) + sorted(found)


def env_name(cfg: Config, prefix: str) -> str:
    if os.path.abspath(prefix) == cfg.root_prefix:
        return "base"
    if os.path.dirname(os.path.abspath(prefix)) in cfg.envs_dirs:
        return os.path.basename(prefix)
    return ""


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")


def env_details(cfg: Config, prefix: str) -> dict:
    hist = os.path.join(prefix, "conda-meta", "history")
    created = last = None
    try:
        st = os.stat(hist)
        last = _iso(st.st_mtime)
        with open(hist) as f:
            for ln in f:
                m = re.match(r"==> (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) <==", ln)
                if m:
                    created = _iso(time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
                    break
        created = created or _iso(st.st_ctime)
    except OSError:
        pass
    active = os.environ.get("CONDA_PREFIX")
    return {
        "name": env_name(cfg, prefix),
        "created": created,
        "last_modified": last,
        "active": bool(active) and os.path.abspath(active) == os.path.abspath(prefix),
        "base": os.path.abspath(prefix) == cfg.root_prefix,
        "frozen": os.path.exists(os.path.join(prefix, "conda-meta", "frozen")),
        "writable": os.access(prefix, os.W_OK),
    }


def find_env_by_name(cfg: Config, name: str) -> str:
    if name in ("base", "root"):
        return cfg.root_prefix
    for d in cfg.envs_dirs:
        p = os.path.join(d, name)
        if os.path.isdir(p):
            return p
    return os.path.join(cfg.first_writable_envs_dir(), name)


# ----------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------

def rec_name(r) -> str:
    return r.name.normalized


def dist_name(r) -> str:
    return f"{rec_name(r)}-{r.version}-{r.build}"


def link_entry(cfg: Config, r) -> dict:
    base = (r.channel or "").rstrip("/")
    return {
        "base_url": base,
        "build_number": r.build_number,
        "build_string": str(r.build),
        "channel": canonical_name(cfg, base) if base else "",
        "dist_name": dist_name(r),
        "name": rec_name(r),
        "platform": r.subdir,
        "version": str(r.version),
    }


def fetch_entry(cfg: Config, r) -> dict:
    d = json.loads(r.to_json())
    d.update(link_entry(cfg, r))
    d["build"] = str(r.build)
    d["subdir"] = r.subdir
    d["channel"] = link_entry(cfg, r)["channel"]
    return d


# ----------------------------------------------------------------------------
# package cache
# ----------------------------------------------------------------------------

def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for c in iter(lambda: f.read(1 << 20), b""):
            h.update(c)
    return h.hexdigest()


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for c in iter(lambda: f.read(1 << 20), b""):
            h.update(c)
    return h.hexdigest()


def prepare_pkgs_dir(d: str) -> None:
    os.makedirs(d, exist_ok=True)
    urls = os.path.join(d, "urls.txt")
    if not os.path.exists(urls):
        open(urls, "a").close()


def _download(url: str, dest: str) -> None:
    part = dest + ".partial"
    t0 = time.time()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except urllib.error.HTTPError as e:
        _unlink(part)
        raise CondaHTTPError(f"An HTTP error occurred when trying to retrieve this URL.\n{e}", url,
                             e.code, str(e.reason).upper(), f"{time.time() - t0:.2f}s")
    except (urllib.error.URLError, OSError) as e:
        _unlink(part)
        raise CondaHTTPError(f"An HTTP error occurred when trying to retrieve this URL.\n"
                             f"HTTP errors are often intermittent, and a simple retry will get you on your way.\n{e}",
                             url, "000", "CONNECTION FAILED", f"{time.time() - t0:.2f}s")
    os.replace(part, dest)


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _write_cache_lock(pkgs_dir: str, dist: str, sha256_hex: str) -> None:
    # rattler's cache entry lock file: 8-byte big-endian revision + sha256
    with open(os.path.join(pkgs_dir, dist + ".lock"), "wb") as f:
        f.write(struct.pack(">Q", 1) + bytes.fromhex(sha256_hex))


def ensure_in_cache(pkgs_dir: str, url: str, fn: str, sha256: str | None, md5: str | None,
                    record_json: dict | None = None) -> tuple[str, bool]:
    """Make <pkgs>/<dist>/ (extracted) and <pkgs>/<fn> exist. Returns (dist dir, downloaded?)."""
    from rattler.package_streaming import extract

    dist = re.sub(r"(\.conda|\.tar\.bz2)$", "", fn)
    ddir = os.path.join(pkgs_dir, dist)
    tarball = os.path.join(pkgs_dir, fn)
    rr = os.path.join(ddir, "info", "repodata_record.json")
    if os.path.isfile(rr) and os.path.isfile(os.path.join(ddir, "info", "index.json")):
        try:
            have = json.loads(Path(rr).read_text())
            if (sha256 and have.get("sha256") == sha256) or (not sha256 and md5 and have.get("md5") == md5):
                if record_json and not os.path.exists(os.path.join(pkgs_dir, dist + ".lock")):
                    _write_cache_lock(pkgs_dir, dist, have["sha256"])
                return ddir, False
        except (OSError, ValueError, KeyError):
            pass
    downloaded = False
    ok = False
    if os.path.isfile(tarball):
        ok = (sha256 and _sha256(tarball) == sha256) or (not sha256 and md5 and _md5(tarball) == md5) \
             or (not sha256 and not md5)
    if not ok:
        _download(url, tarball)
        downloaded = True
        if sha256 and _sha256(tarball) != sha256:
            got = _sha256(tarball)
            _unlink(tarball)
            raise CondaError(f"Conda detected a mismatch between the expected content and downloaded content\n"
                             f"for url '{url}'.\n  download saved to: {tarball}\n"
                             f"  expected sha256: {sha256}\n  actual sha256: {got}\n")
        if md5 and not sha256 and _md5(tarball) != md5:
            _unlink(tarball)
            raise CondaError(f"Conda detected a mismatch between the expected content and downloaded content\n"
                             f"for url '{url}'.")
        with open(os.path.join(pkgs_dir, "urls.txt"), "a") as f:
            f.write(url + "\n")
    tmp = ddir + f".extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    sha_b, md5_b = extract(tarball, tmp)
    shutil.rmtree(ddir, ignore_errors=True)
    os.rename(tmp, ddir)
    rec = dict(record_json or {})
    if not rec:
        rec = json.loads(Path(ddir, "info", "index.json").read_text())
        rec.update(fn=fn, url=url, channel=url.rsplit("/", 2)[0])
    rec.update(sha256=sha_b.hex(), md5=md5_b.hex(), size=os.path.getsize(tarball))
    Path(rr).write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    _write_cache_lock(pkgs_dir, dist, sha_b.hex())
    return ddir, downloaded


# ----------------------------------------------------------------------------
# solving
# ----------------------------------------------------------------------------

def make_gateway(cfg: Config, pkgs_dir: str):
    from rattler import Gateway, SourceConfig
    action = "force-cache-only" if cfg["offline"] else "cache-or-fetch"
    return Gateway(cache_dir=os.path.join(pkgs_dir, "cache"),
                   default_config=SourceConfig(sharded_enabled=False, cache_action=action),
                   show_progress=False)


def solve(cfg: Config, channel_urls: list[str], specs: list[str], pkgs_dir: str):
    import rattler
    from rattler import Channel, ChannelPriority, MatchSpec, VirtualPackage

    if not channel_urls:
        raise NoChannelsConfiguredError()
    gateway = make_gateway(cfg, pkgs_dir)
    channels = [Channel(u) for u in channel_urls]
    mspecs = []
    for s in specs:
        try:
            mspecs.append(MatchSpec(s))
        except Exception as e:
            raise CondaValueError(f"Invalid spec '{s}': {e}")

    async def _query():
        return await gateway.query(channels, [PLATFORM, "noarch"], mspecs, recursive=False)

    try:
        found = run_async(_query())
    except Exception as e:  # repodata fetch failures
        url = channel_urls[0]
        m = re.search(r"(https?://\S+|file://\S+)", str(e))
        raise CondaHTTPError(f"An HTTP error occurred when trying to retrieve this URL.\n{e}",
                             m.group(1) if m else url)
    flat = [r for per_channel in found for r in per_channel]
    missing = [s for s, m in zip(specs, mspecs) if not any(m.matches(r) for r in flat)]
    if missing:
        raise PackagesNotFoundInChannelsError(missing, channel_urls)
    prio = ChannelPriority.Strict if cfg.channel_priority == "strict" else ChannelPriority.Disabled
    try:
        vpkgs = VirtualPackage.detect()
    except Exception:
        vpkgs = []
    try:
        recs = run_async(rattler.solve(channels, mspecs, gateway=gateway, platforms=[PLATFORM, "noarch"],
                                       virtual_packages=vpkgs, channel_priority=prio))
    except Exception as e:
        raise LibMambaUnsatisfiableError(str(e))
    return recs


# ----------------------------------------------------------------------------
# transactions
# ----------------------------------------------------------------------------

def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def cmd_line(argv: list[str] | None = None) -> str:
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = os.path.join(os.path.abspath(sys.prefix), "bin", "conda") if argv[0].endswith(
            ("conda", "__main__.py", "-m")) else argv[0]
    return " ".join(argv)


def append_history(cfg: Config, prefix: str, linked: list, unlinked: list, specs: list[str],
                   kind: str = "update", cmd: str | None = None) -> None:
    lines = [f"==> {_now()} <==", f"# cmd: {cmd or cmd_line()}", f"# conda version: {CONDA_VERSION}"]
    for r in sorted(unlinked, key=rec_name):
        lines.append(f"-{canonical_name(cfg, r.channel or '')}/{r.subdir}::{dist_name(r)}")
    for r in sorted(linked, key=rec_name):
        lines.append(f"+{canonical_name(cfg, r.channel or '')}/{r.subdir}::{dist_name(r)}")
    if specs is not None:
        lines.append(f"# {kind} specs: {[str(s) for s in specs]!r}")
    os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
    with open(os.path.join(prefix, "conda-meta", "history"), "a") as f:
        f.write("\n".join(lines) + "\n")


def fetch_all(cfg: Config, records: list, pkgs_dir: str) -> list:
    """Download + extract every record into pkgs_dir; return those downloaded."""
    prepare_pkgs_dir(pkgs_dir)
    fetched = []
    for r in records:
        d = json.loads(r.to_json())
        _, downloaded = ensure_in_cache(pkgs_dir, r.url, r.file_name, d.get("sha256"), d.get("md5"), d)
        if downloaded:
            fetched.append(r)
    return fetched


def link_records(prefix: str, records: list, pkgs_dir: str, specs: list[str], installed=None) -> None:
    import rattler
    from rattler import MatchSpec

    had_tag = os.path.exists(os.path.join(prefix, "CACHEDIR.TAG"))
    req = []
    for s in specs:
        try:
            req.append(MatchSpec(s)._match_spec)  # py-rattler 0.28 wants the FFI object here
        except Exception:
            pass
    run_async(rattler.install(records, prefix, cache_dir=pkgs_dir, installed_packages=installed,
                              execute_link_scripts=False, show_progress=False, requested_specs=req))
    if not had_tag:
        _unlink(os.path.join(prefix, "CACHEDIR.TAG"))


def installed_records(prefix: str) -> list:
    from rattler import PrefixRecord
    out = []
    d = os.path.join(prefix, "conda-meta")
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        if f.endswith(".json"):
            try:
                out.append(PrefixRecord.from_path(os.path.join(d, f)))
            except Exception:
                pass
    return out


# ----------------------------------------------------------------------------
# environment files
# ----------------------------------------------------------------------------

class EnvSpec:
    def __init__(self):
        self.name = None
        self.prefix = None
        self.channels: list[str] = []
        self.specs: list[str] = []
        self.pip: list[str] = []
        self.variables: dict = {}
        self.explicit: list[str] | None = None  # URLs (with #hash fragments)
        self.path = None


def read_env_file(path: str) -> EnvSpec:
    import yaml

    from .errors import EnvironmentFileNotFound

    if not os.path.isfile(path):
        raise EnvironmentFileNotFound(os.path.abspath(path))
    text = Path(path).read_text()
    spec = EnvSpec()
    spec.path = os.path.abspath(path)
    lines = [ln.strip() for ln in text.splitlines()]
    if "@EXPLICIT" in lines:
        spec.explicit = [ln for ln in lines[lines.index("@EXPLICIT") + 1:] if ln and not ln.startswith("#")]
        return spec
    if path.endswith((".yml", ".yaml")) or re.search(r"^dependencies\s*:", text, re.M):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise CondaValueError(f"Invalid environment file '{path}':\n{e}")
        if not isinstance(data, dict):
            raise CondaValueError(f"Invalid environment file '{path}'")
        spec.name = data.get("name")
        spec.prefix = data.get("prefix")
        spec.channels = [str(c) for c in (data.get("channels") or [])]
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict):
                spec.pip.extend(str(x) for x in (dep.get("pip") or []))
            else:
                spec.specs.append(str(dep).strip())
        spec.variables = dict(data.get("variables") or {})
        if spec.pip and not any(re.match(r"^pip(\s|=|<|>|!|$)", s) for s in spec.specs):
            spec.specs.append("pip")
        return spec
    spec.specs = [ln for ln in lines if ln and not ln.startswith("#")]
    return spec


async def _records_from_archives(paths_urls: list[tuple[str, str]]):
    from rattler import RepoDataRecord
    out = []
    for path, url in paths_urls:
        r = await RepoDataRecord.from_package_archive(path)
        r.url = url
        r.channel = url.rsplit("/", 2)[0]
        out.append(r)
    return out


def explicit_records(cfg: Config, entries: list[str], pkgs_dir: str) -> tuple[list, list]:
    """Download @EXPLICIT entries into the cache; return (records, fetched)."""
    prepare_pkgs_dir(pkgs_dir)
    todo, fetched_urls = [], set()
    for e in entries:
        url, _, frag = e.partition("#")
        sha = md5 = None
        if frag.startswith("sha256:"):
            sha = frag[7:]
        elif frag:
            md5 = frag
        if url.startswith("/"):
            url = "file://" + url
        fn = url.rsplit("/", 1)[-1]
        _, dl = ensure_in_cache(pkgs_dir, url, fn, sha, md5)
        if dl:
            fetched_urls.add(url)
        todo.append((os.path.join(pkgs_dir, fn), url))
    recs = run_async(_records_from_archives(todo))
    return recs, [r for r in recs if r.url in fetched_urls]


# ----------------------------------------------------------------------------
# pip
# ----------------------------------------------------------------------------

def run_pip(prefix: str, reqs: list[str], env_file_dir: str | None, quiet: bool) -> list[str]:
    d = env_file_dir if env_file_dir and os.access(env_file_dir, os.W_OK) else tempfile.gettempdir()
    req_file = os.path.join(d, f"condaenv.{secrets.token_hex(4)}.requirements.txt")
    Path(req_file).write_text("\n".join(reqs) + "\n")
    py = os.path.join(prefix, "bin", "python")
    cmd = [py, "-m", "pip", "install", "-U", "-r", req_file, "--exists-action=b"]
    try:
        proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    finally:
        _unlink(req_file)
    if not quiet and proc.stdout:
        sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write("Pip subprocess error:\n" + proc.stderr + "\n")
        raise CondaEnvException("Pip failed")
    installed = []
    for ln in proc.stdout.splitlines():
        if ln.startswith("Successfully installed "):
            installed.extend(ln[len("Successfully installed "):].split())
    return installed


# ----------------------------------------------------------------------------
# create
# ----------------------------------------------------------------------------

def create_env(cfg: Config, prefix: str, spec: EnvSpec, extra_channels: list[str], json_mode: bool,
               out=print) -> dict:
    prefix = os.path.abspath(prefix)
    if prefix == cfg.root_prefix:
        raise CondaValueError("The target prefix is the base prefix. Aborting.")
    parent = os.path.dirname(prefix)
    if is_conda_env(parent):
        raise CondaValueError("Environment paths cannot be immediately nested under another conda environment.")
    pkgs_dir = cfg.first_writable_pkgs_dir()
    existed = os.path.exists(prefix)
    if existed and is_conda_env(prefix):
        if not json_mode:
            out(f"Removing existing environment {prefix}")
        unregister_env(prefix)
        shutil.rmtree(prefix)
        existed = False
    try:
        if spec.explicit is not None:
            records, fetched = explicit_records(cfg, spec.explicit, pkgs_dir)
            specs = []
            channel_urls = []
        else:
            chans = list(extra_channels) + list(spec.channels)
            for c in cfg["channels"]:
                if c not in chans:
                    chans.append(c)
            channel_urls = resolve_channels(cfg, chans)
            if not json_mode:
                out("Channels:\n" + "".join(f" - {canonical_name(cfg, u)}\n" for u in channel_urls)
                    + f"Platform: {PLATFORM}\nCollecting package metadata (repodata.json): done\n"
                    "Solving environment: done")
            specs = spec.specs
            records = solve(cfg, channel_urls, specs, pkgs_dir)
            fetched = fetch_all(cfg, records, pkgs_dir)
        if not json_mode:
            out(f"\n## Package Plan ##\n\n  environment location: {prefix}\n")
            if specs:
                out("  added / updated specs:\n" + "".join(f"    - {s}\n" for s in specs))
            out("The following NEW packages will be INSTALLED:\n")
            for r in sorted(records, key=rec_name):
                out(f"  {rec_name(r):<20} {canonical_name(cfg, r.channel or '')}/{r.subdir}::"
                    f"{dist_name(r)}")
            out("\nPreparing transaction: done\nVerifying transaction: done\nExecuting transaction: done")
        os.makedirs(prefix, exist_ok=True)
        link_records(prefix, records, pkgs_dir, specs, installed=[])
        append_history(cfg, prefix, records, [], specs, "update")
        if spec.variables:
            Path(prefix, "conda-meta", "state").write_text(
                json.dumps({"env_vars": {str(k): str(v) for k, v in spec.variables.items()}}, indent=2))
    except BaseException:
        if not existed:
            shutil.rmtree(prefix, ignore_errors=True)
        raise
    register_env(prefix)
    result = {"success": True, "prefix": prefix,
              "actions": {"FETCH": [fetch_entry(cfg, r) for r in fetched], "PREFIX": prefix,
                          "LINK": [link_entry(cfg, r) for r in sorted(records, key=rec_name)]}}
    if spec.pip:
        if not json_mode:
            out("Installing pip dependencies: ...working...")
        env_dir = os.path.dirname(spec.path) if spec.path else None
        result["actions"]["PIP"] = run_pip(prefix, spec.pip, env_dir, json_mode)
        if not json_mode:
            out("done")
    if not json_mode:
        out("#\n# To activate this environment, use\n#\n"
            f"#     $ conda activate {prefix}\n#\n# To deactivate an active environment, use\n#\n"
            "#     $ conda deactivate\n")
    return result


# ----------------------------------------------------------------------------
# list
# ----------------------------------------------------------------------------

def pip_packages(prefix: str, conda_files: set[str]) -> list[dict]:
    out = []
    for sp in Path(prefix, "lib").glob("python3*/site-packages"):
        for d in sp.iterdir():
            if not d.name.endswith((".dist-info", ".egg-info")):
                continue
            rel = os.path.relpath(d / "METADATA", prefix) if d.name.endswith(".dist-info") \
                else os.path.relpath(d / "PKG-INFO", prefix)
            if rel in conda_files or os.path.relpath(d / "RECORD", prefix) in conda_files:
                continue
            meta = d / ("METADATA" if d.name.endswith(".dist-info") else "PKG-INFO")
            name = version = None
            try:
                for ln in meta.read_text(errors="replace").splitlines():
                    if ln.startswith("Name:") and name is None:
                        name = ln.split(":", 1)[1].strip()
                    elif ln.startswith("Version:") and version is None:
                        version = ln.split(":", 1)[1].strip()
                    elif not ln.strip():
                        break
            except OSError:
                continue
            if not name or not version:
                continue
            n = re.sub(r"[-_.]+", "-", name).lower()
            out.append({"base_url": "https://pypi.org/", "build_number": 0, "build_string": "pypi_0",
                        "channel": "pypi", "dist_name": f"{n}-{version}-pypi_0", "name": n,
                        "platform": "pypi", "version": version})
    return out


def list_prefix(cfg: Config, prefix: str) -> list[dict]:
    recs = installed_records(prefix)
    out = [link_entry(cfg, r) for r in recs]
    files = set()
    for r in recs:
        files.update(str(f) for f in r.files)
    names = {e["name"] for e in out}
    out += [p for p in pip_packages(prefix, files) if p["name"] not in names]
    return sorted(out, key=lambda e: e["name"])


# ----------------------------------------------------------------------------
# clean
# ----------------------------------------------------------------------------

def writable_pkgs_dirs(cfg: Config) -> list[str]:
    return [d for d in cfg.pkgs_dirs if os.path.isdir(d) and pkgs_dir_writable(d)]


def _dir_size(d: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _has_shared_links(d: str) -> bool:
    for root, _dirs, files in os.walk(d):
        for f in files:
            try:
                if os.lstat(os.path.join(root, f)).st_nlink > 1:
                    return True
            except OSError:
                pass
    return False


def find_tarballs(cfg: Config) -> dict:
    pkg_sizes, dirs, total = {}, {}, 0
    for d in writable_pkgs_dirs(cfg):
        names = sorted(f for f in os.listdir(d)
                       if f.endswith((".conda", ".tar.bz2", ".conda.partial", ".tar.bz2.partial"))
                       and os.path.isfile(os.path.join(d, f)))
        if not names:
            continue
        sizes = {f: os.path.getsize(os.path.join(d, f)) for f in names}
        pkg_sizes[d] = sizes
        dirs[d] = names
        total += sum(sizes.values())
    return {"warnings": [], "pkg_sizes": pkg_sizes, "pkgs_dirs": dirs, "total_size": total}


def find_packages(cfg: Config) -> dict:
    pkg_sizes, dirs, total, warnings = {}, {}, 0, []
    for d in writable_pkgs_dirs(cfg):
        sizes = {}
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if not os.path.isdir(p) or not os.path.isfile(os.path.join(p, "info", "index.json")):
                continue
            if _has_shared_links(p):
                continue
            sizes[n] = _dir_size(p)
        if sizes:
            pkg_sizes[d] = sizes
            dirs[d] = list(sizes)
            total += sum(sizes.values())
    return {"warnings": warnings, "pkg_sizes": pkg_sizes, "pkgs_dirs": dirs, "total_size": total}


def remove_found(found: dict, kind: str) -> None:
    for d, names in found["pkgs_dirs"].items():
        for n in names:
            p = os.path.join(d, n)
            if kind == "packages":
                shutil.rmtree(p, ignore_errors=True)
                _unlink(os.path.join(d, n + ".lock"))
            else:
                _unlink(p)


def rm_rf(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    else:
        _unlink(p)
