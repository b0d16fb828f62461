"""The upstream fill, against a local HTTP server standing in for the upstream hosts."""
import hashlib
import subprocess
import sys

from conftest import ENVS, PIN, REPO

UPSTREAM = REPO / "lab" / "mirror" / "upstream.py"


def _run(server, out, *extra):
    return subprocess.run([sys.executable, str(UPSTREAM), "--out", str(out), "--conda-url", f"{server}/conda",
                           "--pypi-url", f"{server}/pypi/simple", "--installers-url", f"{server}/installers", *extra],
                          capture_output=True, text=True, timeout=600)


def test_upstream_fills_exactly_what_the_locks_name(server, mirror_dir, tmp_path):
    name = f"CondaLab-{PIN}-0-Linux-x86_64.sh"
    sha = (mirror_dir / "installers" / f"{name}.sha256").read_text().split()[0]
    out = tmp_path / "mirror"
    r = _run(server, out, "--installer", f"{name}={sha}")
    assert r.returncode == 0, r.stdout + r.stderr
    locked = set()
    for lock in ENVS.glob("*.lock.txt"):
        for ln in lock.read_text().splitlines():
            if "://" in ln:
                url, digest = ln.split("#")
                rel = url.split("/conda/conda-forge/")[1]
                got = out / "conda" / "conda-forge" / rel
                assert hashlib.sha256(got.read_bytes()).hexdigest() == digest
                locked.add(rel)
    channel = {str(p.relative_to(out / "conda" / "conda-forge")) for p in (out / "conda" / "conda-forge").rglob("*.conda")}
    assert channel == locked
    assert (out / "conda" / "conda-forge" / "noarch" / "repodata.json").is_file()
    assert hashlib.sha256((out / "installers" / name).read_bytes()).hexdigest() == sha
    assert any(p.name.startswith("psycopg_binary-3.3.9") for p in (out / "pypi" / "simple" / "psycopg-binary").iterdir())
    again = _run(server, out, "--installer", f"{name}={sha}")
    assert "0 fetched" in again.stdout


def test_upstream_keeps_nothing_with_a_wrong_sha256(server, tmp_path):
    name = f"CondaLab-{PIN}-0-Linux-x86_64.sh"
    r = _run(server, tmp_path / "mirror", "--installer", f"{name}={'0' * 64}")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "expected 0000" in r.stderr and "nothing was kept" in r.stderr
    assert not (tmp_path / "mirror" / "installers" / name).exists()
