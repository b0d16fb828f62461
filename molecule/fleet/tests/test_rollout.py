"""Rollout scenarios on the fleet, in order: a broken release rolls back by
itself, an upgrade under load loses no request, a rerun changes nothing,
rollback.yml returns the fleet, cleanup removes only retired envs.

Runs after tests/infra (the state checks at v1) in `molecule verify`.
"""

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ENGINE = os.environ.get("LAB_ENGINE", "podman")
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
APPS = ("tbf-app1", "tbf-app2")
INGEST_KEY = "tbk_1a2b3c4d5e6f7081_labIngestKeyNotSecretOnlyForTheLab01"


def sh(container: str, command: str, check: bool = True) -> str:
    proc = subprocess.run([ENGINE, "exec", container, "sh", "-c", command], capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"{container}: {command}: {proc.stderr}")
    return proc.stdout.strip()


def playbook(name: str, *extra: str, env: dict | None = None) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(PROJECT / "playbooks" / name), *extra],
        capture_output=True, text=True, cwd=PROJECT, env={**os.environ, **(env or {})},
    )
    elapsed = time.monotonic() - start
    print(f"{name} {' '.join(extra)}: rc={proc.returncode} in {elapsed:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr, elapsed


def changed_total(output: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


def release(container: str) -> str:
    return sh(container, "basename $(readlink /opt/token-billing/current)")


def main_pid(container: str) -> str:
    return sh(container, "systemctl show -p MainPID --value token-billing")


def haproxy_servers() -> dict[str, str]:
    """Backend server name -> status, from HAProxy's runtime API on the lb host."""
    query = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
             "s.sendall(b'show stat\\n'); print(s.makefile().read())")
    rows = [line.split(",") for line in sh("tbf-lb", f'python3 -c "{query}"').splitlines()]
    return {r[1]: r[17] for r in rows if r[0] == "be_billing" and r[1] not in ("BACKEND", "FRONTEND")}


def ready(container: str) -> bool:
    return '"ready"' in sh(container, "curl -s http://127.0.0.1:8000/readyz", check=False)


def test_broken_release_stops_on_first_host_and_rolls_it_back():
    pids = {c: main_pid(c) for c in APPS}
    rc, out, _ = playbook(
        "deploy.yml", "-e", "billing_service_release=v9-broken", "-e", "billing_service_env=token-billing-v2",
        # Binds where the health gate never looks: readiness never comes up.
        "-e", "billing_service_bind_address=127.0.0.2", "-e", "billing_service_ready_retries=5",
    )
    assert rc != 0, out
    assert "deploy of v9-broken stopped: tbf-app1 failed at 'Wait until the service is ready'" in out, out[-3000:]
    assert release("tbf-app1") == "v1" and ready("tbf-app1")
    assert release("tbf-app2") == "v1" and main_pid("tbf-app2") == pids["tbf-app2"]
    servers = haproxy_servers()
    assert servers == {"tbf-app1": "UP", "tbf-app2": "UP"}, servers


def test_upgrade_to_v2_under_load_loses_nothing():
    run_id = uuid.uuid4().hex[:12]
    sh("tbf-lb", "rm -f /tmp/loadgen.stop")
    script = (PROJECT / "molecule/fleet/loadgen.py").read_text()
    gen = subprocess.Popen(
        [ENGINE, "exec", "-i", "tbf-lb", "python3", "-", "--key", INGEST_KEY, "--run-id", run_id, "--deadline", "400"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    gen.stdin.write(script)
    gen.stdin.close()
    time.sleep(3)
    rc, out, elapsed = playbook("deploy.yml", "-e", "billing_service_release=v2")
    time.sleep(2)
    sh("tbf-lb", "touch /tmp/loadgen.stop")
    result = json.loads(gen.stdout.read())
    gen.wait(timeout=60)
    print(f"rollout v1 -> v2 on two app hosts: {elapsed:.1f} s under load: {result}")
    assert rc == 0, out[-3000:]
    assert [release(c) for c in APPS] == ["v2", "v2"]
    assert result["failed"] == 0, result
    assert result["events_sent"] > 0 and result["events_acked"] == result["events_sent"], result
    stored = sh("tbf-db", f"runuser -u postgres -- psql -d billing -tAc \"select count(*) from usage_events where event_id like '{run_id}-%'\"")
    assert int(stored) == result["events_sent"]


def test_deploy_again_changes_nothing_and_restarts_nothing():
    pids = {c: main_pid(c) for c in APPS}
    rc, out, elapsed = playbook("deploy.yml", "-e", "billing_service_release=v2")
    print(f"idempotent deploy rerun: {elapsed:.1f} s")
    assert rc == 0, out[-3000:]
    assert changed_total(out) == 0, out[-3000:]
    assert {c: main_pid(c) for c in APPS} == pids


def test_rollback_returns_the_fleet_and_back_again():
    rc, out, _ = playbook("rollback.yml")
    assert rc == 0, out[-3000:]
    assert [release(c) for c in APPS] == ["v1", "v1"]
    assert all(ready(c) for c in APPS)
    rc, out, _ = playbook("rollback.yml")
    assert rc == 0, out[-3000:]
    assert [release(c) for c in APPS] == ["v2", "v2"]
    assert all(sh(c, "basename $(readlink /opt/token-billing/previous)") == "v1" for c in APPS)


@pytest.mark.parametrize("container", APPS)
def test_envs_before_cleanup(container):
    envs = sh(container, "ls /opt/miniconda3/envs").split()
    assert {"token-billing-v0", "token-billing-v1", "token-billing-v2"} <= set(envs)


def cleanup_reports(*extra: str) -> dict[str, dict]:
    """Run cleanup_envs.yml; the per-host report of its last task."""
    rc, out, _ = playbook("cleanup_envs.yml", *extra, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert rc == 0, out[-3000:]
    tasks = json.JSONDecoder().raw_decode(out, out.index("{"))[0]["plays"][-1]["tasks"]
    report = next(t for t in tasks if t["task"]["name"].endswith("Report the cleanup"))
    return {host: result["msg"] for host, result in report["hosts"].items()}


def test_cleanup_removes_only_the_retired_env():
    for host, report in cleanup_reports("--check").items():
        assert report["would_remove"] == ["token-billing-v0"], (host, report)
        assert report["removed"] == []
    assert all("token-billing-v0" in sh(c, "ls /opt/miniconda3/envs") for c in APPS)
    for host, report in cleanup_reports().items():
        assert report["removed"] == ["token-billing-v0"], (host, report)
        assert set(report["kept"]) == {"token-billing-v1", "token-billing-v2"}
    for c in APPS:
        assert sh(c, "ls /opt/miniconda3/envs").split() == ["token-billing-v1", "token-billing-v2"]
        assert ready(c)
