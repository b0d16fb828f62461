"""The host really is a Docker container booted to systemd, reached through the docker engine."""

import os

from labhosts import hosts_of

testinfra_hosts = hosts_of("app")


def test_runs_under_docker_with_systemd(host):
    assert os.environ.get("LAB_ENGINE") == "docker"
    assert host.backend.NAME == "docker"
    assert host.check_output("cat /proc/1/comm") == "systemd"
    assert host.check_output("systemctl is-system-running || true") in ("running", "degraded")
    assert host.file("/.dockerenv").exists
