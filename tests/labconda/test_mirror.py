"""Mirror layout: channel, PEP 503 index (incl. --app-wheel), env files and locks."""
import hashlib
import importlib.util
import json
import re
import zipfile

import yaml
from conftest import ENVS, REPO


def _build_module():
    spec = importlib.util.spec_from_file_location("mirror_build", REPO / "lab" / "mirror" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_channel_has_both_versions_of_every_env(mirror_dir):
    pkgs = {}
    for sd in ("linux-64", "noarch"):
        rd = json.loads((mirror_dir / "conda" / "conda-forge" / sd / "repodata.json").read_text())
        assert rd["info"]["subdir"] == sd
        for fn, rec in rd["packages.conda"].items():
            assert (mirror_dir / "conda" / "conda-forge" / sd / fn).is_file()
            pkgs.setdefault(rec["name"], set()).add(rec["version"])
    for f in ("token-billing-v1.yml", "token-billing-v2.yml"):
        env = yaml.safe_load((ENVS / f).read_text())
        assert env["channels"] == ["conda-forge"]
        pins = [d for d in env["dependencies"] if isinstance(d, str)]
        assert pins and all(re.fullmatch(r"[a-z0-9_.-]+=[0-9][^=\s]*", d) for d in pins), pins
        for d in pins:
            name, ver = d.split("=")
            assert ver in pkgs[name], d
        assert {"pip": ["psycopg-binary==3.3.9"]} in env["dependencies"]
        lock = (mirror_dir / "envs" / f.replace(".yml", ".lock.txt")).read_text().splitlines()
        assert "@EXPLICIT" in lock
        urls = [ln for ln in lock if ln.startswith("http")]
        assert len(urls) == len(pins) and all("#sha256:" in u for u in urls)
    assert {"python", "python_abi", "pip", "labconda", "py-rattler", "pyyaml"} <= set(pkgs)
    assert pkgs["python"] == {"3.11.7"}


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
