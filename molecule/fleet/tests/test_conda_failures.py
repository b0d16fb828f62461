"""conda's failure paths on the app hosts (conda-failures.yml, both conda versions), run beside the checks of
tests/infra (started by conftest.py) and before the rollouts: a wrong checksum executes nothing, an unreachable
mirror, a missing package and a changed published spec fail with a clear error and leave nothing behind, a failed
rebuild never touches the env a running process uses, a rebuild builds a new prefix, a changed pin upgrades conda in
place. The playbook asserts each; the hosts are then as they were before it."""


def test_conda_failure_paths_leave_every_host_as_it_was(conda_failures):
    rc, out, _ = conda_failures.run.result()
    assert rc == 0, out[-6000:]
    assert "failed=0" in out.split("PLAY RECAP")[-1]
    assert conda_failures.envs_now() == conda_failures.envs_before
