"""The mirror's installers carry real conda: what the roles rely on, per version, by a real run."""
import importlib.util
import json
import re
import subprocess

import pytest
from conftest import ENVS, NEWEST, PIN, REPO, Conda, install

spec = importlib.util.spec_from_file_location("conda_env_filter", REPO / "roles/conda_env/filter_plugins/conda_env.py")
conda_filter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conda_filter)


@pytest.mark.parametrize("version", [PIN, NEWEST])
def test_installer_lays_down_real_conda_with_the_classic_solver(conda_of, version):
    conda = conda_of(version)
    assert conda("--version").stdout.strip() == f"conda {version}"
    assert conda.json("config", "--show", "solver")["solver"] == "classic"
    info = conda.json("info")
    assert str(conda.base / "condarc.d" / "lab-build.yml") in info["config_files"]
    for rel in ("condabin/conda", "etc/profile.d/conda.sh", "bin/activate", "conda-meta/initial-state.explicit.txt"):
        assert (conda.base / rel).is_file(), rel
    assert str(conda.base) in (conda.base / "etc/profile.d/conda.sh").read_text()  # placeholder replaced


@pytest.mark.parametrize("version,key,absent", [(PIN, "auto_activate_base", "auto_activate"),
                                                (NEWEST, "auto_activate", "auto_activate_base")])
def test_auto_activate_key_by_version(conda_of, version, key, absent):
    shown = conda_of(version).json("config", "--show")
    assert key in shown and absent not in shown


@pytest.mark.parametrize("version,name", [(PIN, "PackagesNotFoundError"), (NEWEST, "PackagesNotFoundInChannelsError")])
def test_missing_package_is_one_line_with_either_name(conda_of, tmp_path, version, name):
    conda = conda_of(version)
    r = conda("create", "--yes", "--json", "-p", tmp_path / "broken", "python=3.11.7", "nosuchpkg=1.0")
    assert r.returncode == 1
    line = conda_filter.conda_env_error({"stdout": r.stdout, "stderr": r.stderr, "rc": r.returncode})
    assert line.startswith(f"{name}: ") and "nosuchpkg" in line and "\n" not in line
    assert not (tmp_path / "broken" / "conda-meta" / "history").exists()


@pytest.mark.parametrize("version", [PIN, NEWEST])
def test_env_create_from_the_mirror_and_progress_objects(conda_of, tmp_path, version):
    conda = conda_of(version)
    spec = tmp_path / "v1.yml"
    spec.write_text((ENVS / "token-billing-v1.yml").read_text())
    r = conda("env", "create", "--json", "--file", spec, "-p", tmp_path / "v1", cwd=tmp_path,
              env={"CONDA_PKGS_DIRS": tmp_path / "pkgs"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    chunks = [json.loads(c) for c in r.stdout.split("\0") if c.strip()]
    assert chunks[-1]["success"] is True
    # anything before the result is a download progress object, NUL-separated
    assert all("fetch" in c for c in chunks[:-1])
    print(f"conda {version}: {len(chunks) - 1} progress objects before the result")
    got = subprocess.run([str(tmp_path / "v1" / "bin" / "python"), "-c", "import flask, psycopg, gunicorn; print(flask.__version__)"],
                         capture_output=True, text=True)
    assert got.stdout.strip() == "3.1.2", got.stderr


def test_existing_empty_prefix_needs_f(mirror_dir, home, tmp_path):
    prefix = tmp_path / "mnt"
    prefix.mkdir()
    r = install(mirror_dir, PIN, prefix, home)
    assert r.returncode == 1
    assert f"ERROR: File or directory already exists: '{prefix}'" in r.stderr
    assert install(mirror_dir, PIN, prefix, home, "-f").returncode == 0
    assert (prefix / "conda-meta" / "history").is_file()


def test_u_overlays_an_existing_installation(mirror_dir, home, tmp_path, conda_of):
    prefix = tmp_path / "base"
    assert install(mirror_dir, PIN, prefix, home).returncode == 0
    extra = Conda(prefix, home, conda_of(PIN).server)
    extra.json("install", "--yes", "-p", prefix, "blinker=1.9.0", env={"CONDA_AUTO_UPDATE_CONDA": "false"})
    r = install(mirror_dir, NEWEST, prefix, home, "-u")
    assert r.returncode == 0, r.stderr
    assert extra("--version").stdout.strip() == f"conda {NEWEST}"
    names = {p["name"] for p in extra.json("list", "-p", prefix)}
    assert "blinker" in names  # kept: -u replaces same-name packages and leaves the others
    history = (prefix / "conda-meta" / "history").read_text()
    assert re.search(rf"^-.*::conda-{PIN}-py311_0$", history, re.M)
    assert re.search(rf"^\+.*::conda-{NEWEST}-py311_0$", history, re.M)
