#!/usr/bin/python
"""Compile a new env's Python modules, reusing the bytecode of files it shares with other envs."""
from __future__ import annotations

import os
import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: conda_env_compile
short_description: Compile a conda env's modules once per package file, not once per env
description:
  - Runs C(python -m compileall) with the env's own interpreter on the env's C(lib),
    after hard-linking into it the C(.pyc) of every module whose source is the same
    file (conda hard-links package files from its package cache) as one compiled for
    an earlier env. A C(.pyc) records its source's mtime and size, which hard links
    share, so the interpreter accepts it as current.
  - Newly compiled C(.pyc) of shared sources go to O(store). An entry no env links to
    any more is removed first, so a reused inode never meets an old entry.
  - Where O(store) is on another filesystem than the env, every module is compiled.
options:
  prefix:
    description: The env's prefix.
    type: path
    required: true
  store:
    description: Directory holding one hard link to each shared C(.pyc); created if missing.
    type: path
    required: true
  exclude:
    description: Regular expression of paths not compiled (C(compileall -x)).
    type: str
    default: /(tests?|idle_test)/
"""

RETURN = r"""
linked:
  description: C(.pyc) files linked from the store.
  type: int
compiled:
  description: C(.pyc) files compileall wrote.
  type: int
stored:
  description: C(.pyc) files added to the store.
  type: int
pruned:
  description: Store entries removed because no env used them.
  type: int
rc:
  description: compileall's exit code (1 is a module that does not parse, left as it is).
  type: int
"""

TAG = "import sys; print(sys.implementation.cache_tag)"


def sources(lib: str, exclude: re.Pattern[str], tag: str):
    """(pyc path, store key) of every .py under lib that compileall compiles; the key is None for a source with no
    other hard link (the env's own file)."""
    for root, dirs, files in os.walk(lib):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(root, name)
            if not name.endswith(".py") or exclude.search(path) or not os.path.isfile(path):
                continue
            st = os.lstat(path)
            pyc = os.path.join(root, "__pycache__", f"{name[:-3]}.{tag}.pyc")
            yield pyc, f"{st.st_dev}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}.{tag}.pyc" if st.st_nlink > 1 else None


def prune(store: str) -> int:
    pruned = 0
    for entry in os.scandir(store):
        try:
            if entry.name.endswith(".pyc") and entry.stat(follow_symlinks=False).st_nlink == 1:
                os.unlink(entry.path)
                pruned += 1
        except FileNotFoundError:
            pass  # conda-env-cleanup pruned it
    return pruned


def link(src: str, dst: str) -> bool:
    try:
        os.link(src, dst)
    except OSError:  # already there, or another filesystem: compile instead
        return False
    return True


def compile_env(run, prefix: str, store: str, exclude: str) -> dict[str, int]:
    """run(argv) -> (rc, stdout, stderr); returns the counts and compileall's rc."""
    python = os.path.join(prefix, "bin", "python")
    lib = os.path.join(prefix, "lib")
    rc, out, err = run([python, "-c", TAG])
    if rc != 0:
        raise RuntimeError(f"{python} did not start: {err.strip() or out.strip()}")
    tag = out.strip()
    os.makedirs(store, mode=0o755, exist_ok=True)
    counts = {"pruned": prune(store), "linked": 0, "compiled": 0, "stored": 0}
    missing = []
    for pyc, key in sources(lib, re.compile(exclude), tag):
        if os.path.exists(pyc):
            continue
        entry = os.path.join(store, key) if key else None
        if entry and os.path.exists(entry):
            os.makedirs(os.path.dirname(pyc), mode=0o755, exist_ok=True)
            if link(entry, pyc):
                counts["linked"] += 1
                continue
        missing.append((pyc, entry))
    rc, out, err = run([python, "-m", "compileall", "-q", "-j", "0", "-x", exclude, lib])
    counts["rc"] = rc
    if rc not in (0, 1):
        raise RuntimeError(f"compileall failed (rc {rc}): {err.strip() or out.strip()}")
    for pyc, entry in missing:
        if os.path.exists(pyc):
            counts["compiled"] += 1
            if entry and link(pyc, entry):
                counts["stored"] += 1
    return counts


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "path", "required": True},
            "store": {"type": "path", "required": True},
            "exclude": {"type": "str", "default": "/(tests?|idle_test)/"},
        },
    )
    p = module.params
    try:
        counts = compile_env(module.run_command, p["prefix"], p["store"], p["exclude"])
    except (OSError, RuntimeError) as e:
        module.fail_json(msg=f"compiling {p['prefix']}: {e}")
    module.exit_json(changed=True, **counts)


if __name__ == "__main__":
    main()
