"""Rollout scenarios on the fleet, in order: failed runs leave the fleet lock
free, a broken release rolls back by itself, an upgrade under load loses no
request, a rerun changes nothing, a rebuilt env is switched to under the drain,
slow senders cannot take a host out, rollback.yml returns the fleet, cleanup
removes only retired envs, site.yml with the production inventory rolls a
config change (and an env rebuilt after the cleanup) under load.

Runs after tests/infra (the state checks at v1) in `molecule verify`.
"""

import contextlib
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from labrun import ENGINE, FLEET_LOCK, PROJECT, BackgroundPlaybook, changed_total, lock_state, main_pid, playbook, ready, release, sh

APPS = ("tbf-app1", "tbf-app2")
REPORTING = "tbf-app1"
LB = "tbf-lb"  # also the fleet lock's host
INGEST_KEY = "tbk_1a2b3c4d5e6f7081_labIngestKeyNotSecretOnlyForTheLab01"


def test_hosts_built_from_one_lock_are_identical():
    """The envs come from the committed locks: both app hosts hold the same packages, build strings and sha256."""
    for name in ("token-billing-v1", "token-billing-v2"):
        listed = {c: sh(c, f"/opt/miniconda3/bin/conda list --explicit --sha256 -p /opt/miniconda3/envs/{name}")
                  for c in APPS}
        urls = {c: sorted(ln.split("/")[-1] for ln in out.splitlines() if "://" in ln) for c, out in listed.items()}
        lock = sorted(ln.split("/")[-1] for ln in (PROJECT / "envs" / f"{name}.lock.txt").read_text().splitlines()
                      if "://" in ln)
        assert urls[APPS[0]] == urls[APPS[1]] == lock, name
        record = json.loads(sh(APPS[0], f"cat /opt/miniconda3/envs/{name}/conda-meta/ansible-env.record"))
        assert record["lock"] is True and len(record["lock_sha256"]) == 64


def haproxy_servers() -> dict[str, str]:
    """Backend server name -> status, from HAProxy's runtime API on the lb host."""
    query = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
             "s.sendall(b'show stat\\n'); print(s.makefile().read())")
    rows = [line.split(",") for line in sh("tbf-lb", f'python3 -c "{query}"').splitlines()]
    return {r[1]: r[17] for r in rows if r[0] == "be_billing" and r[1] not in ("BACKEND", "FRONTEND")}


def controller_file(name: str, text: str) -> Path:
    path = PROJECT / "build" / "fleet-test" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_failed_runs_leave_the_lock_free():
    """A run that fails releases the lock, wherever it fails: a rollback with nothing to roll back to, site.yml
    limited to one host failing in the conda play (an env that cannot be built) and in the app play (a bad
    setting). The failed build leaves nothing behind on the host, not even its spec's copy. A bad value on the
    command line stops the run before anything (the lock included) is touched."""
    broken = controller_file("token-billing-broken.yml", "name: broken\nchannels: [conda-forge]\n"
                             "dependencies:\n  - python=3.11.7\n  - nosuchpkg=1.0\n")
    runs = {
        "rollback with no previous release": ("rollback.yml", "--limit", "tbf-app2"),
        "site.yml, conda play": ("site.yml", "--limit", "tbf-app2", "-e",
                                 json.dumps({"conda_env_envs": [{"name": "token-billing-broken", "file": str(broken)}]})),
        "site.yml, app play": ("site.yml", "--limit", "tbf-app2", "-e", "billing_service_database_url=nosuch://x"),
    }
    for what, (name, *extra) in runs.items():
        rc, out, elapsed = playbook(name, *extra)
        print(f"{what}: failed in {elapsed:.1f} s, lock {lock_state(LB)}")
        assert rc != 0, (what, out[-2000:])
        assert "(the fleet lock is released)" in out, (what, out[-3000:])
        assert lock_state(LB) == "free", what
    assert sh("tbf-app2", "ls -a /opt/miniconda3/envs /opt/miniconda3/env-specs | grep -c broken || true") == "0"
    # a value no role accepts is refused before the lock and before any host is touched
    rc, out, _ = playbook("site.yml", "-e", "conda_env_rebuild_on_change=maybe")
    assert rc != 0 and "'conda_env_rebuild_on_change' is of type str and we were unable to convert to bool" in out, out
    assert "PLAY [Take the fleet lock]" not in out and lock_state(LB) == "free"
    assert [release(c) for c in APPS] == ["v1", "v1"] and all(ready(c) for c in APPS)


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
    assert lock_state(LB) == "free"


