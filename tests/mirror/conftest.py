"""Fixtures: build (or reuse) the lab mirror, serve it over HTTP, install its real conda."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "lab" / "mirror" / "build.py"
PIN, NEWEST = "25.1.1", "26.7.1"


def _builder_python() -> str:
    try:
        import rattler  # noqa: F401
        import whl2conda  # noqa: F401
        return sys.executable
    except ImportError:
        venv = REPO / ".venv-mirror" / "bin" / "python"
        if venv.exists():
            return str(venv)
        pytest.fail("py-rattler/whl2conda not installed: run make venv (see lab/mirror/README.md)")


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    # its own tree beside make mirror's, sharing the build cache: a warm run only links and indexes
    out = Path(os.environ.get("MIRROR_OUT", REPO / "build" / "test-mirror"))
    subprocess.run([_builder_python(), str(BUILD), "--out", str(out), "--cache", os.environ.get("MIRROR_CACHE", str(REPO / "build" / "cache"))], check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("MIRROR_BUILD_VERBOSE") else None)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(mirror_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(mirror_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/conda/conda-forge/noarch/repodata.json", timeout=5).read()
            break
        except OSError as exc:  # refused, reset or timed out: the server is still starting
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"mirror http server did not answer in 60 s: {exc}") from exc
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)


def installer(mirror_dir: Path, version: str) -> Path:
    return mirror_dir / "installers" / f"CondaLab-{version}-0-Linux-x86_64.sh"


def clean_env(home: Path, server_url: str | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONDA", "PIP_", "PYTHON", "VIRTUAL_ENV", "_CE_"))}
    env.update(HOME=str(home), PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_CACHE_DIR="1")
    if server_url:
        env["PIP_INDEX_URL"] = server_url + "/pypi/simple"
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def home(tmp_path_factory, server) -> Path:
    h = tmp_path_factory.mktemp("home")
    (h / ".condarc").write_text(f"channel_alias: {server}/conda\nchannels: [conda-forge]\nchannel_priority: strict\n")
    return h


def install(mirror_dir: Path, version: str, prefix: Path, home: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(installer(mirror_dir, version)), "-b", "-p", str(prefix), *flags],
                          env=clean_env(home), capture_output=True, text=True)


class Conda:
    def __init__(self, base: Path, home: Path, server: str):
        self.base, self.home, self.server = base, home, server
        self.exe = str(base / "bin" / "conda")

    def __call__(self, *args, env=None, cwd=None, input=None) -> subprocess.CompletedProcess:
        e = clean_env(self.home, self.server, **(env or {}))
        return subprocess.run([self.exe, *map(str, args)], env=e, cwd=cwd, capture_output=True, text=True,
                              input=input, timeout=300)

    def json(self, *args, rc=0, **kw):
        r = self(*args, "--json", **kw)
        assert r.returncode == rc, f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}"
        chunks = [c for c in r.stdout.split("\0") if c.strip()]  # NUL-separated progress objects first
        return json.loads(chunks[-1]) if chunks else None


@pytest.fixture(scope="session")
def conda_of(tmp_path_factory, mirror_dir, home, server):
    """conda_of(version): that real conda, installed once per session from its CondaLab installer."""
    made: dict[str, Conda] = {}

    def get(version: str) -> Conda:
        if version not in made:
            prefix = tmp_path_factory.mktemp(f"conda-{version}") / "base"
            r = install(mirror_dir, version, prefix, home)
            assert r.returncode == 0, r.stdout + r.stderr
            made[version] = Conda(prefix, home, server)
        return made[version]

    return get


ENVS = REPO / "envs"
