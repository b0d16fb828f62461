#!/usr/bin/env python3
"""Provisioning benchmarks on the lab fleet. Prints figures; passes or fails nothing.

  bench.py conda   env build with a cold and a warm package cache (on app1),
                   and a rerun of the miniconda + conda_env roles on converged hosts
  bench.py fleet   full lab deploy from empty hosts, idempotent site rerun,
                   v1 -> v2 rollout on two app hosts (then back to v1)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from lab import INVENTORY_ARGS as INVENTORY  # lab/lab.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
ENGINE = os.environ.get("LAB_ENGINE", "podman")


def timed(args: list[str], **kw: object) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kw)  # type: ignore[call-overload]
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(args[:4])} failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def playbook(name: str, *extra: str) -> tuple[float, int]:
    elapsed, out = timed(["ansible-playbook", *INVENTORY, f"playbooks/{name}", *extra])
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", out.split("PLAY RECAP")[-1]))
    return elapsed, changed


def on_app1(command: str) -> float:
    return timed([ENGINE, "exec", "tblab-app1", "sh", "-c", command])[0]


def bench_conda() -> None:
    timed([sys.executable, "lab/lab.py", "up"])
    playbook("conda.yml")
    conda = "/opt/miniconda3/bin/conda"
    version = timed([ENGINE, "exec", "tblab-app1", conda, "--version"])[1].strip()
    lock = "/opt/miniconda3/env-specs/token-billing-v1.lock.txt"
    spec = "/opt/miniconda3/env-specs/token-billing-v1.yml"
    fresh = "rm -rf /tmp/bench-env /tmp/bench-pkgs && mkdir /tmp/bench-pkgs && touch /tmp/bench-pkgs/urls.txt"
    pkgs = "CONDA_PKGS_DIRS=/tmp/bench-pkgs"
    figures = {}
    for what, create in (("lock", f"{conda} create --yes --json --file {lock} -p /tmp/bench-env"),
                         ("spec", f"cd /tmp && {conda} env create --json --file {spec} -p /tmp/bench-env")):
        on_app1(fresh)
        figures[f"{what}, cold"] = on_app1(f"{pkgs} {create} >/dev/null")
        on_app1("rm -rf /tmp/bench-env")
        figures[f"{what}, warm"] = on_app1(f"{pkgs} {create} >/dev/null")
        on_app1("rm -rf /tmp/bench-env")
    on_app1("rm -rf /tmp/bench-pkgs")
    # the role itself: v1 rebuilt on both app hosts, timed per task (no polling floor)
    for host in ("tblab-app1", "tblab-app2"):
        timed([ENGINE, "exec", host, "rm", "-rf", "/opt/miniconda3/envs/token-billing-v1"])
    start = time.monotonic()
    _, out = timed(["ansible-playbook", *INVENTORY, "playbooks/conda.yml"],
                   env=dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks"))
    t_role = time.monotonic() - start
    task = re.search(r"Create the env from the lock \| token-billing-v1 -+ (\d+\.\d+)s", out)
    t_rerun, changed = playbook("conda.yml")
    print(f"real conda on app1: {version} (classic solver), packages from the mirror host")
    for key, seconds in figures.items():
        print(f"env build token-billing-v1 from the {key} package cache: {seconds:.1f} s")
    print(f"conda.yml rebuilding token-billing-v1 on both app hosts: {t_role:.1f} s"
          f" (the build task itself: {task.group(1) if task else '?'} s)")
    print(f"rerun of miniconda + conda_env (mirror + 2 app hosts): {t_rerun:.1f} s, {changed} changed")


def bench_fleet() -> None:
    timed([sys.executable, "lab/lab.py", "down"])
    t_up, _ = timed([sys.executable, "lab/lab.py", "up"])
    t_site, c_site = playbook("site.yml")
    t_rerun, c_rerun = playbook("site.yml")
    os.environ["LAB_CONNECTION"] = "podman"
    t_rerun_exec, c_rerun_exec = playbook("site.yml")
    os.environ["LAB_CONNECTION"] = "ssh"
    t_roll, _ = playbook("deploy.yml", "-e", "billing_service_release=v2")
    t_back, _ = playbook("rollback.yml")
    print(f"lab hosts from nothing (5 containers booted): {t_up:.1f} s")
    print(f"full deploy from empty hosts (site.yml over SSH): {t_site:.1f} s, {c_site} changed")
    print(f"idempotent site.yml rerun over SSH: {t_rerun:.1f} s, {c_rerun} changed "
          f"({t_rerun / t_site:.2f} of the first converge)")
    print(f"idempotent site.yml rerun over podman exec: {t_rerun_exec:.1f} s, {c_rerun_exec} changed "
          f"({t_rerun_exec / t_site:.2f} of the first converge)")
    print(f"rollout v1 -> v2 on two app hosts (deploy.yml): {t_roll:.1f} s")
    print(f"rollback v2 -> v1 (rollback.yml): {t_back:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("conda", "fleet"):
        sys.exit(__doc__)
    {"conda": bench_conda, "fleet": bench_fleet}[sys.argv[1]]()
