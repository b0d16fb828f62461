"""Map inventory groups to testinfra host URLs.

Molecule exports MOLECULE_INVENTORY_FILE; against the lab fleet set
LAB_INVENTORY=inventories/lab/hosts.yml (the host list). Hosts are reached through the
container engine directly (podman:// or docker://), which is about ten times
faster than testinfra's ansible backend.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess


@functools.cache
def _inventory() -> dict:
    path = os.environ.get("MOLECULE_INVENTORY_FILE") or os.environ.get("LAB_INVENTORY")
    if not path:
        raise RuntimeError("set MOLECULE_INVENTORY_FILE (molecule verify) or LAB_INVENTORY")
    out = subprocess.run(
        ["ansible-inventory", "-i", path, "--list"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def _container(host: str) -> str:
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        return host
    return f"tblab-{host}"


def _members(inv: dict, group: str) -> set[str]:
    entry = inv.get(group, {})
    names = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        names |= _members(inv, child)
    return names


def containers_of(group: str) -> list[str]:
    """Container names of an inventory group (children included); fails on an empty group."""
    names = sorted(_members(_inventory(), group))
    if not names:
        raise RuntimeError(f"inventory group {group!r} has no hosts")
    return [_container(h) for h in names]


def hosts_of(group: str) -> list[str]:
    """testinfra host URLs of an inventory group (children included); fails on an empty group."""
    engine = os.environ.get("LAB_ENGINE", "podman")
    return [f"{engine}://{c}" for c in containers_of(group)]
