"""`conda` command line of the lab test double (see labconda/__init__.py)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import traceback

from . import LAB_DOUBLE_NOTE, __version__
from .config import ALIASES, PARAMETERS, Config, show_value
from .errors import (
    ArgumentError,
    CondaEnvironmentError,
    CondaError,
    CondaKeyError,
    CondaValueError,
    DirectoryNotACondaEnvironmentError,
    EnvironmentLocationNotFound,
    LabCondaNotImplemented,
)

JSON_MODE = False


def jdump(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _target_prefix(cfg: Config, args, required=True) -> str | None:
    if getattr(args, "prefix", None):
        return os.path.abspath(os.path.expanduser(args.prefix))
    if getattr(args, "name", None):
        n = args.name
        if "/" in n:
            raise CondaValueError(f"'/' not allowed in environment name: {n}")
        from .core import find_env_by_name
        return find_env_by_name(cfg, n)
    if required:
        raise ArgumentError("one of the arguments -n/--name -p/--prefix is required")
    return None


def _add_prefix_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("-n", "--name")
    g.add_argument("-p", "--prefix")


def _add_json(p):
    p.add_argument("--json", action="store_true", help="Report all output as json.")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("-d", "--dry-run", action="store_true")


def build_parser() -> Parser:
    ap = Parser(prog="conda", description="conda (lab test double built on py-rattler). " + LAB_DOUBLE_NOTE)
    ap.add_argument("-V", "--version", action="store_true")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("info", help="Display information about current conda install.")
    _add_json(p)
    p.add_argument("-e", "--envs", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--base", action="store_true")
    p.add_argument("-s", "--system", action="store_true")

    p = sub.add_parser("config", help="Show or modify configuration values (.condarc).")
    _add_json(p)
    p.add_argument("--show", nargs="*", default=None, metavar="KEY")
    p.add_argument("--show-sources", action="store_true")
    p.add_argument("--describe", nargs="*", default=None)
    p.add_argument("--get", nargs="*", default=None)
    p.add_argument("--system", action="store_true")
    p.add_argument("--env", action="store_true")
    p.add_argument("--file")
    p.add_argument("--set", nargs=2, action="append", metavar=("KEY", "VALUE"))
    p.add_argument("--add", "--prepend", nargs=2, action="append", dest="prepend", metavar=("KEY", "VALUE"))
    p.add_argument("--append", nargs=2, action="append", metavar=("KEY", "VALUE"))
    p.add_argument("--remove", nargs=2, action="append", metavar=("KEY", "VALUE"))
    p.add_argument("--remove-key", action="append")

    for name in ("create",):
        p = sub.add_parser(name, help="Create a new conda environment from a list of specified packages.")
        _add_json(p)
        _add_prefix_args(p)
        p.add_argument("--file", action="append", default=[])
        p.add_argument("-c", "--channel", action="append", default=[])
        p.add_argument("--override-channels", action="store_true")
        p.add_argument("--no-default-packages", action="store_true")
        p.add_argument("specs", nargs="*")

    p = sub.add_parser("env", help="Manage environments.")
    esub = p.add_subparsers(dest="env_cmd", metavar="COMMAND", parser_class=Parser)
    e = esub.add_parser("create")
    _add_json(e)
    _add_prefix_args(e)
    e.add_argument("-f", "--file", action="append", default=[])
    e.add_argument("-c", "--channel", action="append", default=[])
    e.add_argument("--force", action="store_true")
    e.add_argument("specs", nargs="*")
    e = esub.add_parser("remove")
    _add_json(e)
    _add_prefix_args(e)
    e = esub.add_parser("list")
    _add_json(e)

    p = sub.add_parser("remove", aliases=["uninstall"], help="Remove a list of packages / an environment.")
    _add_json(p)
    _add_prefix_args(p)
    p.add_argument("--all", action="store_true")
    p.add_argument("packages", nargs="*")

    p = sub.add_parser("list", help="List installed packages in a conda environment.")
    _add_json(p)
    _add_prefix_args(p)
    p.add_argument("--explicit", action="store_true")
    p.add_argument("--sha256", action="store_true")
    p.add_argument("--md5", action="store_true")
    p.add_argument("regex", nargs="?")

    p = sub.add_parser("clean", help="Remove unused packages and caches.")
    _add_json(p)
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-i", "--index-cache", action="store_true")
    p.add_argument("-p", "--packages", action="store_true")
    p.add_argument("-t", "--tarballs", action="store_true")
    p.add_argument("-f", "--force-pkgs-dirs", action="store_true")
    p.add_argument("-c", "--tempfiles", nargs="*", default=None)
    p.add_argument("-l", "--logfiles", action="store_true")

    p = sub.add_parser("run", help="Run an executable in a conda environment.")
    _add_prefix_args(p)
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--cwd")
    p.add_argument("-s", "--no-capture-output", "--live-stream", action="store_true", dest="live")
    p.add_argument("--dev", action="store_true")
    p.add_argument("executable_call", nargs=argparse.REMAINDER)

    p = sub.add_parser("_resolve_prefix", help=argparse.SUPPRESS)
    p.add_argument("target")
    return ap


# ----------------------------------------------------------------------------

def cmd_info(cfg: Config, args) -> int:
    from .channels import resolve_channels
    from .core import env_details, list_envs

    if args.base:
        if args.json:
            jdump({"root_prefix": cfg.root_prefix})
        else:
            print(cfg.root_prefix)
        return 0
    envs = list_envs(cfg)
    if args.envs and args.json:
        jdump({"envs": envs, "envs_details": {e: env_details(cfg, e) for e in envs}})
        return 0
    if args.envs:
        return _print_env_list(cfg, envs)
    import rattler
    try:
        from importlib.metadata import version as _v
        rattler_version = _v("py-rattler")
    except Exception:
        rattler_version = getattr(rattler, "__version__", "unknown")
    chan_urls = resolve_channels(cfg, [str(c) for c in cfg["channels"]])
    active = os.environ.get("CONDA_PREFIX") or None
    try:
        from rattler import VirtualPackage
        vpkgs = [[str(v.name.normalized), str(v.version), str(v.build_string)]
                 for v in (x.into_generic() for x in VirtualPackage.detect())]
    except Exception:
        vpkgs = []
    uname = platform.uname()
    ua = (f"conda/{__version__} requests/none CPython/{platform.python_version()} "
          f"Linux/{uname.release} labconda/{__version__} py-rattler/{rattler_version}")
    info = {
        "active_prefix": active,
        "active_prefix_name": (os.path.basename(active) if active else None),
        "av_data_dir": os.path.join(cfg.root_prefix, "etc", "conda"),
        "av_metadata_url_base": None,
        "channels": [f"{u}/{sd}" for u in chan_urls for sd in ("linux-64", "noarch")],
        "conda_build_version": "not installed",
        "conda_env_version": __version__,
        "conda_location": os.path.dirname(os.path.abspath(__file__)),
        "conda_prefix": cfg.root_prefix,
        "conda_private": False,
        "conda_shlvl": int(os.environ.get("CONDA_SHLVL", "-1") or -1),
        "conda_version": __version__,
        "config_files": cfg.files,
        "default_prefix": active or cfg.root_prefix,
        "env_vars": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("CONDA", "_CE_"))},
        "envs": envs,
        "envs_details": {e: env_details(cfg, e) for e in envs},
        "envs_dirs": cfg.envs_dirs,
        "is_windows_admin": False,
        "lab_double": True,
        "lab_double_note": LAB_DOUBLE_NOTE,
        "lab_double_engine": f"py-rattler {rattler_version}",
        "netrc_file": None,
        "offline": bool(cfg["offline"]),
        "pkgs_dirs": cfg.pkgs_dirs,
        "platform": "linux-64",
        "python_version": ".".join(str(x) for x in sys.version_info[:3]) + ".final.0",
        "rc_path": os.path.join(os.path.expanduser("~"), ".condarc"),
        "requests_version": None,
        "root_prefix": cfg.root_prefix,
        "root_writable": cfg.root_writable,
        "site_dirs": [],
        "solver": {"default": True, "name": "rattler",
                   "user_agent": f"solver/rattler labconda/{__version__} py-rattler/{rattler_version}"},
        "sys.executable": sys.executable,
        "sys.prefix": sys.prefix,
        "sys.version": sys.version,
        "sys_rc_path": os.path.join(cfg.root_prefix, ".condarc"),
        "user_agent": ua,
        "user_rc_path": os.path.join(os.path.expanduser("~"), ".condarc"),
        "virtual_pkgs": vpkgs,
        "UID": os.getuid(),
        "GID": os.getgid(),
    }
    if args.json:
        jdump(info)
        return 0
    rows = [
        ("active environment", info["active_prefix_name"] or "None"),
        ("active env location", active or "None"),
        ("lab double", "YES: labconda, a test double of conda built on py-rattler (not Anaconda's conda)"),
        ("user config file", info["user_rc_path"]),
        ("populated config files", ("\n" + " " * 28).join(cfg.files) or ""),
        ("conda version", __version__),
        ("conda-build version", "not installed"),
        ("python version", info["python_version"]),
        ("solver", f"rattler (py-rattler {rattler_version}) (default)"),
        ("virtual packages", ("\n" + " " * 28).join("=".join(v) for v in vpkgs)),
        ("base environment", f"{cfg.root_prefix}  ({'writable' if cfg.root_writable else 'read only'})"),
        ("conda av data dir", info["av_data_dir"]),
        ("channel URLs", ("\n" + " " * 28).join(info["channels"])),
        ("package cache", ("\n" + " " * 28).join(cfg.pkgs_dirs)),
        ("envs directories", ("\n" + " " * 28).join(cfg.envs_dirs)),
        ("platform", "linux-64"),
        ("user-agent", ua),
        ("UID:GID", f"{os.getuid()}:{os.getgid()}"),
        ("netrc file", "None"),
        ("offline mode", str(bool(cfg["offline"]))),
    ]
    print()
    for k, v in rows:
        print(f"{k:>26} : {v}")
    print()
    return 0


def _print_env_list(cfg: Config, envs: list[str]) -> int:
    from .core import env_name
    active = os.path.abspath(os.environ["CONDA_PREFIX"]) if os.environ.get("CONDA_PREFIX") else None
    print("# conda environments:\n#")
    for e in envs:
        n = env_name(cfg, e)
        print(f"{n:<25} {'*' if e == active else ' '} {e}")
    print()
    return 0


def cmd_env_list(cfg: Config, args) -> int:
    from .core import env_details, list_envs
    envs = list_envs(cfg)
    if args.json:
        jdump({"envs": envs, "envs_details": {e: env_details(cfg, e) for e in envs}})
        return 0
    return _print_env_list(cfg, envs)


# ---- config -----------------------------------------------------------------

def _yaml_text(obj) -> str:
    import yaml

    class _D(yaml.SafeDumper):
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)

    return yaml.dump(obj, Dumper=_D, default_flow_style=False, sort_keys=True)


def cmd_config(cfg: Config, args) -> int:
    if args.show is not None:
        keys = args.show or sorted(PARAMETERS)
        keys = [ALIASES.get(k, k) for k in keys]
        for k in keys:
            if k not in PARAMETERS:
                raise CondaKeyError(k, "unknown parameter")
        data = {k: show_value(cfg, k) for k in keys}
        if args.json:
            jdump(data)
        else:
            for k in keys:
                v = data[k]
                if k in ("channel_alias",):
                    v = cfg[k]
                elif k == "default_channels":
                    v = list(cfg[k])
                elif k == "custom_channels":
                    v = {n: f"{str(b).rstrip('/')}/{n}" for n, b in (cfg[k] or {}).items()}
                sys.stdout.write(_yaml_text({k: v}))
        return 0
    if args.show_sources:
        from .config import Source  # noqa: F401
        out = {}
        for s in cfg.sources:
            if s.data:
                out[s.path] = s.data
        if args.json:
            jdump(out)
        else:
            for path, data in out.items():
                print(f"==> {path} <==")
                sys.stdout.write(_yaml_text(data))
                print()
        return 0
    if args.get is not None:
        keys = args.get or [k for k in PARAMETERS]
        got = {}
        user = _rc_path(cfg, args)
        data = _load_rc(user)
        for k in keys:
            k = ALIASES.get(k, k)
            if k in data:
                got[k] = data[k]
        if args.json:
            jdump({"success": True, "rc_path": user, "warnings": [], "get": got})
        else:
            for k, v in got.items():
                if isinstance(v, list):
                    for item in reversed(v):
                        print(f"--add {k} {item!r}")
                else:
                    print(f"--set {k} {v}")
        return 0
    if args.describe is not None:
        raise LabCondaNotImplemented("conda config --describe is not implemented by the lab double")
    # --- modifications
    rc = _rc_path(cfg, args)
    data = _load_rc(rc) if os.path.exists(rc) else _load_rc(os.path.join(cfg.root_prefix, ".condarc"))
    warnings = []
    import yaml

    def _key(k):
        c = ALIASES.get(k, k)
        if c != k and k == "auto_activate_base":
            sys.stderr.write("Key auto_activate_base is an alias of auto_activate; setting value with latter\n")
        base = c.split(".")[0]
        if base not in PARAMETERS:
            raise CondaKeyError(k, "unknown parameter")
        return c

    changed = False
    for k, v in args.set or []:
        k = _key(k)
        if "." in k:
            top, sub = k.split(".", 1)
            data.setdefault(top, {})[sub] = yaml.safe_load(v)
        else:
            if PARAMETERS[k][0] != "scalar":
                raise CondaKeyError(k, "invalid parameter for --set (use --add/--append/--remove)")
            data[k] = yaml.safe_load(v)
        changed = True
    for opt, front in (("prepend", True), ("append", False)):
        for k, v in getattr(args, opt) or []:
            k = _key(k)
            if PARAMETERS[k][0] != "seq":
                raise CondaValueError(f"Key '{k}' is not a known sequence parameter.")
            lst = [x for x in (data.get(k) or []) if x != v]
            if v in (data.get(k) or []):
                warnings.append(f"'{v}' already in '{k}' list, moving to the {'top' if front else 'bottom'}")
            data[k] = [v] + lst if front else lst + [v]
            changed = True
    for k, v in args.remove or []:
        k = _key(k)
        if k not in data or v not in (data.get(k) or []):
            raise CondaKeyError(k, f"{v!r} is not in the {k!r} key of the config file")
        data[k] = [x for x in data[k] if x != v]
        changed = True
    for k in args.remove_key or []:
        k = _key(k)
        if k not in data:
            raise CondaKeyError(k, "key not in config")
        del data[k]
        changed = True
    if changed:
        os.makedirs(os.path.dirname(rc) or ".", exist_ok=True)
        with open(rc, "w") as f:
            f.write(_yaml_text(data))
    if args.json:
        jdump({"success": True, "rc_path": rc, "warnings": warnings, "get": {}})
    else:
        for w in warnings:
            sys.stderr.write("Warning: " + w + "\n")
    return 0


def _rc_path(cfg: Config, args) -> str:
    if args.file:
        return os.path.abspath(os.path.expanduser(args.file))
    if args.system:
        return os.path.join(cfg.root_prefix, ".condarc")
    if args.env and os.environ.get("CONDA_PREFIX"):
        return os.path.join(os.environ["CONDA_PREFIX"], ".condarc")
    return os.environ.get("CONDARC") or os.path.join(os.path.expanduser("~"), ".condarc")


def _load_rc(path: str) -> dict:
    import yaml
    try:
        with open(path) as f:
            d = yaml.safe_load(f) or {}
        return d if isinstance(d, dict) else {}
    except OSError:
        return {}


# ---- create / env create ------------------------------------------------------

def cmd_create(cfg: Config, args, env_create: bool) -> int:
    from .core import EnvSpec, create_env, read_env_file

    files = args.file or []
    if env_create and not files and not args.specs:
        files = ["environment.yml"]
    spec = EnvSpec()
    for f in files:
        s = read_env_file(f)
        if s.explicit is not None:
            spec.explicit = (spec.explicit or []) + s.explicit
        spec.specs += s.specs
        spec.pip += s.pip
        spec.channels += [c for c in s.channels if c not in spec.channels]
        spec.variables.update(s.variables)
        spec.name = spec.name or s.name
        spec.prefix = spec.prefix or s.prefix
        spec.path = spec.path or s.path
    spec.specs += list(getattr(args, "specs", []) or [])
    if not args.prefix and not args.name:
        if spec.prefix:
            args.prefix = spec.prefix
        elif spec.name:
            args.name = spec.name
    prefix = _target_prefix(cfg, args)
    if args.name in ("base", "root"):
        raise CondaValueError("The target prefix is the base prefix. Aborting.")
    if spec.explicit is None and not spec.specs:
        raise ArgumentError("too few arguments, must supply command line package specs or --file\n\n"
                            "You can specify one or more default packages to install when creating\n"
                            "an environment.  Doing so allows you to call conda create without\n"
                            "explicitly providing any package names.\n\n"
                            "To set the provided packages, call conda config like this:\n\n"
                            "    conda config --add create_default_packages PACKAGE_NAME\n")
    json_mode = bool(args.json)
    say = (lambda *a, **k: None) if (json_mode or args.quiet) else print
    extra = list(getattr(args, "channel", []) or [])
    if getattr(args, "override_channels", False):
        spec.channels = []
        cfg.values["channels"] = []
    if args.dry_run:
        from .errors import CondaSystemExit
        raise CondaSystemExit("Dry run. Exiting.")
    if not env_create and not (args.yes or json_mode or cfg["always_yes"]) and os.path.exists(prefix):
        from .core import is_conda_env
        if is_conda_env(prefix):
            question = (f"WARNING: A conda environment already exists at '{prefix}'\n\n"
                        "Remove existing environment?\nThis will remove ALL directories contained within "
                        "this specified prefix directory, including any other conda environments.\n\n")
        else:
            question = (f"WARNING: A directory already exists at the target location '{prefix}'\n"
                        "but it is not a conda environment.\nContinue creating environment")
        if not _confirm(question):
            return 0
    result = create_env(cfg, prefix, spec, extra, json_mode, out=say)
    if json_mode:
        jdump(result)
    return 0


def _confirm(question: str) -> bool:
    """conda's confirm_yn: stdin EOF (or anything but yes) picks the default 'no'."""
    sys.stdout.write(question + " (y/[n])? ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    sys.stdout.write("\n")
    return False


# ---- remove -------------------------------------------------------------------

def cmd_env_remove(cfg: Config, args) -> int:
    from .core import installed_records, is_conda_env, link_entry, rec_name, unregister_env
    prefix = _target_prefix(cfg, args)
    if not os.path.exists(prefix):
        raise EnvironmentLocationNotFound(prefix)
    if os.path.abspath(prefix) == cfg.root_prefix:
        raise CondaEnvironmentError("cannot remove root environment, add -n NAME or -p PREFIX option")
    active = os.environ.get("CONDA_PREFIX")
    if active and os.path.abspath(active) == os.path.abspath(prefix):
        raise CondaEnvironmentError("Cannot remove current environment. Deactivate and run conda remove again")
    if not is_conda_env(prefix):
        raise DirectoryNotACondaEnvironmentError(prefix)
    recs = sorted(installed_records(prefix), key=rec_name)
    unlink = [link_entry(cfg, r) for r in recs]
    if not args.json and not args.quiet:
        print(f"\nRemove all packages in environment {prefix}:\n")
        for e in unlink:
            print(f"  {e['name']:<20} {e['version']:<12} {e['build_string']}")
        print()
    if args.dry_run:
        return 0
    if not (args.yes or args.json or cfg["always_yes"]) and not _confirm("Proceed"):
        return 0
    import shutil
    shutil.rmtree(prefix, ignore_errors=True)
    if os.path.exists(prefix):
        shutil.rmtree(prefix)
    unregister_env(prefix)
    if args.json:
        jdump({"success": True, "prefix": prefix, "actions": {"FETCH": [], "PREFIX": prefix, "UNLINK": unlink}})
    return 0


def cmd_remove(cfg: Config, args) -> int:
    if not args.all:
        raise LabCondaNotImplemented("the lab double implements only 'conda remove --all' (environment removal)")
    return cmd_env_remove(cfg, args)


# ---- list ---------------------------------------------------------------------

def cmd_list(cfg: Config, args) -> int:
    from .core import installed_records, is_conda_env, list_prefix
    prefix = _target_prefix(cfg, args, required=False) or os.environ.get("CONDA_PREFIX") or cfg.root_prefix
    if not is_conda_env(prefix) and not os.path.isdir(os.path.join(prefix, "conda-meta")):
        raise EnvironmentLocationNotFound(prefix)
    if args.explicit:
        lines = ["# This file may be used to create an environment using:",
                 "# $ conda create --name <env> --file <this file>", "# platform: linux-64", "@EXPLICIT"]
        for r in sorted(installed_records(prefix), key=lambda r: r.name.normalized):
            url = r.url
            if args.sha256 and r.sha256:
                url += "#sha256:" + r.sha256.hex()
            elif args.md5 and r.md5:
                url += "#" + r.md5.hex()
            lines.append(url)
        print("\n".join(lines))
        return 0
    entries = list_prefix(cfg, prefix)
    if args.regex:
        rx = re.compile(args.regex)
        entries = [e for e in entries if rx.search(e["name"])]
    if args.json:
        jdump(entries)
        return 0
    print(f"# packages in environment at {prefix}:\n#")
    print(f"# {'Name':<23} {'Version':<25} {'Build':>15}  Channel")
    for e in entries:
        ch = e["channel"]
        print(f"{e['name']:<25} {e['version']:<25} {e['build_string']:>15}  {ch}")
    return 0


# ---- clean --------------------------------------------------------------------

def cmd_clean(cfg: Config, args) -> int:
    from .core import find_packages, find_tarballs, remove_found, rm_rf, writable_pkgs_dirs
    if not (args.all or args.index_cache or args.packages or args.tarballs or args.force_pkgs_dirs
            or args.tempfiles is not None or args.logfiles):
        raise ArgumentError("At least one removal target must be given. See 'conda clean --help'.")
    result = {"success": True}
    if args.force_pkgs_dirs:
        dirs = writable_pkgs_dirs(cfg)
        if not args.dry_run:
            for d in dirs:
                rm_rf(d)
        result["pkgs_dirs"] = dirs
        if args.json:
            jdump(result)
        else:
            for d in dirs:
                print(f"Removed {d}")
        return 0
    text = []
    if args.all or args.index_cache:
        files = [os.path.join(d, "cache") for d in writable_pkgs_dirs(cfg)]
        result["index_cache"] = {"files": files}
        if not args.dry_run:
            for f in files:
                rm_rf(f)
        text.append(f"Removed index cache: {len(files)} dirs")
    if args.all or args.tarballs:
        tars = find_tarballs(cfg)
        result["tarballs"] = tars
        if not args.dry_run:
            remove_found(tars, "tarballs")
        text.append(f"Will remove {sum(len(v) for v in tars['pkgs_dirs'].values())} package tarball(s) "
                    f"({tars['total_size']} bytes).")
    if args.all or args.packages:
        pk = find_packages(cfg)
        result["packages"] = pk
        if not args.dry_run:
            remove_found(pk, "packages")
        text.append(f"Will remove {sum(len(v) for v in pk['pkgs_dirs'].values())} package(s) "
                    f"({pk['total_size']} bytes).")
    if args.all or args.tempfiles is not None:
        temps = []
        for root, _dirs, files in os.walk(cfg.root_prefix):
            for f in files:
                if f.endswith((".c~", ".trash")):
                    temps.append(os.path.join(root, f))
        result["tempfiles"] = temps
        if not args.dry_run:
            for t in temps:
                rm_rf(t)
    if args.all or args.logfiles:
        logs = []
        for d in writable_pkgs_dirs(cfg):
            ld = os.path.join(d, ".logs")
            if os.path.isdir(ld):
                logs += [os.path.join(ld, f) for f in sorted(os.listdir(ld))]
        result["logfiles"] = logs
        if not args.dry_run:
            for f in logs:
                rm_rf(f)
    if args.json:
        jdump(result)
    elif not args.quiet:
        print("\n".join(text))
    return 0


# ---- run ----------------------------------------------------------------------

def cmd_run(cfg: Config, args) -> int:
    from .core import is_conda_env
    call = list(args.executable_call)
    if call and call[0] == "--":
        call = call[1:]
    if not call:
        sys.stderr.write("usage: conda run [-n ENV | -p PATH] [--cwd CWD] [-s] COMMAND\n"
                         "conda run: error: the following arguments are required: COMMAND\n")
        return 2
    prefix = _target_prefix(cfg, args, required=False) or os.environ.get("CONDA_PREFIX") or cfg.root_prefix
    if not is_conda_env(prefix) and not os.path.isdir(os.path.join(prefix, "conda-meta")):
        raise EnvironmentLocationNotFound(prefix)
    env = dict(os.environ)
    old = env.get("PATH", "")
    env["PATH"] = os.pathsep.join([os.path.join(prefix, "bin"), os.path.join(cfg.root_prefix, "condabin"), old])
    env["CONDA_PREFIX"] = prefix
    env["CONDA_DEFAULT_ENV"] = prefix if prefix != cfg.root_prefix else "base"
    env["CONDA_SHLVL"] = "1"
    env["CONDA_EXE"] = os.path.join(cfg.root_prefix, "bin", "conda")
    env["CONDA_PYTHON_EXE"] = os.path.join(cfg.root_prefix, "bin", "python")
    env.pop("PYTHONHOME", None)
    try:
        import json as _j
        state = _j.load(open(os.path.join(prefix, "conda-meta", "state")))
        env.update({str(k): str(v) for k, v in (state.get("env_vars") or {}).items()})
    except (OSError, ValueError):
        pass
    cwd = os.path.abspath(args.cwd) if args.cwd else None
    import shutil as _sh
    exe = _sh.which(call[0], path=env["PATH"]) if "/" not in call[0] else call[0]
    if not exe:
        sys.stderr.write(f"/bin/sh: line 1: {call[0]}: command not found\n")
        rc = 127
        sys.stderr.write(f"\nERROR conda.cli.main_run:execute(127): `conda run {' '.join(call)}` failed. "
                         "(See above for error)\n")
        return rc
    try:
        if args.live:
            proc = subprocess.run([exe] + call[1:], env=env, cwd=cwd)
        else:
            proc = subprocess.run([exe] + call[1:], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  capture_output=True)
            sys.stdout.buffer.write(proc.stdout)
            sys.stdout.flush()
            sys.stderr.buffer.write(proc.stderr)
            sys.stderr.flush()
    except OSError as e:
        sys.stderr.write(f"{call[0]}: {e}\n")
        return 126
    if proc.returncode != 0:
        sys.stderr.write(f"\nERROR conda.cli.main_run:execute({proc.returncode}): "
                         f"`conda run {' '.join(call)}` failed. (See above for error)\n")
    return proc.returncode


def cmd_resolve_prefix(cfg: Config, args) -> int:
    from .core import find_env_by_name, is_conda_env
    t = args.target
    p = os.path.abspath(os.path.expanduser(t)) if "/" in t else find_env_by_name(cfg, t)
    if not is_conda_env(p) and p != cfg.root_prefix:
        raise EnvironmentLocationNotFound(p)
    print(p)
    return 0


# ----------------------------------------------------------------------------

def _dispatch(args, argv) -> int:
    if args.version and not args.cmd:
        print(f"conda {__version__}")
        return 0
    if not args.cmd:
        build_parser().print_help()
        return 0
    prefix_for_cfg = None
    cfg = Config(root_prefix=sys.prefix, target_prefix=prefix_for_cfg)
    if args.cmd == "info":
        return cmd_info(cfg, args)
    if args.cmd == "config":
        return cmd_config(cfg, args)
    if args.cmd == "create":
        return cmd_create(cfg, args, env_create=False)
    if args.cmd == "env":
        if args.env_cmd == "create":
            return cmd_create(cfg, args, env_create=True)
        if args.env_cmd == "remove":
            return cmd_env_remove(cfg, args)
        if args.env_cmd == "list":
            return cmd_env_list(cfg, args)
        sys.stderr.write("usage: conda env [-h] COMMAND ...\n")
        return 2
    if args.cmd in ("remove", "uninstall"):
        return cmd_remove(cfg, args)
    if args.cmd == "list":
        return cmd_list(cfg, args)
    if args.cmd == "clean":
        return cmd_clean(cfg, args)
    if args.cmd == "run":
        return cmd_run(cfg, args)
    if args.cmd == "_resolve_prefix":
        return cmd_resolve_prefix(cfg, args)
    raise LabCondaNotImplemented(f"'conda {args.cmd}' is not implemented by the lab double")


def main(argv=None) -> int:
    """Console entry point. Run as a program, it ends with os._exit(): py-rattler's
    background runtime can crash (SIGSEGV/SIGABRT) while the interpreter finalizes
    objects such as a Gateway still referenced from a traceback."""
    rc = _main(argv)
    if argv is None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)
    return rc


