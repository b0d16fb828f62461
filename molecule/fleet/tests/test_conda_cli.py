"""The conda the app hosts run: real conda, the version they were given, the envs it knows."""

import json

from condaver import conda_version
from labhosts import hosts_of

testinfra_hosts = hosts_of("app")

PREFIX = "/opt/miniconda3"
CONDA = f"{PREFIX}/bin/conda"
# tbf-app1 carries the production pin's conda, tbf-app2 the newest release (host_vars/).
EXPECTED = {"tbf-app1": "25.1.1", "tbf-app2": "26.7.1"}


def test_conda_is_the_real_one_at_the_pinned_version(host):
    want = EXPECTED[host.backend.name]
    assert host.check_output(f"{CONDA} --version") == f"conda {want}"
    record = json.loads(host.file(f"{PREFIX}/conda-meta/ansible-installer.record").content_string)
    assert record["file"] == f"CondaLab-{want}-0-Linux-x86_64.sh"
    assert record["flavor"] == "lab"
    meta = json.loads(host.file(f"{PREFIX}/conda-meta/conda-{want}-py311_0.json").content_string)
    assert meta["url"].endswith(f"/conda/conda-forge/linux-64/conda-{want}-py311_0.conda")
    # conda's own modules, not a stand-in: the source tree's solver and CLI
    host.check_output(f"{PREFIX}/bin/python -c 'import conda.core.solve, conda.cli.main_create, pycosat'")


def test_conda_info_names_the_lab_build(host):
    info = json.loads(host.check_output(f"{CONDA} info --json"))
    assert info["root_prefix"] == PREFIX
    assert info["pkgs_dirs"] == [f"{PREFIX}/pkgs"]
    assert f"{PREFIX}/condarc.d/lab-build.yml" in info["config_files"]
    assert any("http://" in url and "/conda/conda-forge/" in url for url in info["channels"])
    assert "lab build of real conda" in host.file(f"{PREFIX}/condarc.d/lab-build.yml").content_string


def test_env_list_shows_every_versioned_env(host):
    envs = json.loads(host.check_output(f"{CONDA} env list --json"))["envs"]
    for version in ("v0", "v1", "v2"):
        assert f"{PREFIX}/envs/token-billing-v{version[1:]}" in envs


def test_history_records_the_installer_transaction(host):
    want = EXPECTED[host.backend.name]
    history = host.file(f"{PREFIX}/conda-meta/history").content_string
    assert any(ln.startswith("+") and ln.endswith(f"::conda-{want}-py311_0") for ln in history.splitlines())
    assert conda_version(host, CONDA) == tuple(int(x) for x in want.split("."))
