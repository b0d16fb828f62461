"""The conda the app host runs: what it says it is, and the envs it knows."""

import json

from labhosts import hosts_of

testinfra_hosts = hosts_of("app")

CONDA = "/opt/miniconda3/bin/conda"


def test_conda_info_names_the_distribution(host):
    info = json.loads(host.check_output(f"{CONDA} info --json"))
    assert info["root_prefix"] == "/opt/miniconda3"
    assert info["pkgs_dirs"] == ["/opt/miniconda3/pkgs"]
    # The lab's conda is a test double on py-rattler and must say so.
    assert info.get("lab_double") is True
    assert any("http://" in url and "/conda/conda-forge/" in url for url in info["channels"])


def test_env_list_shows_every_versioned_env(host):
    envs = json.loads(host.check_output(f"{CONDA} env list --json"))["envs"]
    for version in ("v0", "v1", "v2"):
        assert f"/opt/miniconda3/envs/token-billing-{version}" in envs


def test_installer_upgrade_record(host):
    record = json.loads(host.file("/opt/miniconda3/conda-meta/ansible-installer.record").content_string)
    assert record["file"] == "LabConda-26.7.1-0-Linux-x86_64.sh"
    history = host.file("/opt/miniconda3/conda-meta/history").content_string
    assert "labconda-26.7.1" in history
