"""make lab installs requirements-lab.txt and requirements-mirror.txt alone, each in its own
venv: each must pin everything its packages need, and requirements.txt takes both."""
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))
spec = importlib.util.spec_from_file_location("app_env_test", REPO / "lab" / "app_env_test.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

VENV_OWN = {"pip", "setuptools"}  # what `python -m venv` puts there itself
PARTS = ["requirements-lab.txt", "requirements-mirror.txt"]


def own_pins(path: Path) -> dict[str, str]:
    return module.requirement_pins(path, includes=False)


@pytest.mark.parametrize("name", PARTS)
def test_a_part_pins_every_requirement_of_its_packages(name):
    pins = module.requirement_pins(REPO / name)
    unpinned = {}
    for dist in pins:
        for text in importlib.metadata.distribution(dist).requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if module.norm(req.name) not in pins.keys() | VENV_OWN:
                unpinned.setdefault(dist, []).append(req.name)
    assert not unpinned, f"{name} lacks what these need (pin it there): {unpinned}"


def test_requirements_txt_takes_both_parts_at_one_version_each():
    full = REPO / "requirements.txt"
    for name in PARTS:
        assert f"-r {name}" in full.read_text().splitlines(), name
    seen: dict[str, tuple[str, str]] = {}
    for name in ["requirements.txt", *PARTS]:
        for dist, version in own_pins(REPO / name).items():
            first = seen.setdefault(dist, (name, version))
            assert first[1] == version, f"{dist}: {first[1]} in {first[0]} but {version} in {name}"
    twice = own_pins(full).keys() & (own_pins(REPO / PARTS[0]).keys() | own_pins(REPO / PARTS[1]).keys())
    assert not twice, f"pinned in requirements.txt and a part (keep it in the part): {sorted(twice)}"
