"""Every boolean the roles read is read through `| bool`.

An operator types `-e conda_env_rebuild_on_change=true` on the command line: a
string. ansible-core 2.19 refuses a string as a conditional's result, and Jinja
takes the string "false" as true; `| bool` accepts both spellings. So every use
of an option that an argument spec types `bool` must pass through `| bool`.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]


def bool_options() -> set[str]:
    names = set()
    for spec_file in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            names |= {name for name, spec in (entry.get("options") or {}).items() if spec.get("type") == "bool"}
    return names


def sources() -> list[Path]:
    roles = [p for p in (ROOT / "roles").glob("*/*/*") if p.parent.name in ("tasks", "handlers", "templates")]
    return sorted(roles + list((ROOT / "playbooks").glob("*.yml")))


def unguarded(text: str, name: str) -> list[str]:
    """Lines that read `name` as a value without `| bool` (comments and `name=...`/`name: ...` mentions aside)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(rf"\b{name}\b(?!\s*[=:])", line):
            if not re.match(r"\s*\|\s*bool\b", line[match.end():]):
                found.append(line.strip())
    return found


def test_there_are_booleans_to_check():
    assert {"conda_env_rebuild_on_change", "fleet_lock_break", "loadbalancer_chroot"} <= bool_options()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_boolean_is_read_through_bool(path):
    text = path.read_text()
    bad = {name: lines for name in bool_options() if (lines := unguarded(text, name))}
    assert not bad, f"{path.relative_to(ROOT)}: read these through `| bool`: {bad}"


def test_the_check_catches_a_bare_boolean():
    assert unguarded("  when: conda_env_rebuild_on_change and x", "conda_env_rebuild_on_change")
    assert unguarded("{% if loadbalancer_chroot %}", "loadbalancer_chroot")
    assert not unguarded("  when: not (conda_env_rebuild_on_change | bool)", "conda_env_rebuild_on_change")
    assert not unguarded("  msg: rerun with -e fleet_lock_break=true", "fleet_lock_break")
