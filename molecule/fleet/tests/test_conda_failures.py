"""conda's failure paths on the app hosts (conda-failures.yml, both conda versions), after the checks of tests/infra
and before the rollouts: a wrong checksum executes nothing, an unreachable mirror, a missing package and a changed
published spec fail with a clear error and leave nothing behind, a failed rebuild never touches the env a running
process uses, a rebuild builds a new prefix, a changed pin upgrades conda in place. The playbook asserts each; the
hosts are then as the checks of tests/infra found them."""

import os
import subprocess
from pathlib import Path

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
APPS = ("tbf-app1", "tbf-app2")
ENGINE = os.environ.get("LAB_ENGINE", "podman")


def envs(container: str) -> str:
    return subprocess.run([ENGINE, "exec", container, "sh", "-c", "ls -a /opt/miniconda3/envs /opt/miniconda3/env-specs"],
                          capture_output=True, text=True, check=True).stdout


def test_conda_failure_paths_leave_every_host_as_it_was():
    before = {c: envs(c) for c in APPS}
    proc = subprocess.run(["ansible-playbook", "-i", str(INVENTORY), str(PROJECT / "molecule/fleet/conda-failures.yml")],
                          capture_output=True, text=True, cwd=PROJECT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout.split("PLAY RECAP")[-1]
    assert {c: envs(c) for c in APPS} == before
