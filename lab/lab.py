#!/usr/bin/env python3
"""Create, inspect and remove the local lab fleet.

Every host of inventories/lab/hosts.yml becomes a container named
``tblab-<host>`` with systemd as PID 1, unprivileged, on the private network
``tblab`` where hosts resolve each other by name. ``up`` is idempotent: hosts
that already run the current image are left alone; stale ones (stopped, or
from an older image) are replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The lab's hosts, and how the controller reaches them (worked out once per run).
INVENTORY_ARGS = ["-i", str(ROOT / "inventories/lab/hosts.yml"), "-i", str(ROOT / "inventories/lab/connection.yml")]
PREFIX = "tblab-"
NETWORK = "tblab"
BOOT_TIMEOUT = 90


class LabError(Exception):
    pass


def engine() -> str:
    wanted = os.environ.get("LAB_ENGINE", "podman")
    if shutil.which(wanted) is None:
        raise LabError(
            f"{wanted} is not installed: run 'apt-get install podman runc' "
            "(or set LAB_ENGINE=docker where a Docker engine runs)"
        )
    return wanted


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args[:3])} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def inventory_hosts(path: Path) -> list[str]:
    def walk(group: dict) -> list[str]:
        found = list((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            found += walk(child or {})
        return found

    data = yaml.safe_load(path.read_text())
    return sorted(set(walk(data["all"])))


def image(eng: str) -> str:
    proc = subprocess.run(
        [str(ROOT / "lab/image/build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env={**os.environ, "LAB_ENGINE": eng},
    )
    if proc.returncode != 0:
        raise LabError("building the lab image failed (see the lines above)")
    return proc.stdout.strip().splitlines()[-1]


def container_state(eng: str, name: str) -> dict | None:
    proc = run(eng, "container", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data[0] if data else None


def wait_for_systemd(eng: str, host: str) -> None:
    name = PREFIX + host
    deadline = time.monotonic() + BOOT_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        proc = run(eng, "exec", name, "systemctl", "is-system-running", check=False)
        state = proc.stdout.strip()
        if state in ("running", "degraded"):
            if state == "degraded":
                failed = run(eng, "exec", name, "systemctl", "--failed", "--no-legend", check=False)
                print(f"lab: {host}: systemd degraded:\n{failed.stdout}", file=sys.stderr)
            return
        time.sleep(1)
    journal = run(eng, "exec", name, "journalctl", "-b", "--no-pager", "-n", "40", check=False)
    raise LabError(
        f"host {host} ({name}) did not boot systemd within {BOOT_TIMEOUT}s "
        f"(state: {state or 'unknown'}); its journal:\n{journal.stdout}{journal.stderr}"
    )


def network_exists(eng: str) -> bool:
    return run(eng, "network", "inspect", NETWORK, check=False).returncode == 0


def up(hosts: list[str]) -> int:
    eng = engine()
    img = image(eng)
    changed: list[str] = []
    if not network_exists(eng):
        run(eng, "network", "create", NETWORK)
        changed.append(f"network {NETWORK}")
    for host in hosts:
        name = PREFIX + host
        state = container_state(eng, name)
        if state is not None:
            current = state.get("ImageName") or state.get("Config", {}).get("Image")
            running = state.get("State", {}).get("Running", False)
            if running and current == img:
                continue
            run(eng, "rm", "-f", name)
        args = [eng, "run", "-d", "--name", name, "--hostname", host, "--network", NETWORK,
                "--network-alias", host, "--label", "org.token-billing.lab=1"]
        if eng == "podman":
            args += ["--systemd=always"]
        else:
            args += ["--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                     "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768", "--stop-signal", "SIGRTMIN+3",
                     "-e", "container=docker"]
        run(*args, img, "/sbin/init")
        changed.append(f"host {host}")
    for host in hosts:
        wait_for_systemd(eng, host)
    check_name_resolution(eng, hosts)
    if changed:
        # new hosts: the next converge is a first one again
        (ROOT / "build/converge-times.json").unlink(missing_ok=True)
        print(f"lab: changed: {', '.join(changed)}; {len(hosts)} hosts running systemd ({img})")
    else:
        print(f"lab: ok, nothing changed; {len(hosts)} hosts running systemd ({img})")
    return 0


def check_name_resolution(eng: str, hosts: list[str]) -> None:
    """Every host must resolve every other by name (the mirror URL, the database, the backends)."""
    for host in hosts:
        others = [h for h in hosts if h != host]
        r = run(eng, "exec", PREFIX + host, "getent", "hosts", *others, check=False)
        # getent prints the canonical name (e.g. app2.dns.podman): compare the first label
        found = {name.split(".")[0] for line in r.stdout.splitlines() for name in line.split()[1:]}
        missing = [h for h in others if h not in found]
        if missing:
            hint = ("install the DNS plugin of podman's CNI backend: apt-get install "
                    "golang-github-containernetworking-plugin-dnsname, then 'make lab-down lab'"
                    if eng == "podman" else "use a user-defined docker network (docker network create)")
            sys.exit(f"lab: {host} cannot resolve {', '.join(missing)} on network {NETWORK}: {hint}")


def down(hosts: list[str]) -> int:
    eng = engine()
    removed = []
    names = run(eng, "ps", "-a", "--filter", "label=org.token-billing.lab=1", "--format", "{{.Names}}").stdout.split()
    for name in sorted(set(names) | {PREFIX + h for h in hosts}):
        if container_state(eng, name) is not None:
            run(eng, "rm", "-f", name)
            removed.append(name)
    if network_exists(eng):
        run(eng, "network", "rm", NETWORK)
        removed.append(f"network {NETWORK}")
    print(f"lab: removed {', '.join(removed)}" if removed else "lab: nothing to remove")
    return 0


def status(hosts: list[str]) -> int:
    eng = engine()
    for host in hosts:
        state = container_state(eng, PREFIX + host)
        print(f"{host:8} {'absent' if state is None else state['State']['Status']}")
    return 0


def connection_label() -> str:
    if os.environ.get("LAB_CONNECTION", "ssh") == "ssh":
        return "SSH"
    return f"{os.environ.get('LAB_ENGINE', 'podman')} exec"


def converge(playbook: str, extra: list[str]) -> int:
    """Run a playbook against the lab and report changed tasks and time. The first run on hosts `up` created is
    the playbook's converge; a run that changes nothing is a rerun, reported as a share of that converge, per
    connection (SSH, or podman/docker exec with LAB_CONNECTION=podman)."""
    engine()
    times = ROOT / "build/converge-times.json"
    history = json.loads(times.read_text()) if times.exists() else {}
    start = time.monotonic()
    proc = subprocess.Popen(
        ["ansible-playbook", *INVENTORY_ARGS, playbook, *extra],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    changed = 0
    in_recap = False
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        in_recap = in_recap or line.startswith("PLAY RECAP")
        if in_recap and "changed=" in line:
            changed += int(line.split("changed=")[1].split()[0])
    rc = proc.wait()
    elapsed = round(time.monotonic() - start, 1)
    label = connection_label()
    runs = history.get(playbook)
    runs = runs if isinstance(runs, dict) else {}
    if rc:
        print(f"lab: {playbook}: failed after {elapsed:.1f} s over {label}")
        return rc
    if changed and "converge" not in runs:
        runs = {"converge": {"seconds": elapsed, "changed": changed, "over": label}}
        print(f"lab: {playbook}: first converge of these hosts, {changed} changed in {elapsed:.1f} s over {label}")
    elif changed:
        print(f"lab: {playbook}: {changed} changed in {elapsed:.1f} s over {label}")
    else:
        runs[f"rerun over {label}"] = elapsed
        print(f"lab: {playbook}: 0 changed (nothing to do) in {elapsed:.1f} s over {label}")
    first = runs.get("converge")
    for key, seconds in sorted(runs.items()):
        if key.startswith("rerun") and first:
            print(f"lab: {playbook}: {key}: {seconds:.1f} s = {seconds / first['seconds']:.2f} of the converge "
                  f"({first['seconds']:.1f} s, {first['changed']} changed, over {first['over']})")
    history[playbook] = runs
    times.parent.mkdir(parents=True, exist_ok=True)
    times.write_text(json.dumps(history, indent=1))
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "image", "converge"])
    parser.add_argument("args", nargs="*", help="converge: PLAYBOOK [ansible-playbook options]")
    parser.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventories/lab/hosts.yml")
    args, extra = parser.parse_known_args()
    try:
        hosts = inventory_hosts(args.inventory)
        if args.action == "converge":
            if not args.args:
                raise LabError("converge needs a playbook, e.g. 'lab.py converge playbooks/site.yml'")
            return converge(args.args[0], args.args[1:] + extra)
        if args.action == "image":
            print(image(engine()))
            return 0
        return {"up": up, "down": down, "status": status}[args.action](hosts)
    except LabError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
