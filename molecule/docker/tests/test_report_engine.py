"""The report engine's own release cycle on the all-in-one host, where the billing service shares the box:
deploy.yml with the report engine's v2, then rollback.yml -e rollback_family=reporting-engine, switch the report
engine alone; the billing service keeps its PID, release and env throughout. Runs after tests/infra (the state
checks at v1). These runs use plain Ansible (the linear strategy), the converge Mitogen."""

from labhosts import containers_of
from labrun import main_pid, playbook, ready, release, sh

BILLING = containers_of("app")
REPORTING = containers_of("reporting")[0]


def plain(name: str, *extra: str) -> tuple[int, str, float]:
    """A playbook run with plain Ansible (no Mitogen)."""
    return playbook(name, *extra, env={"ANSIBLE_STRATEGY": "linear"})


def billing_state() -> dict[str, tuple[str, str, str]]:
    return {c: (main_pid(c), release(c), sh(c, "readlink -f /opt/token-billing/current/env")) for c in BILLING}


def report_release(which: str = "current") -> str:
    return sh(REPORTING, f"basename $(readlink /opt/report-engine/{which})")


def test_report_engine_upgrade_leaves_billing_alone():
    """deploy.yml with the report engine's v2 (pandas 2.2.3 -> 2.3.3), the billing release and config as they are:
    the report engine switches and its next run uses the new env."""
    before = billing_state()
    release = next(iter(before.values()))[1]
    rc, out, _ = plain("deploy.yml", "-e", f"billing_service_release={release}", "-e", "reporting_engine_release=v2")
    assert rc == 0, out[-3000:]
    assert billing_state() == before
    assert (report_release(), report_release("previous")) == ("v2", "v1")
    pandas = "/opt/report-engine/current/env/bin/python -c 'import pandas; print(pandas.__version__)'"
    assert sh(REPORTING, pandas) == "2.3.3"
    sh(REPORTING, "systemctl start report-engine.service")
    assert "reporting-engine-v2" in sh(REPORTING, "readlink -f /opt/report-engine/current/env")
    assert all(ready(c) for c in BILLING)


def test_report_engine_rollback_leaves_billing_alone():
    """A family that is not one is refused and changes nothing; the report engine's family swaps its current and
    previous release (which is which is read first), twice."""
    before = billing_state()
    links = (report_release(), report_release("previous"))
    assert sorted(links) == ["v1", "v2"]
    rc, out, _ = plain("rollback.yml", "-e", "rollback_family=reporting")
    assert rc != 0 and "is not an env family" in out, out[-2000:]
    assert (report_release(), report_release("previous")) == links
    for expected in (links[::-1], links):
        rc, out, _ = plain("rollback.yml", "-e", "rollback_family=reporting-engine")
        assert rc == 0, out[-3000:]
        assert (report_release(), report_release("previous")) == expected
        sh(REPORTING, "systemctl start report-engine.service")
    assert billing_state() == before
