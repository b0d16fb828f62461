"""Every role variable is prefixed, documented in meta/argument_specs.yml and in the role README."""

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).parents[2] / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_are_prefixed_and_documented(role):
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    readme = (role / "README.md").read_text()
    for name in defaults:
        assert name.startswith(role.name + "_"), f"{role.name}: {name} lacks the role prefix"
        assert name in specs, f"{role.name}: {name} missing from meta/argument_specs.yml"
        assert f"`{name}`" in readme, f"{role.name}: {name} missing from README.md"
    for name, spec in specs.items():
        assert name in defaults or spec.get("required"), f"{role.name}: {name} documented but has no default"
        assert spec.get("description"), f"{role.name}: {name} has no description"
