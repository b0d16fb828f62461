import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "conda_env_filter", Path(__file__).parents[2] / "roles/conda_env/filter_plugins/conda_env.py"
)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)


def test_json_error_becomes_one_line():
    err = {
        "caused_by": "None",
        "exception_name": "PackagesNotFoundInChannelsError",
        "message": "The following packages are not available from current channels:\n\n  - nosuchpkg\n",
    }
    line = module.conda_env_error({"stdout": "Collecting x\n" + json.dumps(err, indent=2, sort_keys=True), "rc": 1})
    assert line == (
        "PackagesNotFoundInChannelsError: The following packages are not available from current channels: - nosuchpkg"
    )
    assert "\n" not in line


def test_falls_back_to_stderr_then_rc():
    assert module.conda_env_error({"stdout": "{}", "stderr": "a\n\nPip failed\n", "rc": 1}) == "a | Pip failed"
    assert module.conda_env_error({"stdout": "", "rc": 7}) == "rc=7"
