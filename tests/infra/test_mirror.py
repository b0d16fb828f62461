"""Mirror host: nginx serves the conda channel, the PyPI index and the installers."""

import json

from labhosts import hosts_of

testinfra_hosts = hosts_of("mirror")


def test_nginx_running_and_listening(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled
    assert host.socket("tcp://0.0.0.0:8080").is_listening


def test_channel_is_indexed(host):
    for subdir in ("noarch", "linux-64"):
        out = host.check_output(f"curl -fsS http://127.0.0.1:8080/conda/conda-forge/{subdir}/repodata.json")
        repodata = json.loads(out)
        assert repodata["info"]["subdir"] == subdir
        assert repodata.get("packages.conda"), f"{subdir} has no .conda packages"


def test_pypi_index_and_installers(host):
    assert "psycopg-binary" in host.check_output("curl -fsS http://127.0.0.1:8080/pypi/simple/")
    listing = host.check_output("curl -fsS http://127.0.0.1:8080/installers/")
    assert ".sh.sha256" in listing
    assert "latest" not in listing
