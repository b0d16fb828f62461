"""App hosts: the billing service under systemd, sandboxed, on the current release."""

import json
import re

import pytest
from labhosts import hosts_of

testinfra_hosts = hosts_of("app")

ROOT = "/opt/token-billing"


def test_service_running_enabled_listening(host):
    service = host.service("token-billing")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://0.0.0.0:8000").is_listening


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("User", "token-billing"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("LimitNOFILE", "65536"),
        ("ReadWritePaths", "/var/lib/token-billing"),
    ],
)
def test_unit_sandboxing(host, prop, value):
    assert host.service("token-billing").systemd_properties[prop] == value


def test_unit_is_managed(host):
    unit = host.file("/etc/systemd/system/token-billing.service").content_string
    assert unit.splitlines()[0].startswith("#")
    assert "ansible managed" in unit.lower()


def test_service_user_cannot_log_in(host):
    user = host.user("token-billing")
    assert user.shell == "/usr/sbin/nologin"


def test_current_release_points_at_v1_env(host):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{ROOT}/releases/v1"
    assert host.file(f"{ROOT}/releases/v1/env").linked_to == "/opt/miniconda3/envs/token-billing-v1"


def test_config_is_private_and_secret_free(host):
    config = host.file(f"{ROOT}/releases/v1/config.toml")
    assert config.mode == 0o640
    assert config.group == "token-billing"
    settings = dict(line.split(" = ", 1) for line in config.content_string.splitlines() if " = " in line)
    assert re.fullmatch(r'"postgresql\+psycopg://billing_blue@[\w.-]+:5432/billing"', settings["database_url"])
    assert settings["database_password_file"] == '"/etc/token-billing/database-password-billing_blue"'
    assert host.file("/etc/token-billing/database-password-billing_blue").mode == 0o640


def test_ready_and_serving_metrics(host):
    ready = json.loads(host.check_output("curl -fsS http://127.0.0.1:8000/readyz"))
    assert ready["status"] == "ready"
    assert "token_billing_" in host.check_output("curl -fsS http://127.0.0.1:8000/metrics")
