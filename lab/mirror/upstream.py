#!/usr/bin/env python3
"""Fill the mirror tree from upstream: the workflow of a connected staging machine.

    .venv/bin/python lab/mirror/upstream.py --out build/mirror \\
        [--conda-url https://conda.anaconda.org] [--pypi-url https://pypi.org/simple] \\
        [--installers-url https://repo.anaconda.com/miniconda] [--installer FILE=SHA256 ...]

Fetches exactly what the fleet installs, each piece checked before it is kept:

- the pinned installer(s) (default: the miniconda role's pin), against the
  sha256 given with the pin;
- every package each envs/*.lock.txt names, its lock URL re-based from
  --lock-url onto --conda-url, against the lock's sha256;
- the wheels of the envs' pip: sections (and --app-wheel files) from --pypi-url;

then indexes the channel and writes the PEP 503 index, the same tree the
offline build makes, ready to carry into an air-gapped site (make mirror
packs it into build/mirror.tar).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build  # noqa: E402

DEFAULTS = build.REPO / "roles" / "miniconda" / "defaults" / "main.yml"


def fetch(url: str, dest: Path, sha256: str, what: str) -> bool:
    """Download url to dest unless dest already has sha256; a mismatch keeps nothing."""
    if dest.is_file() and build.sha256_file(dest) == sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"upstream: cannot fetch {what} from {url}: {exc}") from None
    h = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if h != sha256:
        tmp.unlink()
        raise SystemExit(f"upstream: {what} from {url} has sha256 {h}, expected {sha256}: nothing was kept; "
                         f"check the pin (or the lock) against the publisher")
    tmp.replace(dest)
    return True


def default_installer() -> str:
    d = yaml.safe_load(DEFAULTS.read_text())
    flavours = yaml.safe_load((DEFAULTS.parent.parent / "vars" / "main.yml").read_text())["miniconda_flavors"]
    name = flavours[d["miniconda_flavor"]]["file"].replace("%s", d["miniconda_version"])
    return f"{name}={d['miniconda_installer_sha256']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=build.REPO / "build" / "mirror")
    ap.add_argument("--conda-url", default="https://conda.anaconda.org", help="base URL of the upstream channels")
    ap.add_argument("--pypi-url", default="https://pypi.org/simple")
    ap.add_argument("--installers-url", default="https://repo.anaconda.com/miniconda")
    ap.add_argument("--installer", action="append", default=[], metavar="FILE=SHA256",
                    help="installer to fetch with its published sha256 (default: the miniconda role's pin)")
    ap.add_argument("--lock-url", default="http://mirror:8080/conda", help="the channel base the locks were made against")
    ap.add_argument("--app-wheel", action="append", default=[], type=Path)
    args = ap.parse_args(argv)
    out = args.out.resolve()
    fetched = 0

    for pin in args.installer or [default_installer()]:
        name, _, sha = pin.partition("=")
        if len(sha) != 64:
            raise SystemExit(f"upstream: --installer {pin!r}: give FILE=SHA256 (the publisher's hash)")
        dest = out / "installers" / name
        fetched += fetch(f"{args.installers_url.rstrip('/')}/{name}", dest, sha, name)
        (dest.parent / f"{name}.sha256").write_text(f"{sha}  {name}\n")
    build.write_files_json(out / "installers")

    locks = sorted(build.ENVS_DIR.glob("*.lock.txt"))
    if not locks:
        raise SystemExit("upstream: no envs/*.lock.txt: lock the envs first (make locks) so that exactly their packages are fetched")
    channel = out / "conda" / build.CHANNEL_NAME
    wanted: set[str] = set()
    for lock in locks:
        for pkg in build.read_lock(lock):
            if not pkg["url"].startswith(args.lock_url.rstrip("/") + "/"):
                raise SystemExit(f"upstream: {lock.name}: {pkg['url']} is not below --lock-url {args.lock_url}")
            url = args.conda_url.rstrip("/") + pkg["url"][len(args.lock_url.rstrip("/")):]
            rel = f"{pkg['subdir']}/{pkg['fn']}"
            if rel not in wanted:
                fetched += fetch(url, channel / rel, pkg["sha"], f"{lock.name}: {pkg['fn']}")
                wanted.add(rel)
    for sd in ("linux-64", "noarch"):
        (channel / sd).mkdir(parents=True, exist_ok=True)
        for f in (channel / sd).glob("*.conda"):
            if f"{sd}/{f.name}" not in wanted:
                f.unlink()
    build.sync_channel(channel, [channel / rel for rel in sorted(wanted)])

    _conv, pypi_reqs = build.wanted_wheels(build.load_env_files())
    with tempfile.TemporaryDirectory() as tmp:
        if pypi_reqs:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                "--no-deps", "--only-binary=:all:", "--index-url", args.pypi_url, "-d", tmp,
                                "--python-version", "3.11", "--implementation", "cp", "--abi", build.PY_ABI,
                                "--abi", "abi3", "--abi", "none", "--platform", "manylinux_2_28_x86_64",
                                "--platform", "manylinux_2_17_x86_64", "--platform", "any",
                                *[f"{n}=={v}" for n, v in sorted(pypi_reqs)]], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"upstream: pip could not fetch the pip: sections from {args.pypi_url}: "
                                 f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
        build.build_pypi(out / "pypi", sorted(Path(tmp).glob("*.whl")) + [w.resolve() for w in args.app_wheel])
    (out / "BUILD-INFO.json").write_text(json.dumps({
        "source": "upstream", "conda_url": args.conda_url, "pypi_url": args.pypi_url,
        "packages": sorted(wanted), "installers": sorted(p.name for p in (out / "installers").glob("*.sh")),
        "locks": [lock.name for lock in locks]}, indent=2) + "\n")
    print(f"upstream: {len(wanted)} packages from {len(locks)} locks, "
          f"{len(list((out / 'installers').glob('*.sh')))} installer(s); {fetched} fetched, the rest already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
