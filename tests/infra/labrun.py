"""What the Molecule scenarios' own tests share: a command in a host's container, a playbook run against
Molecule's inventory (timed, printed), the changed count of its recap, and the billing service's state on a host."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
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


def _argv(name: str, *extra: str) -> list[str]:
    """ansible-playbook with playbooks/NAME (or a path relative to the project) and Molecule's inventory."""
    return ["ansible-playbook", "-i", str(INVENTORY), str(PROJECT / ("playbooks" if "/" not in name else "") / name), *extra]


def playbook(name: str, *extra: str, env: dict | None = None) -> tuple[int, str, float]:
    """Run playbooks/NAME (or a path relative to the project) against Molecule's inventory; wait for it."""
    start = time.monotonic()
    proc = subprocess.run(_argv(name, *extra), capture_output=True, text=True, cwd=PROJECT,
                          env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - start
    print(f"{name} {' '.join(extra)}: rc={proc.returncode} in {elapsed:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr, elapsed


class BackgroundPlaybook:
    """playbooks/NAME (or a path relative to the project) run against Molecule's inventory in the background;
    result() waits for it."""

    def __init__(self, name: str, *extra: str):
        self.name = " ".join((name, *extra))
        # its output to a file: a pipe nobody reads while the caller works could fill and stop it
        self.log = tempfile.TemporaryFile("w+")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(_argv(name, *extra), stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     cwd=PROJECT)

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self, timeout: float = 1800) -> tuple[int, str, float]:
        """Its return code, output and seconds, as playbook() gives them; stopped and failed at the deadline."""
        try:
            self.proc.wait(timeout=max(0.0, self.start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
        self.log.seek(0)
        out = self.log.read()
        elapsed = time.monotonic() - self.start
        print(f"{self.name}: rc={self.proc.returncode} in {elapsed:.1f} s (started in the background)")
        assert self.proc.returncode is not None and self.proc.returncode >= 0, \
            f"{self.name}: killed (rc {self.proc.returncode}; the deadline was {timeout:.0f} s); its output ends: {out[-3000:]}"
        return self.proc.returncode, out, elapsed

    def stop(self) -> None:
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
