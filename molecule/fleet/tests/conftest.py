"""conda's failure paths (conda-failures.yml) start as soon as the tests are collected, so that they run beside the
read-only checks of tests/infra and test_conda_cli.py instead of after them (about two minutes of a busy make
test): they touch scratch prefixes only, and rebuild the live v1 env in a way that must fail and leave it as the
checks find it. tests/test_conda_failures.py waits for the run and asserts on it."""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parents[3] / "tests" / "infra")]

from labrun import BackgroundPlaybook, sh  # noqa: E402

APPS = ("tbf-app1", "tbf-app2")


def app_envs() -> dict[str, str]:
    return {c: sh(c, "ls -a /opt/miniconda3/envs /opt/miniconda3/env-specs") for c in APPS}


@dataclass
class CondaFailures:
    run: BackgroundPlaybook
    envs_before: dict[str, str]

    @staticmethod
    def envs_now() -> dict[str, str]:
        return app_envs()


_STARTED: list[CondaFailures] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(item.path.name == "test_conda_failures.py" for item in session.items):
        envs_before = app_envs()
        _STARTED.append(CondaFailures(BackgroundPlaybook("molecule/fleet/conda-failures.yml"), envs_before))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for started in _STARTED:
        started.run.stop()


@pytest.fixture
def conda_failures() -> CondaFailures:
    """The run of conda-failures.yml started at collection, and the app hosts' envs before it."""
    assert _STARTED, "conda-failures.yml was not started at collection"
    return _STARTED[0]
