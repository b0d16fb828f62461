#!/usr/bin/env python3
"""Run the billing service's tests inside the env that ships: the newest envs/token-billing-vN.yml.

    .venv/bin/python lab/app_env_test.py [--mirror build/mirror] [pytest args...]

Builds the env as the conda_env role does, with real conda 25.1.1 from the mirror's
installer (lab/locks.py's build/locktool): `conda create --file` on the committed
@EXPLICIT lock (its URLs pointed at the mirror served on loopback), then the yml's
`pip:` section from the mirror's PyPI index with --no-deps. It is rebuilt only when
the lock or the yml changed (a stamp in the prefix records their sha256). Into that
env go the service (build/wheels/*.whl from make mirror: the env has no setuptools to
build ./app) and pytest and requests at requirements.txt's pins, under constraints
that hold every package the env already has at its version. Then every requirement of
every distribution in the env (a pip check that reads whl2conda's metadata, DEPS_CHECK)
and the yml's pins are verified, and `python -m pytest -q app/tests` runs from the
repository root; its exit code is ours.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml
from locks import REPO, clean_env, install_conda, serve, write_condarc

OUT = REPO / "build" / "app-env"
TOOLS = ("pytest", "requests")  # test-only: everything else the tests import ships in the env
CHECKED = ("flask", "werkzeug", "gunicorn", "sqlalchemy", "alembic", "psycopg", "prometheus-client")
NOT_DISTS = {"python", "python-abi"}  # conda pins without a Python distribution


def fail(msg: str) -> SystemExit:
    return SystemExit(f"app-env-test: {msg}")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def newest_spec(envs: Path = REPO / "envs") -> Path:
    """envs/token-billing-vN.yml with the highest N (numerically: v10 is newer than v9)."""
    found = {int(m[1]): p for p in envs.glob("token-billing-v*.yml") if (m := re.fullmatch(r"token-billing-v(\d+)\.yml", p.name))}
    if not found:
        raise fail(f"no token-billing-vN.yml in {envs}")
    return found[max(found)]


def spec_pins(spec_file: Path) -> dict[str, str]:
    """{normalised name: version} of every pin in the yml: conda `name=ver` and pip `name==ver`."""
    pins = {}
    for dep in yaml.safe_load(spec_file.read_text())["dependencies"]:
        for pin in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, _, version = re.split(r"(==?)", pin, maxsplit=1)
            pins[norm(name)] = version
    return pins


def pip_section(spec_file: Path) -> list[str]:
    deps = yaml.safe_load(spec_file.read_text())["dependencies"]
    return [p for d in deps if isinstance(d, dict) for p in d.get("pip", [])]


def requirement_pins(path: Path = REPO / "requirements.txt", includes: bool = True) -> dict[str, str]:
    """name -> version of every pin in path and (includes) in the files it includes (-r)."""
    pins: dict[str, str] = {}
    for ln in path.read_text().splitlines():
        if m := re.match(r"-r\s+(\S+)", ln):
            if includes:
                pins |= requirement_pins(path.parent / m[1])
        elif m := re.match(r"([A-Za-z0-9_.-]+)==(\S+)", ln):
            pins[norm(m[1])] = m[2]
    return pins


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mirror_pip_env(home: Path) -> dict[str, str]:
    """pip taking nothing from the caller's configuration: the mirror or a local wheelhouse only."""
    env = {k: v for k, v in clean_env(home).items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def run(argv: list[str | Path], env: dict[str, str], what: str) -> str:
    r = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr.strip() or r.stdout.strip()).splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"\w*Error\b|ERROR:", ln)]  # conda's and pip's own reason
        raise fail(f"{what} failed (rc={r.returncode}): {' | '.join(list(dict.fromkeys(errors))[:2] or lines[-3:])}")
    return r.stdout


def build_env(mirror: Path, spec_file: Path, lock: Path, prefix: Path, home: Path) -> None:
    conda = install_conda(mirror)
    shutil.rmtree(prefix, ignore_errors=True)
    httpd, url = serve(mirror)
    try:
        write_condarc(home, url)
        mapped = OUT / lock.name
        mapped.write_text(re.sub(r"^[a-z]+://[^/]+", url, lock.read_text(), flags=re.M))
        run([conda, "create", "--yes", "--quiet", "--file", mapped, "-p", prefix], clean_env(home), f"conda create from {lock.name}")
        if pins := pip_section(spec_file):
            run([prefix / "bin" / "python", "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--index-url", f"{url}/pypi/simple", *pins],
                mirror_pip_env(home), f"pip section of {spec_file.name}")
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise
    finally:
        httpd.shutdown()


# pip check, run by the env's python, that reads the lab channel's packages: whl2conda keeps their PyPI
# requirements under the extra 'original' and folds long Requires-Dist headers, which pip 26 cannot parse
# (its pip check then reports flask and sqlalchemy as not installed).
DEPS_CHECK = """
import importlib.metadata as md, json
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as cn
dists = [d for d in md.distributions() if d.metadata["Name"]]  # skips leftovers without METADATA
have = {cn(d.metadata["Name"]): d.version for d in dists}
bad = []
for d in dists:
    for req in map(Requirement, (" ".join(r.split()) for r in d.requires or [])):
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "original")):
            continue
        if not req.specifier.contains(have.get(cn(req.name), "0!0.dev0"), prereleases=True):
            bad.append(f"{d.metadata['Name']} {d.version} requires {req}, has {have.get(cn(req.name), 'none')}")
print(json.dumps({"have": have, "bad": bad}))
"""


