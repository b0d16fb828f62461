#!/usr/bin/env python3
"""Lock every envs/*.yml: an @EXPLICIT list with sha256, written by real conda.

    .venv/bin/python lab/locks.py [--mirror build/mirror] [--lock-url http://mirror:8080]

Installs the production pin's conda (CondaLab 25.1.1 from the mirror build) under
build/locktool, serves the mirror on loopback, builds each env's conda part
into a scratch prefix (`conda env create`) and writes what conda itself reports
(`conda list --explicit --sha256`) to envs/<name>.lock.txt, with the loopback
address replaced by the URL hosts install from (--lock-url; the lab mirror by
default). A lock is rewritten only when its content changed. An env file that
does not pin every package it gets (the solve adds a name) is an error.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_VERSION = "25.1.1"
TOOL = REPO / "build" / "locktool"  # conda and its package cache, shared with lab/app_env_test.py


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "PYTHON", "VIRTUAL_ENV", "_CE_"))}
    env["HOME"] = str(home)
    return env


def write_condarc(home: Path, url: str, tool: Path = TOOL) -> None:
    """A condarc in home that takes conda-forge from the mirror served at url."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".condarc").write_text(f"channel_alias: {url}/conda\nchannels: [conda-forge]\n"
                                   f"channel_priority: strict\npkgs_dirs: [{tool / 'pkgs'}]\n")


def install_conda(mirror: Path, tool: Path = TOOL) -> Path:
    """Real conda CONDA_VERSION from the mirror's installer under tool (reinstalled when the installer changes)."""
    installer = mirror / "installers" / f"CondaLab-{CONDA_VERSION}-0-Linux-x86_64.sh"
    if not installer.is_file():
        raise SystemExit(f"{installer} is missing: run 'make mirror' first")
    stamp = tool / "installer.sha256"
    want = (installer.parent / f"{installer.name}.sha256").read_text().split()[0]
    if not (stamp.is_file() and stamp.read_text() == want):
        shutil.rmtree(tool, ignore_errors=True)
        tool.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["bash", str(installer), "-b", "-p", str(tool / "conda")], check=True,
                       stdout=subprocess.DEVNULL, env=clean_env(tool.parent))
        stamp.write_text(want)
    return tool / "conda" / "bin" / "conda"


def lock_env(conda: Path, spec_file: Path, base_url: str, lock_url: str, work: Path, home: Path) -> str:
    spec = yaml.safe_load(spec_file.read_text())
    pins = [d for d in spec["dependencies"] if isinstance(d, str)]
    conda_only = dict(spec, dependencies=pins)  # the pip: section is installed by the role, not locked here
    scratch_spec = work / spec_file.name
    scratch_spec.write_text(yaml.safe_dump(conda_only))
    prefix = work / spec_file.stem
    env = clean_env(home)
    run = functools.partial(subprocess.run, capture_output=True, text=True, env=env)
    r = run([str(conda), "env", "create", "--json", "--file", str(scratch_spec), "-p", str(prefix)])
    if r.returncode != 0:
        raise SystemExit(f"locks: conda could not build {spec_file.name}: {r.stdout.strip()[-400:] or r.stderr.strip()[-400:]}")
    r = run([str(conda), "list", "--explicit", "--sha256", "-p", str(prefix)], check=True)
    lines = r.stdout.splitlines()
    names = {re.split(r"[=<>!~ ]", p, maxsplit=1)[0] for p in pins}
    got = {re.sub(r"-[^-]+-[^-]+\.(conda|tar\.bz2)$", "", ln.rsplit("/", 1)[-1].split("#")[0])
           for ln in lines if "://" in ln}
    if got - names:
        raise SystemExit(f"locks: {spec_file.name} is not fully pinned: the solve adds {sorted(got - names)}")
    body = [ln.replace(base_url, lock_url) for ln in lines if not ln.startswith("# platform") and ln.strip()]
    header = ["# This file may be used to create an environment using:",
              "# $ conda create --name <env> --file <this file>",
              f"# {spec_file.name}, locked by real conda {CONDA_VERSION} (lab/locks.py, make locks)",
              "# platform: linux-64"]
    return "\n".join(header + [ln for ln in body if not ln.startswith("# ")]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=REPO / "build" / "mirror")
    ap.add_argument("--lock-url", default="http://mirror:8080", help="base URL hosts install the packages from")
    ap.add_argument("--envs", type=Path, default=REPO / "envs")
    args = ap.parse_args(argv)

    conda = install_conda(args.mirror)
    httpd, url = serve(args.mirror)
    try:
        with tempfile.TemporaryDirectory(prefix="locks-") as tmp:
            work, home = Path(tmp), Path(tmp) / "home"
            write_condarc(home, url)
            for spec_file in sorted(args.envs.glob("*.yml")):
                text = lock_env(conda, spec_file, url, args.lock_url.rstrip("/"), work, home)
                lock = spec_file.with_suffix(".lock.txt")
                state = "unchanged" if lock.is_file() and lock.read_text() == text else "written"
                if state == "written":
                    lock.write_text(text)
                print(f"locks: {lock.relative_to(REPO)} {state} ({sum(1 for ln in text.splitlines() if '://' in ln)} packages)")
    finally:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
