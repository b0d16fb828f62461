"""App hosts: the conda distribution, its system-wide condarc and the versioned envs."""

import json

import pytest
from condaver import auto_activate_key
from labhosts import hosts_of

testinfra_hosts = hosts_of("app")

PREFIX = "/opt/miniconda3"
CONDA = f"{PREFIX}/bin/conda"
ENVS = {
    "token-billing-v1": {"flask": "3.1.2", "prometheus_client": "0.25.0"},
    "token-billing-v2": {"flask": "3.1.3", "prometheus_client": "0.26.0"},
}


def test_prefix_owned_by_root(host):
    prefix = host.file(PREFIX)
    assert prefix.is_directory
    assert prefix.user == "root"
    assert prefix.mode == 0o755
    record = json.loads(host.file(f"{PREFIX}/conda-meta/ansible-installer.record").content_string)
    assert len(record["sha256"]) == 64
    assert "latest" not in record["file"]


def test_condarc_is_final_and_agrees_with_conda(host):
    condarc = host.file(f"{PREFIX}/.condarc").content_string
    key = auto_activate_key(host, CONDA)
    assert "channels: #!final" in condarc
    assert f"\n{key}: false #!final" in condarc
    shown = json.loads(host.check_output(f"{CONDA} config --show --json"))
    assert shown[key] is False
    assert shown["pkgs_dirs"] == [f"{PREFIX}/pkgs"]
    assert shown["channels"] == ["conda-forge"]
    assert shown["channel_priority"] == "strict"


def test_user_condarc_cannot_override_final_keys(host):
    host.run("printf 'channels:\\n  - evil\\nchannel_priority: disabled\\n' > /root/.condarc")
    try:
        shown = json.loads(host.check_output(f"{CONDA} config --show channels channel_priority --json"))
    finally:
        host.run("rm -f /root/.condarc")
    assert shown == {"channels": ["conda-forge"], "channel_priority": "strict"}


def test_package_cache_marked_writable(host):
    cache = host.file(f"{PREFIX}/pkgs")
    assert cache.mode == 0o775
    assert host.file(f"{PREFIX}/pkgs/urls.txt").exists


def test_no_conda_init_in_shell_files(host):
    for rc in ("/root/.bashrc", "/root/.profile", "/etc/bash.bashrc"):
        f = host.file(rc)
        if f.exists:
            assert "conda initialize" not in f.content_string, rc


def test_pip_points_at_the_mirror(host):
    assert "/pypi/simple" in host.file("/etc/pip.conf").content_string


def test_solver_is_classic_and_says_why(host):
    assert json.loads(host.check_output(f"{CONDA} config --show solver --json"))["solver"] == "classic"
    assert "libmamba" in host.file(f"{PREFIX}/condarc.d/lab-build.yml").content_string


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_built_from_recorded_spec(host, name):
    env = f"{PREFIX}/envs/{name}"
    record = json.loads(host.file(f"{env}/conda-meta/ansible-env.record").content_string)
    assert record["name"] == name
    assert len(record["spec_sha256"]) == 64
    version = host.check_output(f"{env}/bin/python -c 'import sys; print(sys.version.split()[0])'")
    assert version == "3.11.7"
    for module, wanted in ENVS[name].items():
        got = host.check_output(
            f"{env}/bin/python -c 'import importlib.metadata as m, {module}; print(m.version(\"{module.replace('_', '-')}\"))'"
        )
        assert got == wanted, module
    host.check_output(f"{env}/bin/python -c 'import sqlalchemy, psycopg, gunicorn, alembic'")
    listed = json.loads(host.check_output(f"{CONDA} list -p {env} --json"))
    assert any(p["name"] == "psycopg-binary" and p["channel"] == "pypi" for p in listed)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_modules_load_without_compiling(host, name):
    """The services run as users who cannot write __pycache__ in an env: nothing they import may
    need compiling first (conda compiles only noarch packages; the role compiles the rest)."""
    python = f"{PREFIX}/envs/{name}/bin/python"
    run = host.run(f"cd / && runuser -u nobody -- {python} -v -c 'import sqlalchemy, psycopg, flask, gunicorn, alembic, argparse, json'")
    assert run.rc == 0, run.stderr
    compiled = [line for line in run.stderr.splitlines() if line.startswith("# code object from ") and line.endswith(".py")]
    assert compiled == [], f"{len(compiled)} modules compiled at import, e.g. {compiled[:3]}"
