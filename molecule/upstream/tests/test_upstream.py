"""Real Miniconda from upstream: the prefix, the condarc conda agrees with, the env."""

import json

from condaver import auto_activate_key
from labhosts import hosts_of

testinfra_hosts = hosts_of("app")


def test_real_conda_with_final_condarc(host):
    info = json.loads(host.check_output("/opt/miniconda3/bin/conda info --json"))
    assert "lab-build.yml" not in " ".join(info["config_files"])
    shown = json.loads(host.check_output("/opt/miniconda3/bin/conda config --show --json"))
    assert shown["channels"] == ["conda-forge"]
    assert shown[auto_activate_key(host, "/opt/miniconda3/bin/conda")] is False


def test_v1_env_imports(host):
    host.check_output(
        "/opt/miniconda3/envs/token-billing-v1/bin/python -c 'import flask, sqlalchemy, psycopg, prometheus_client'"
    )