def _main(argv=None) -> int:
    global JSON_MODE
    argv = list(sys.argv[1:] if argv is None else argv)
    JSON_MODE = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    if argv and argv[0] == "run":
        JSON_MODE = False
    parser = build_parser()
    try:
        # `conda run` passes everything after the executable through untouched
        if argv and argv[0] == "run":
            args = _parse_run(parser, argv)
        else:
            args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return _dispatch(args, argv)
    except CondaError as e:
        if e.return_code == 0:
            return 0
        _report(e)
        return e.return_code
    except KeyboardInterrupt:
        sys.stderr.write("\nCondaSignalInterrupt: Signal interrupt SIGINT\n")
        return 1
    except BrokenPipeError:  # e.g. `conda config --show | head`
        return 1
    except Exception as e:  # unexpected: still rc 1 and a conda-shaped report
        err = CondaError(f"An unexpected error has occurred in the lab conda double: {e!r}\n"
                         + traceback.format_exc())
        err.__class__ = type("LabCondaUnexpectedError", (CondaError,), {"module": "labconda.errors"})
        _report(err)
        return 1


def _parse_run(parser, argv):
    # options of `conda run` end at the first token that is not an option (or after --)
    opts, rest, i = [], [], 1
    takes_value = {"-n", "--name", "-p", "--prefix", "--cwd"}
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest = argv[i + 1:]
            break
        if a in takes_value:
            opts += argv[i:i + 2]
            i += 2
            continue
        if a.startswith("-") and (a.split("=")[0] in takes_value or a in (
                "-s", "--no-capture-output", "--live-stream", "-v", "--verbose", "--dev", "-h", "--help")):
            opts.append(a)
            i += 1
            continue
        rest = argv[i:]
        break
    args = parser.parse_args(["run"] + opts)
    args.executable_call = rest
    return args


def _report(e: CondaError) -> None:
    if JSON_MODE:
        jdump(e.dump_map())
    else:
        sys.stderr.write("\n" + repr(e) + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