def inspect(python: Path, home: Path) -> tuple[dict[str, str], list[str]]:
    """The env's distributions {name: version} and every requirement of theirs it does not satisfy."""
    out = json.loads(run([python, "-c", DEPS_CHECK], clean_env(home), "listing the env"))
    return out["have"], out["bad"]


def install_tools(python: Path, home: Path, wheelhouse: Path) -> None:
    """pytest and requests at requirements.txt's pins; what the env has stays exactly as it is."""
    req = requirement_pins()
    have, _ = inspect(python, home)
    if missing := [t for t in TOOLS if t not in req]:
        raise fail(f"requirements.txt pins no {', '.join(missing)}")
    constraints = OUT / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted((req | have).items()) if n != "token-billing"))
    argv: list[str | Path] = [python, "-m", "pip", "install", "--only-binary=:all:", "-c", constraints, *(f"{t}=={req[t]}" for t in TOOLS)]
    offline = [*argv, "--no-index", "--find-links", wheelhouse]
    if subprocess.run([str(a) for a in offline], env=mirror_pip_env(home), capture_output=True).returncode == 0:
        return
    # first run (or new pins): fetch the wheels once with the caller's pip settings, then install offline
    wheelhouse.mkdir(parents=True, exist_ok=True)
    run([python, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", wheelhouse, "-c", constraints, *argv[-len(TOOLS):]],
        clean_env(Path.home()) | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, "pip download of the test tools")
    run(offline, mirror_pip_env(home), "installing the test tools")


def service_wheel(src: Path = REPO / "app" / "src") -> Path:
    """make mirror's wheel of ./app, refused when it no longer matches the source."""
    wheels = sorted((REPO / "build" / "wheels").glob("token_billing-*.whl"))
    if len(wheels) != 1:
        raise fail(f"want one build/wheels/token_billing-*.whl, found {len(wheels)}: run 'make mirror'")
    with zipfile.ZipFile(wheels[0]) as zf:
        packed = {n: zf.read(n) for n in zf.namelist() if n.startswith("token_billing/")}
    source = {p.relative_to(src).as_posix(): p.read_bytes() for p in (src / "token_billing").rglob("*")
              if p.suffix in {".py", ".mako", ".typed"} and "__pycache__" not in p.parts}
    if stale := sorted(n for n in packed.keys() | source.keys() if packed.get(n) != source.get(n)):
        # setuptools builds ./app in app/build/lib and never removes a module deleted from app/src there
        fix = "remove app/build, then run 'make mirror'" if packed.keys() - source.keys() else "run 'make mirror'"
        raise fail(f"{wheels[0].relative_to(REPO)} does not match app/src ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}): {fix}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    ap.add_argument("--mirror", type=Path, default=REPO / "build" / "mirror")
    args, pytest_args = ap.parse_known_args(argv)

    spec_file = newest_spec()
    lock = spec_file.with_name(spec_file.stem + ".lock.txt")
    if not lock.is_file():
        raise fail(f"{spec_file.name} has no {lock.name}: run 'make locks'")
    wheel = service_wheel()
    prefix, home = OUT / spec_file.stem, OUT / "home"
    python = prefix / "bin" / "python"
    OUT.mkdir(parents=True, exist_ok=True)
    stamp_file = prefix / "conda-meta" / "app-env-test.json"
    stamp = {"spec": spec_file.name, "spec_sha256": sha256(spec_file), "lock_sha256": sha256(lock)}
    start = time.monotonic()
    if not (stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp and python.is_file()):
        print(f"app-env-test: building {prefix.relative_to(REPO)} from {lock.relative_to(REPO)}", flush=True)
        build_env(args.mirror, spec_file, lock, prefix, home)
        stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")

    install_tools(python, home, OUT / "wheelhouse")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-index", wheel],
        mirror_pip_env(home), "installing the service wheel")
    have, broken = inspect(python, home)
    pins = spec_pins(spec_file)
    off = [f"{n} {have.get(n, 'missing')} (yml: {v})" for n, v in pins.items()
           if n not in NOT_DISTS and (n in CHECKED or n in have) and have.get(n) != v]
    if broken or off:
        stamp_file.unlink(missing_ok=True)  # the next run rebuilds the env from the lock
        if broken:
            raise fail(f"unmet requirements in {prefix.relative_to(REPO)}: {'; '.join(broken)}")
        raise fail(f"{prefix.relative_to(REPO)} differs from {spec_file.name}: {', '.join(off)}; the next run rebuilds it "
                   f"(if this repeats, {lock.name} is stale: run 'make locks')")

    print(f"app-env-test: {prefix.relative_to(REPO)} ({spec_file.name}, ready in {time.monotonic() - start:.1f} s): "
          f"gunicorn {have['gunicorn']}, alembic {have['alembic']}, flask {have['flask']}", flush=True)
    env = clean_env(Path.home())
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(python), "-m", "pytest", "-q", "app/tests", *pytest_args], cwd=REPO, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
