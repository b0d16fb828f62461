"""Mirror layout: channel, PEP 503 index (incl. --app-wheel), committed locks."""
import hashlib
import importlib.util
import io
import json
import re
import tarfile
import zipfile

import pytest
import yaml
from conftest import ENVS, REPO


def _build_module():
    spec = importlib.util.spec_from_file_location("mirror_build", REPO / "lab" / "mirror" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _channel(mirror_dir) -> dict[str, dict]:
    pkgs = {}
    for sd in ("linux-64", "noarch"):
        rd = json.loads((mirror_dir / "conda" / "conda-forge" / sd / "repodata.json").read_text())
        assert rd["info"]["subdir"] == sd
        for fn, rec in rd["packages.conda"].items():
            assert (mirror_dir / "conda" / "conda-forge" / sd / fn).is_file()
            assert "indexed_timestamp" not in rec  # reproducible repodata
            pkgs[fn] = rec
    return pkgs


def test_channel_holds_real_conda_and_every_env_pin(mirror_dir):
    pkgs = _channel(mirror_dir)
    versions: dict[str, set[str]] = {}
    for rec in pkgs.values():
        versions.setdefault(rec["name"], set()).add(rec["version"])
    assert versions["conda"] == {"25.1.1", "26.7.1"}
    assert versions["python"] == {"3.11.7"}
    assert {"pycosat", "ruamel-yaml", "conda-package-handling", "pip"} <= set(versions)
    assert not any("rattler" in name for name in versions)
    for f in sorted(ENVS.glob("*.yml")):
        env = yaml.safe_load(f.read_text())
        assert env["channels"] == ["conda-forge"]
        pins = [d for d in env["dependencies"] if isinstance(d, str)]
        assert pins and all(re.fullmatch(r"[a-z0-9_.-]+=[0-9][^=\s]*", d) for d in pins), pins
        for d in pins:
            name, ver = d.split("=")
            assert ver in versions[name], d


@pytest.mark.parametrize("lock", sorted(ENVS.glob("*.lock.txt")), ids=lambda p: p.name)
def test_committed_lock_matches_the_channel_byte_for_byte(mirror_dir, lock):
    pkgs = _channel(mirror_dir)
    spec = yaml.safe_load(lock.with_name(lock.name.replace(".lock.txt", ".yml")).read_text())
    pins = {d.split("=")[0] for d in spec["dependencies"] if isinstance(d, str)}
    lines = lock.read_text().splitlines()
    assert "@EXPLICIT" in lines
    urls = [ln for ln in lines if "://" in ln]
    assert len(urls) == len(pins)
    for url in urls:
        m = re.fullmatch(r"http://mirror:8080/conda/conda-forge/(linux-64|noarch)/([^#]+)#([0-9a-f]{64})", url)
        assert m, url
        assert pkgs[m.group(2)]["sha256"] == m.group(3), url
        assert pkgs[m.group(2)]["name"] in pins


def test_a_lock_the_channel_does_not_match_stops_the_build(mirror_dir, tmp_path, monkeypatch):
    build = _build_module()
    lock = tmp_path / "x.lock.txt"
    lock.write_text("@EXPLICIT\nhttp://mirror:8080/conda/conda-forge/noarch/pip-26.3-py_0.conda#" + "0" * 64 + "\n")
    monkeypatch.setattr(build, "ENVS_DIR", tmp_path)
    with pytest.raises(SystemExit, match=r"x.lock.txt pins pip-26.3-py_0.conda sha256 000000000000 .* run 'make locks'"):
        build.check_locks(build.load_repodata(mirror_dir / "conda" / "conda-forge"))


def test_missing_conda_source_is_one_line(tmp_path):
    build = _build_module()
    with pytest.raises(SystemExit) as exc:
        build.conda_tarball(tmp_path, "25.1.1")
    msg = str(exc.value)
    assert "\n" not in msg and "conda-25.1.1.tar.gz" in msg and "CONDA_SRC" in msg and "upstream" in msg


def test_pypi_simple_index(mirror_dir):
    simple = mirror_dir / "pypi" / "simple"
    assert '<a href="psycopg-binary/">' in (simple / "index.html").read_text()
    page = (simple / "psycopg-binary" / "index.html").read_text()
    m = re.search(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', page)
    assert m and m.group(1).startswith("psycopg_binary-3.3.9-")
    assert hashlib.sha256((simple / "psycopg-binary" / m.group(1)).read_bytes()).hexdigest() == m.group(2)


def test_app_wheel_goes_into_the_index(tmp_path):
    build = _build_module()
    whl = tmp_path / "token_billing-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("token_billing/__init__.py", "")
        z.writestr("token_billing-1.2.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: token-billing\nVersion: 1.2.0\n")
    out = tmp_path / "pypi"
    assert build.build_pypi(out, [whl]) is True
    page = (out / "simple" / "token-billing" / "index.html").read_text()
    assert f"{whl.name}#sha256={hashlib.sha256(whl.read_bytes()).hexdigest()}" in page
    assert build.build_pypi(out, [whl]) is False  # unchanged: nothing rewritten


def test_installer_payload_times_depend_only_on_the_packages(mirror_dir):
    # A cold build and a warm one must write the same installer: no member may carry
    # the time it was extracted at (symlinks did, so the installer changed per build).
    mod = _build_module()
    installer = next((mirror_dir / "installers").glob("*-Linux-x86_64.sh"))
    data = installer.read_bytes()
    header = re.search(rb"HEADER_SIZE=(\d{12}) PAYLOAD_SIZE=(\d{12})", data)
    start, size = int(header[1]), int(header[2])
    wrong = []
    with tarfile.open(fileobj=io.BytesIO(data[start:start + size]), mode="r:gz") as tf:
        members = tf.getmembers()
        for m in members:
            parts = m.name.split("/")
            want = mod.member_mtime(parts[1] + ".conda") if len(parts) > 2 else mod.EPOCH
            if m.mtime != want:
                wrong.append(f"{m.name} ({'symlink' if m.issym() else 'file'}): {m.mtime} != {want}")
    assert any(m.issym() for m in members)
    assert not wrong, f"{len(wrong)} members keep a build-time mtime, e.g. {wrong[:3]}"
