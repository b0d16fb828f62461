"""The dev venv runs the service on what ships: requirements.txt pins the newest env's versions."""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))  # app_env_test imports its conda helpers from lab/locks.py
spec = importlib.util.spec_from_file_location("app_env_test", REPO / "lab" / "app_env_test.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

# Shared with the Ansible/Molecule toolchain, which needs a newer version than the env pins.
# Each entry names what needs it; requirements.txt's header says the same.
SHARED_NEWER = {
    "packaging": "vcs-versioning 2.6.0 (hatch-vcs, make mirror) needs packaging>=26.2",
}
NOT_IN_VENV = {"python", "python-abi", "pip"}  # the venv's interpreter and pip are not requirements.txt's


def test_requirements_pin_the_newest_envs_versions():
    env_pins = module.spec_pins(module.newest_spec())
    req = module.requirement_pins()
    off = {n: (req.get(n), v) for n, v in env_pins.items()
           if n not in NOT_IN_VENV | SHARED_NEWER.keys() and req.get(n) != v}
    assert not off, f"requirements.txt differs from {module.newest_spec().name} (requirements, env): {off}"


def test_allow_list_is_current():
    env_pins = module.spec_pins(module.newest_spec())
    req = module.requirement_pins()
    for name in SHARED_NEWER:
        assert name in env_pins and req[name] != env_pins[name], f"{name} matches the env again: drop it from SHARED_NEWER"


def test_newest_spec_is_numeric(tmp_path):
    for n in (2, 9, 10):
        (tmp_path / f"token-billing-v{n}.yml").write_text("dependencies: []\n")
    (tmp_path / "token-billing-v11.lock.txt").write_text("")
    assert module.newest_spec(tmp_path).name == "token-billing-v10.yml"


def test_spec_pins_reads_conda_and_pip_pins(tmp_path):
    f = tmp_path / "token-billing-v1.yml"
    f.write_text("dependencies:\n  - Flask=3.1.3\n  - prometheus_client=0.26.0\n  - pip:\n      - psycopg-binary==3.3.9\n")
    assert module.spec_pins(f) == {"flask": "3.1.3", "prometheus-client": "0.26.0", "psycopg-binary": "3.3.9"}
