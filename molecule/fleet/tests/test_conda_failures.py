"""conda's failure paths on the app hosts (conda-failures.yml, both conda versions), after the checks of tests/infra
and before the rollouts: a wrong checksum executes nothing, an unreachable mirror, a missing package and a changed
published spec fail with a clear error and leave nothing behind, a failed rebuild never touches the env a running
process uses, a rebuild builds a new prefix, a changed pin upgrades conda in place. The playbook asserts each; the
hosts are then as the checks of tests/infra found them."""

from labrun import playbook, sh

APPS = ("tbf-app1", "tbf-app2")


def envs(container: str) -> str:
    return sh(container, "ls -a /opt/miniconda3/envs /opt/miniconda3/env-specs")


def test_conda_failure_paths_leave_every_host_as_it_was():
    before = {c: envs(c) for c in APPS}
    rc, out, _ = playbook("molecule/fleet/conda-failures.yml")
    assert rc == 0, out[-6000:]
    assert "failed=0" in out.split("PLAY RECAP")[-1]
    assert {c: envs(c) for c in APPS} == before
