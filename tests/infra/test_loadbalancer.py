"""Load balancer: HAProxy health-checks the app hosts and forwards to ready ones."""

import json

from labhosts import hosts_of

testinfra_hosts = hosts_of("lb")


def test_haproxy_running(host):
    assert host.service("haproxy").is_running
    assert host.service("haproxy").is_enabled
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.file("/run/haproxy/admin.sock").is_socket


def test_every_app_host_is_up_in_the_backend(host):
    stat = host.check_output("echo 'show stat' | python3 -c \"import socket,sys; s=socket.socket(socket.AF_UNIX); "
                             "s.connect('/run/haproxy/admin.sock'); s.sendall(sys.stdin.read().encode()); "
                             "print(s.makefile().read())\"")
    rows = [line.split(",") for line in stat.splitlines() if line.startswith("be_billing,")]
    servers = {r[1]: r[17] for r in rows if r[1] not in ("BACKEND", "FRONTEND")}
    assert servers, stat
    assert set(servers.values()) == {"UP"}, servers


def test_readyz_and_metrics_through_the_balancer(host):
    ready = json.loads(host.check_output("curl -fsS http://127.0.0.1/readyz"))
    assert ready["status"] == "ready"
    metrics = host.check_output("curl -fsS http://127.0.0.1/metrics")
    assert "token_billing_" in metrics