LOAD_MARGIN = 100  # requests answered before a change starts and after it ended


def loadgen_answered() -> int:
    return int(sh("tbf-lb", "cat /tmp/loadgen.progress 2>/dev/null || echo 0"))


def wait_for_answers(count: int, gen: subprocess.Popen, deadline_s: float = 120) -> None:
    """Until the load generator has answered `count` requests; fails with how far it got at the deadline."""
    deadline = time.monotonic() + deadline_s
    while (got := loadgen_answered()) < count:
        assert gen.poll() is None, f"the load generator stopped after {got} of {count} requests: {gen.stderr.read()}"
        assert time.monotonic() < deadline, f"the load generator answered {got} of {count} requests in {deadline_s} s"
        time.sleep(0.2)


@contextlib.contextmanager
def under_load():
    """Run the load generator (25 requests/s through HAProxy) from LOAD_MARGIN requests before the change until
    LOAD_MARGIN requests after it; yields its result (filled in on exit)."""
    run_id = uuid.uuid4().hex[:12]
    sh("tbf-lb", "rm -f /tmp/loadgen.stop /tmp/loadgen.progress")
    subprocess.run([ENGINE, "exec", "-i", "tbf-lb", "sh", "-c", "cat > /tmp/loadgen.py"],
                   input=(PROJECT / "molecule/fleet/loadgen.py").read_text(), text=True, check=True)
    gen = subprocess.Popen(
        [ENGINE, "exec", "tbf-lb", "python3", "/tmp/loadgen.py", "--key", INGEST_KEY, "--run-id", run_id,
         "--deadline", "900", "--max-requests", "60000", "--rate", "25"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    result: dict = {"run_id": run_id}
    try:
        wait_for_answers(LOAD_MARGIN, gen)
        yield result
        wait_for_answers(loadgen_answered() + LOAD_MARGIN, gen)
    finally:
        sh("tbf-lb", "touch /tmp/loadgen.stop")
        out, err = gen.communicate(timeout=60)
        result.update(json.loads(out) if out.strip() else {"failed": -1, "errors": [err[-2000:]]})


def assert_every_event_counted_once(result: dict) -> None:
    """0 failed requests, every event acknowledged, and stored exactly once."""
    assert result["failed"] == 0, result
    assert result["events_unacked"] == 0, result
    assert result["events_sent"] > 0 and result["events_acked"] == result["events_sent"], result
    stored = sh("tbf-db", "runuser -u postgres -- psql -d billing -tAc "
                f"\"select count(*) from usage_events where event_id like '{result['run_id']}-%'\"")
    assert int(stored) == result["events_acked"], result


def workers(container: str) -> int:
    return len(sh(container, f"pgrep -P {main_pid(container)} -f gunicorn || true").split())


CONFIG_CHANGE = ("-e", "billing_service_workers=3", "-e", "billing_service_log_level=debug")


def test_upgrade_to_v2_with_a_config_change_under_load_and_a_second_deploy_refused():
    """Release v1 -> v2 with a config change (workers 2 -> 3, log level debug) under load: each host is drained,
    switched and restarted, put back; 0 failed requests. A second deploy started while it holds the fleet lock is
    refused, naming the holder, and changes nothing. (A config change alone, no new release, rolls the same way in
    the password rotation and the production inventory's site.yml below.)"""
    pids = {c: main_pid(c) for c in APPS}
    with under_load() as result:
        first = BackgroundPlaybook("deploy.yml", "-e", "billing_service_release=v2", *CONFIG_CHANGE)
        deadline = time.monotonic() + 120
        while sh(LB, f"test -f {FLEET_LOCK}/holder.json && echo held", check=False) != "held":
            assert first.running() and time.monotonic() < deadline, "the first deploy never took the lock"
            time.sleep(0.5)
        rc, second, refused_in = playbook("deploy.yml", "-e", "billing_service_release=v1")
        # rc 4: a host unreachable before the lock was asked (seen once on a saturated machine); again while
        # the first deploy still runs, printed
        while rc == 4 and first.running() and time.monotonic() < deadline + 120:
            print("second deploy: a host unreachable, again:", [ln for ln in second.splitlines() if "UNREACHABLE" in ln][:3])
            rc, second, refused_in = playbook("deploy.yml", "-e", "billing_service_release=v1")
        first_rc, out, elapsed = first.result(timeout=900)
    print(f"rollout v1 -> v2 with a config change (workers 2 -> 3, log level debug): {elapsed:.1f} s under load: "
          f"{result}")
    assert first_rc == 0, out[-3000:]
    assert_every_event_counted_once(result)
    for c in APPS:
        assert main_pid(c) != pids[c], c
        assert workers(c) == 3, c
        assert "log_level = \"debug\"" in sh(c, "cat /opt/token-billing/current/config.toml")
    assert rc != 0
    line = next((ln for ln in second.splitlines() if "refused: the fleet is locked by" in ln), None)
    assert line, f"the second deploy (rc={rc}) was not refused by the lock: {second[-3000:]}"
    print(f"second deploy refused after {refused_in:.1f} s: {line.strip()}")
    assert "deploy of v2" in second and "fleet_lock_break=true" in second
    assert [release(c) for c in APPS] == ["v2", "v2"]
    assert lock_state(LB) == "free"


REBUILT: dict[str, str] = {}


def gunicorn_prefix(container: str) -> str:
    """The env prefix the running gunicorn master executes from: its interpreter, the first word of its command
    line (the shebang conda wrote; /proc/PID/exe is not readable across users in an unprivileged container)."""
    return sh(container, f"tr '\\0' ' ' < /proc/{main_pid(container)}/cmdline").split()[0].rsplit("/bin/", 1)[0]


def test_env_rebuild_that_never_gets_ready_puts_the_old_prefix_back():
    """A changed spec that builds but cannot run the service (prometheus-client dropped): the first host switches
    its env link under the drain, never gets ready, and is put back on the prefix it ran from, serving; the
    second host is not touched; the lock is free."""
    drop = "prometheus-client"
    spec = controller_file("broken-v2/token-billing-v2.yml", "".join(
        ln for ln in (PROJECT / "envs/token-billing-v2.yml").read_text().splitlines(keepends=True) if drop not in ln))
    controller_file("broken-v2/token-billing-v2.lock.txt", "".join(
        ln for ln in (PROJECT / "envs/token-billing-v2.lock.txt").read_text().splitlines(keepends=True)
        if f"/{drop}-" not in ln))
    before = {c: (main_pid(c), gunicorn_prefix(c)) for c in APPS}
    rc, out, elapsed = playbook("deploy.yml", "-e", "billing_service_release=v2", "-e", "conda_env_rebuild_on_change=true",
                                "-e", json.dumps({"conda_env_envs": [{"name": "token-billing-v2", "file": str(spec)}]}),
                                "-e", "billing_service_ready_retries=5")
    print(f"env rebuild that never gets ready: stopped after {elapsed:.1f} s")
    assert rc != 0, out[-3000:]
    assert "deploy of v2 stopped: tbf-app1 failed at 'Wait until the service is ready'" in out, out[-3000:]
    assert lock_state(LB) == "free"
    broken = sh("tbf-app1", "readlink /opt/miniconda3/env-specs/token-billing-v2.prefix")
    REBUILT["broken"] = broken
    assert broken != before["tbf-app1"][1]
    assert sh("tbf-app1", "readlink /opt/token-billing/releases/v2/env") == before["tbf-app1"][1]
    assert gunicorn_prefix("tbf-app1") == before["tbf-app1"][1] and ready("tbf-app1")
    assert (main_pid("tbf-app2"), gunicorn_prefix("tbf-app2")) == before["tbf-app2"]
    assert haproxy_servers() == {"tbf-app1": "UP", "tbf-app2": "UP"}


def test_env_rebuild_on_every_app_host_switches_under_the_drain():
    """A changed token-billing-v2 spec with -e conda_env_rebuild_on_change=true (a string, as typed) on both app
    hosts at once, under load: each host builds it as a new prefix beside the live one, with the service package,
    and switches its release's env link under the drain; 0 failed requests; the old prefix is still there; a rerun
    changes nothing and restarts nothing."""
    original = (PROJECT / "envs/token-billing-v2.yml").read_text()
    spec = controller_file("token-billing-v2.yml", original + "# rebuilt by the fleet test\n")
    controller_file("token-billing-v2.lock.txt", (PROJECT / "envs/token-billing-v2.lock.txt").read_text())
    envs = json.dumps({"conda_env_envs": [{"name": "token-billing-v2", "file": str(spec)}]})
    before = {c: gunicorn_prefix(c) for c in APPS}
    assert set(before.values()) == {"/opt/miniconda3/envs/token-billing-v2"}, before
    with under_load() as result:
        rc, out, elapsed = playbook("deploy.yml", "-e", "billing_service_release=v2",
                                    "-e", "conda_env_rebuild_on_change=true", "-e", envs)
    print(f"env rebuild on both app hosts, switched host by host: {elapsed:.1f} s under load: {result}")
    assert rc == 0, out[-3000:]
    assert_every_event_counted_once(result)
    new = {c: gunicorn_prefix(c) for c in APPS}
    assert len(set(new.values())) == 1 and re.fullmatch(r"/opt/miniconda3/envs/token-billing-v2\.[0-9a-f]{12}",
                                                        new[APPS[0]]), new
    REBUILT["prefix"] = new[APPS[0]]
    # host by host: drained on the balancer, its release's env link switched, enabled again, then the next host
    pos = 0
    for c in APPS:
        steps = (f"every load balancer | {c} drain]", f"Point the release at its env | v2 -> {new[c].rsplit('/', 1)[-1]}]",
                 f"every load balancer | {c} enabled]")
        for step in steps:
            pos = out.find(step, pos)
            assert pos >= 0, (c, step, out[-3000:])
    for c in APPS:
        assert sh(c, "readlink /opt/token-billing/releases/v2/env") == new[c]
        assert sh(c, f"{new[c]}/bin/python -m pip show token-billing | grep ^Version")
        assert sh(c, "test -f /opt/miniconda3/envs/token-billing-v2/conda-meta/ansible-env.record && echo kept") == "kept"
        assert ready(c)
    # deploy.yml again changes nothing and restarts nothing
    pids = {c: main_pid(c) for c in APPS}
    rc, out, elapsed = playbook("deploy.yml", "-e", "billing_service_release=v2", "-e", "conda_env_rebuild_on_change=true",
                                "-e", envs)
    print(f"idempotent deploy rerun (the same rebuild again): {elapsed:.1f} s, {changed_total(out)} changed")
    assert rc == 0 and changed_total(out) == 0, out[-3000:]
    assert {c: gunicorn_prefix(c) for c in APPS} == new
    assert {c: main_pid(c) for c in APPS} == pids


def test_slow_senders_do_not_take_a_host_out():
    """12 clients trickling a request a byte a second straight to tbf-app1's port while the load generator runs
    through HAProxy: tbf-app1 stays UP on every poll of HAProxy's checks, no request fails, and each slow client is
    answered 408 after the service's request_read_timeout (10 s)."""
    script = (PROJECT / "app/tests/slowsend.py").read_text()
    states: list[dict[str, str]] = []
    with under_load() as result:
        slow = subprocess.Popen([ENGINE, "exec", "-i", "tbf-lb", "python3", "-", "--target", "tbf-app1:8000",
                                 "--clients", "12", "--deadline", "40"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        slow.stdin.write(script)
        slow.stdin.close()
        deadline = time.monotonic() + 60
        while slow.poll() is None and time.monotonic() < deadline:
            states.append(haproxy_servers())
            time.sleep(0.5)
        out = slow.stdout.read()
        assert slow.wait(timeout=60) == 0, slow.stderr.read()
    senders = json.loads(out)
    seconds = sorted(s["seconds"] for s in senders)
    print(f"12 slow senders on tbf-app1: answered {senders[0]['status']!r} after {seconds[0]}-{seconds[-1]} s; "
          f"{len(states)} HAProxy polls, tbf-app1 DOWN in {sum(s.get('tbf-app1') != 'UP' for s in states)}; "
          f"load through HAProxy meanwhile: {result}")
    assert all(s["status"].startswith("HTTP/1.1 408") for s in senders), senders
    assert all(9 <= s["seconds"] <= 20 for s in senders), senders
    assert states and all(s.get("tbf-app1") == "UP" for s in states), states
    assert_every_event_counted_once(result)


def test_db_password_rotation_under_load():
    pids = {c: main_pid(c) for c in APPS}
    rotation = json.dumps({"billing_db_active_login": "green",
                           "billing_db_logins": {"blue": "lab-billing-blue-password", "green": "rotated-green-password"}})
    with under_load() as result:
        rc, out, elapsed = playbook("rotate_db_password.yml", "-e", rotation, "-e", "billing_service_release=v2",
                                    "-e", "billing_service_workers=3")
    print(f"database password rotation (blue -> green) on the live fleet: {elapsed:.1f} s under load: {result}")
    assert rc == 0, out[-3000:]
    assert_every_event_counted_once(result)
    for c in APPS:
        assert main_pid(c) != pids[c], c
        assert "://billing_green@" in sh(c, "cat /opt/token-billing/current/config.toml")
    who = sh("tbf-db", "PGPASSWORD=rotated-green-password psql -h 127.0.0.1 -U billing_green -d billing -tAc 'select current_user'")
    assert who == "billing"
    # changing the password of the login in use is refused before anything changes
    wrong = json.dumps({"billing_db_active_login": "green",
                        "billing_db_logins": {"blue": "lab-billing-blue-password", "green": "another-password"}})
    rc, out, _ = playbook("rotate_db_password.yml", "-e", wrong, "-e", "billing_service_release=v2")
    assert rc != 0 and "runs as billing_green" in out


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
    """token-billing-v0 (no release uses it), the rebuilt v2 prefix that never got ready, the committed v2 spec's
    first build (release v2 runs from the good rebuild since) and, on the reporting host, reporting-engine-v2 (built,
    never released here: the docker scenario releases it) go; every current and previous release's env stays, the
    good rebuild included."""
    rebuilt = REBUILT["prefix"].rsplit("/", 1)[-1]
    retired = sorted(["token-billing-v0", "token-billing-v2", REBUILT["broken"].rsplit("/", 1)[-1]])
    retired = {c: sorted([*retired, "reporting-engine-v2"]) if c == REPORTING else retired for c in APPS}
    for host, report in cleanup_reports("--check").items():
        assert sorted(report["would_remove"]) == retired[host], (host, report)
        assert report["removed"] == []
    assert all("token-billing-v0" in sh(c, "ls /opt/miniconda3/envs") for c in APPS)
    kept = ["token-billing-v1", rebuilt]
    expected = {c: ["reporting-engine-v1", *kept] if c == REPORTING else kept for c in APPS}
    for host, report in cleanup_reports().items():
        assert sorted(report["removed"]) == retired[host], (host, report)
        assert sorted(report["kept"]) == expected[host], (host, report)
    for c in APPS:
        assert sh(c, "ls /opt/miniconda3/envs").split() == expected[c]
        assert ready(c)


def auth_failures() -> int:
    return int(sh("tbf-db", "grep -c 'password authentication failed' /var/log/postgresql/postgresql-15-main.log || true"))


def test_production_inventory_converges_the_lab():
    """inventories/production's variables, with only addresses, secrets and the mirror's installer overridden.
    The fleet runs as billing_green since the rotation; the vault example makes blue active and gives green another
    password: green keeps its password until no app host uses it, so no login fails at any moment (HAProxy's
    retries would hide a failed request from the load generator; PostgreSQL's log does not). It is also site.yml
    with a config change on the live fleet: the login switch, and release v2's env going back to a build of the
    committed spec (built again, as the cleanup removed it), restart each app host under the drain, never all."""
    inv = PROJECT / "build" / "production-on-lab"
    inv.mkdir(parents=True, exist_ok=True)
    for name in ("group_vars", "host_vars", "files"):
        link = inv / name
        if not link.is_symlink():
            link.symlink_to(PROJECT / "inventories" / "production" / name)
    groups = {"mirror": ["tbf-mirror"], "db": ["tbf-db"], "lb": ["tbf-lb"], "app": ["tbf-app1", "tbf-app2"]}

    def conda(version: str) -> dict[str, str]:
        """The lab's build of real conda stands in for Miniconda3-py312_25.1.1-2 (no network here); host vars, as
        each app host keeps the conda version it runs (tbf-app2: 26.7.1)."""
        installer = PROJECT / f"build/mirror/installers/CondaLab-{version}-Linux-x86_64.sh.sha256"
        return {"miniconda_flavor": "lab", "miniconda_version": version,
                "miniconda_installer_sha256": installer.read_text().split()[0]}

    versions = {"tbf-app1": "25.1.1-0", "tbf-app2": "26.7.1-0"}
    hosts = {"all": {
        "vars": {"ansible_ssh_private_key_file": str(PROJECT / "build/lab-ssh/id_ed25519"),
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"},
        "children": {g: {"hosts": {h: {"ansible_host": f"{{{{ lookup('lab_address', '{h}') }}}}",
                                       **(conda(versions[h]) if h in versions else {})} for h in hs}}
                     for g, hs in groups.items()}}}
    (inv / "hosts.yml").write_text(json.dumps(hosts, indent=2))
    # unprivileged containers cannot bind-mount /dev/log into HAProxy's chroot
    overrides = {"loadbalancer_chroot": False}
    secrets = PROJECT / "inventories/production/group_vars/all/vault.yml.example"
    assert all("://billing_green@" in sh(c, "cat /opt/token-billing/current/config.toml") for c in APPS)
    failures_before = auth_failures()
    pids = {c: main_pid(c) for c in APPS}
    start = time.monotonic()
    with under_load() as result:
        proc = subprocess.run(["ansible-playbook", "-i", str(inv / "hosts.yml"), str(PROJECT / "playbooks/site.yml"),
                               "-e", f"@{secrets}", "-e", json.dumps(overrides)],
                              capture_output=True, text=True, cwd=PROJECT)
    print(f"site.yml with the production inventory on the lab over SSH: rc={proc.returncode} "
          f"in {time.monotonic() - start:.1f} s, {changed_total(proc.stdout)} changed, under load: {result}, "
          f"{auth_failures() - failures_before} failed logins")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert_every_event_counted_once(result)
    assert auth_failures() == failures_before
    # green's new password was set by app.yml's last play, after every host had switched to blue
    left = proc.stdout.split("PLAY [Passwords of the database logins the app hosts just left]")[-1].split("PLAY [")[0]
    assert "changed: [tbf-db]" in left, proc.stdout[-4000:]
    for c in APPS:
        assert "://billing_blue@tbf-db:5432/billing" in sh(c, "cat /opt/token-billing/current/config.toml")
        assert main_pid(c) != pids[c], c
        assert gunicorn_prefix(c) == "/opt/miniconda3/envs/token-billing-v2", c
        assert ready(c)
    green = yaml.safe_load(secrets.read_text())["vault_billing_db_logins"]["green"]
    who = sh("tbf-db", f"PGPASSWORD={green} psql -h 127.0.0.1 -U billing_green -d billing -tAc 'select current_user'")
    assert who == "billing"  # green took its new password once the apps had left it
