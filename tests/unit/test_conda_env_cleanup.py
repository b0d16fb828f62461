"""conda-env-cleanup with two env families: each family's current and previous
are kept, so is an env a systemd unit references; only retired envs would go."""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "roles/conda_cleanup/files/conda-env-cleanup"


def load():
    loader = importlib.machinery.SourceFileLoader("conda_env_cleanup", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def make_env(root: Path, name: str) -> Path:
    (root / name / "conda-meta").mkdir(parents=True)
    (root / name / "conda-meta/ansible-env.record").write_text("{}")
    (root / name / "bin").mkdir()
    return root / name


def release(service_root: Path, name: str, env: Path) -> Path:
    rel = service_root / "releases" / name
    rel.mkdir(parents=True)
    (rel / "env").symlink_to(env)
    return rel


def test_two_families_keep_current_previous_and_unit_references(tmp_path):
    envs = tmp_path / "envs"
    for name in ("token-billing-v0", "token-billing-v1", "token-billing-v2",
                 "reporting-engine-v1", "reporting-engine-v2", "reporting-engine-v3", "other-v1"):
        make_env(envs, name)
    (envs / ".token-billing-v3.next" / "conda-meta").mkdir(parents=True)
    billing, reports = tmp_path / "token-billing", tmp_path / "report-engine"
    (billing).mkdir()
    (reports).mkdir()
    (billing / "current").symlink_to(release(billing, "v2", envs / "token-billing-v2"))
    (billing / "previous").symlink_to(release(billing, "v1", envs / "token-billing-v1"))
    release(billing, "v0", envs / "token-billing-v0")
    (reports / "current").symlink_to(release(reports, "v2", envs / "reporting-engine-v2"))
    release(reports, "v1", envs / "reporting-engine-v1")
    units = tmp_path / "units"
    units.mkdir()
    # a unit that still names a retired release's env through its release dir
    (units / "report-engine-legacy.service").write_text(
        f"[Service]\nExecStart={reports}/releases/v1/env/bin/report-engine --month 2026-01\n"
    )
    # a timer alone references nothing; comments are ignored
    (units / "report-engine.timer").write_text(f"[Timer]\nUnit=report-engine.service\n# {envs}/other-v1\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--envs-root", str(envs),
         "--keep-link", str(billing / "current"), "--keep-link", str(billing / "previous"),
         "--keep-link", str(reports / "current"), "--keep-link", str(reports / "previous"),
         "--unit-dir", str(units)],
        capture_output=True, text=True, check=True,
    )
    report = json.loads(proc.stdout)
    assert sorted(report["would_remove"]) == ["other-v1", "reporting-engine-v3", "token-billing-v0"]
    assert report["removed"] == []
    assert set(report["kept"]) == {"token-billing-v1", "token-billing-v2", "reporting-engine-v1", "reporting-engine-v2"}
    assert report["kept"]["reporting-engine-v1"] == "referenced by unit report-engine-legacy.service"


def test_reference_walks_up_to_an_existing_path(tmp_path):
    module = load()
    envs = tmp_path / "envs"
    env = make_env(envs, "reporting-engine-v2")
    link = tmp_path / "current"
    link.symlink_to(env)
    assert module.env_of_reference(f"{link}/bin/not-installed-yet", envs.resolve()) == "reporting-engine-v2"
    assert module.env_of_reference("/var/lib/nothing/here", envs.resolve()) is None


def test_a_rebuilt_env_keeps_its_new_prefix_and_retires_the_old_one_once_unused(tmp_path):
    """conda_env builds a changed spec as <name>.<hash> beside <name>; once the release's env link moved to the
    new prefix, the old one goes (unless a process still runs from it, which the live tests cover)."""
    envs = tmp_path / "envs"
    old = make_env(envs, "token-billing-v2")
    new = make_env(envs, "token-billing-v2.0123456789ab")
    billing = tmp_path / "token-billing"
    billing.mkdir()
    (billing / "current").symlink_to(release(billing, "v2", new))
    args = [sys.executable, str(SCRIPT), "--dry-run", "--envs-root", str(envs), "--keep-link", str(billing / "current")]
    report = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    assert report["would_remove"] == ["token-billing-v2"]
    assert report["kept"] == {"token-billing-v2.0123456789ab": f"linked from {billing / 'current'}"}
    # before the switch, the old prefix is the one kept and the new build waits unlinked
    (billing / "releases/v2/env").unlink()
    (billing / "releases/v2/env").symlink_to(old)
    report = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    assert report["would_remove"] == ["token-billing-v2.0123456789ab"]


def test_a_removed_env_takes_its_spec_copies_and_pointer_along(tmp_path):
    """Only the bookkeeping around `conda env remove`: a stand-in conda removes the prefix (the fleet scenario
    runs the real one). The compiled modules only it linked to go too."""
    envs = tmp_path / "envs"
    old, new = make_env(envs, "token-billing-v2"), make_env(envs, "token-billing-v2.0123456789ab")
    specs = tmp_path / "env-specs"
    specs.mkdir()
    for name in ("token-billing-v2", "token-billing-v2.0123456789ab"):
        (specs / f"{name}.yml").write_text("spec")
        (specs / f"{name}.lock.txt").write_text("lock")
    (specs / "token-billing-v2.prefix").symlink_to(old)
    # conda_env_compile's store: one .pyc only the removed env links, one both envs link
    pyc = tmp_path / "env-pyc"
    pyc.mkdir()
    for name, envs_linking in (("only-old.pyc", [old]), ("shared.pyc", [old, new])):
        (pyc / name).write_bytes(b"pyc")
        for env in envs_linking:
            os.link(pyc / name, env / name)
    conda = tmp_path / "conda"
    conda.write_text("#!/bin/sh\n[ \"$1\" = env ] && rm -rf \"$4\"; echo '{}'\n")
    conda.chmod(0o755)
    billing = tmp_path / "token-billing"
    billing.mkdir()
    (billing / "current").symlink_to(release(billing, "v2", new))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--conda", str(conda), "--envs-root", str(envs),
                           "--lock", str(tmp_path / "lock"), "--keep-link", str(billing / "current")],
                          capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    assert report["removed"] == ["token-billing-v2"] and report["pyc_pruned"] == 1
    assert [p.name for p in pyc.iterdir()] == ["shared.pyc"]
    assert sorted(p.name for p in specs.iterdir()) == ["token-billing-v2.0123456789ab.lock.txt",
                                                       "token-billing-v2.0123456789ab.yml"]
    assert not old.exists() and new.exists()
