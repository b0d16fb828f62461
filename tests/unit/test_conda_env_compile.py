"""conda_env_compile: a module whose source is hard-linked from the package cache is
compiled for the first env only; later envs get that .pyc, and Python uses it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

MODULE = Path(__file__).parents[2] / "roles/conda_env/library/conda_env_compile.py"


def load():
    spec = importlib.util.spec_from_file_location("conda_env_compile", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def make_pkgs(root: Path) -> Path:
    pkg = root / "pkgs/shared-1.0/lib/site-packages/shared"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def where():\n    return where.__code__.co_filename\n")
    (pkg / "util.py").write_text("VALUE = 42\n")
    (pkg / "tests/test_x.py").write_text("X = 1\n")
    return pkg


def make_env(root: Path, name: str, pkg: Path) -> Path:
    prefix = root / "envs" / name
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin/python").symlink_to(sys.executable)
    site = prefix / "lib/site-packages"
    for src in pkg.rglob("*.py"):
        dst = site / "shared" / src.relative_to(pkg)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
    (site / "own.py").write_text(f"NAME = {name!r}\n")  # the env's own file, not shared
    return prefix


def pyc(prefix: Path, module: str) -> Path:
    src = prefix / "lib/site-packages" / module
    return Path(importlib.util.cache_from_source(str(src)))


def test_second_env_links_the_first_envs_bytecode_and_python_uses_it(tmp_path):
    mod = load()
    pkg = make_pkgs(tmp_path)
    store = tmp_path / "env-pyc"
    first = make_env(tmp_path, "a", pkg)
    counts = mod.compile_env(run, str(first), str(store), "/(tests?|idle_test)/")
    assert counts == {"pruned": 0, "linked": 0, "compiled": 3, "stored": 2, "rc": 0}

    second = make_env(tmp_path, "b", pkg)
    counts = mod.compile_env(run, str(second), str(store), "/(tests?|idle_test)/")
    assert counts == {"pruned": 0, "linked": 2, "compiled": 1, "stored": 0, "rc": 0}
    assert pyc(second, "shared/util.py").samefile(pyc(first, "shared/util.py"))
    assert not pyc(second, "shared/tests/test_x.py").exists()

    # -v names the bytecode an import used; co_filename is the importing env's source
    site = second / "lib/site-packages"
    p = subprocess.run([sys.executable, "-B", "-v", "-c", "import shared; print(shared.where())"],
                       capture_output=True, text=True, check=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(site)})
    assert f"code object from '{pyc(second, 'shared/__init__.py')}'" in p.stderr
    assert p.stdout.strip() == str(site / "shared/__init__.py")


def test_entries_no_env_uses_are_pruned_before_linking(tmp_path):
    mod = load()
    pkg = make_pkgs(tmp_path)
    store = tmp_path / "env-pyc"
    first = make_env(tmp_path, "a", pkg)
    mod.compile_env(run, str(first), str(store), "/(tests?|idle_test)/")
    subprocess.run(["rm", "-rf", str(first)], check=True)

    second = make_env(tmp_path, "b", pkg)
    counts = mod.compile_env(run, str(second), str(store), "/(tests?|idle_test)/")
    assert counts == {"pruned": 2, "linked": 0, "compiled": 3, "stored": 2, "rc": 0}
