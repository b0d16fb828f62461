"""What the Molecule scenarios' own tests share: a command in a host's container, a playbook run against
Molecule's inventory (timed, printed), the changed count of its recap, and the billing service's state on a host."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ENGINE = os.environ.get("LAB_ENGINE", "podman")
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
FLEET_LOCK = "/var/lib/fleet-lock/change"  # roles/fleet_lock: fleet_lock_dir/change, on the first balancer


def sh(container: str, command: str, check: bool = True) -> str:
    proc = subprocess.run([ENGINE, "exec", container, "sh", "-c", command], capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"{container}: {command}: {proc.stderr}")
    return proc.stdout.strip()


def playbook(name: str, *extra: str, env: dict | None = None) -> tuple[int, str, float]:
    """Run playbooks/NAME (or a path relative to the project) against Molecule's inventory."""
    start = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(PROJECT / ("playbooks" if "/" not in name else "") / name),
         *extra],
        capture_output=True, text=True, cwd=PROJECT, env={**os.environ, **(env or {})},
    )
    elapsed = time.monotonic() - start
    print(f"{name} {' '.join(extra)}: rc={proc.returncode} in {elapsed:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr, elapsed


def changed_total(output: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


def release(container: str) -> str:
    """The billing release the host runs."""
    return sh(container, "basename $(readlink /opt/token-billing/current)")


def main_pid(container: str) -> str:
    return sh(container, "systemctl show -p MainPID --value token-billing")


def ready(container: str) -> bool:
    return '"ready"' in sh(container, "curl -s http://127.0.0.1:8000/readyz", check=False)


def lock_state(host: str) -> str:
    """Whether the fleet lock (roles/fleet_lock, on the first balancer) is held."""
    return sh(host, f"test -e {FLEET_LOCK} && echo held || echo free")
