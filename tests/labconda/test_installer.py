"""Constructor-style installer behaviour (contract section 1)."""
import json
import subprocess

from conftest import NEW, OLD, clean_env, installer


def run(mirror_dir, version, *args, home):
    return subprocess.run(["bash", str(installer(mirror_dir, version)), *map(str, args)],
                          env=clean_env(home), capture_output=True, text=True)


def test_help_exits_2(mirror_dir, tmp_path):
    r = run(mirror_dir, NEW, "-h", home=tmp_path)
    assert r.returncode == 2
    assert "usage:" in r.stdout and "-u" in r.stdout and "lab test double" in r.stdout


def test_unknown_option(mirror_dir, tmp_path):
    r = run(mirror_dir, NEW, "-z", home=tmp_path)
    assert r.returncode == 1
    assert "ERROR: did not recognize option '-z', please try -h" in r.stderr
    r = run(mirror_dir, NEW, "--bogus", home=tmp_path)
    assert r.returncode == 1
    assert "ERROR: did not recognize option '--bogus', please try -h" in r.stderr


def test_existing_prefix_without_u(mirror_dir, tmp_path):
    prefix = tmp_path / "existing"
    prefix.mkdir()
    r = run(mirror_dir, NEW, "-b", "-p", prefix, home=tmp_path)
    assert r.returncode == 1
    assert f"ERROR: File or directory already exists: '{prefix}'" in r.stderr
    assert "If you want to update an existing installation, use the -u option." in r.stderr
    assert list(prefix.iterdir()) == []


def test_prefix_with_space(mirror_dir, tmp_path):
    r = run(mirror_dir, NEW, "-b", "-p", tmp_path / "a b", home=tmp_path)
    assert r.returncode == 1
    assert "ERROR: Cannot install into directories with spaces" in r.stderr


def test_install_then_upgrade_in_place(mirror_dir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "lc"
    r = run(mirror_dir, OLD, "-b", "-p", prefix, home=home)
    assert r.returncode == 0, r.stderr
    for rel in ("bin/conda", "condabin/conda", "etc/profile.d/conda.sh", "conda-meta/history",
                "conda-meta/initial-state.explicit.txt", "envs", "bin/python3.11"):
        assert (prefix / rel).exists(), rel
    # no -k: the cache's contents are dropped, an empty writable pkgs/ stays
    assert sorted(p.name for p in (prefix / "pkgs").iterdir()) == ["urls.txt"]
    assert not (home / ".bashrc").exists()  # rc files untouched
    v = subprocess.run([prefix / "bin" / "conda", "--version"], capture_output=True, text=True,
                       env=clean_env(home))
    assert v.stdout.strip() == f"conda {OLD}"
    explicit = (prefix / "conda-meta" / "initial-state.explicit.txt").read_text()
    assert "@EXPLICIT" in explicit and f"labconda-{OLD}-py_0.conda#sha256:" in explicit

    r = run(mirror_dir, NEW, "-b", "-u", "-k", "-p", prefix, home=home)
    assert r.returncode == 0, r.stderr
    v = subprocess.run([prefix / "condabin" / "conda", "--version"], capture_output=True, text=True,
                       env=clean_env(home))
    assert v.stdout.strip() == f"conda {NEW}"
    hist = (prefix / "conda-meta" / "history").read_text()
    assert hist.count("==> ") == 2
    assert f"-conda-forge/noarch::labconda-{OLD}-py_0" in hist
    assert f"+conda-forge/noarch::labconda-{NEW}-py_0" in hist
    metas = sorted(p.name for p in (prefix / "conda-meta").glob("labconda-*.json"))
    assert metas == [f"labconda-{NEW}-py_0.json"]
    assert (prefix / "pkgs" / f"labconda-{NEW}-py_0").is_dir()  # -k keeps the cache
    # the shell helper works and never needs rc edits
    sh = subprocess.run(["bash", "-c", f". {prefix}/etc/profile.d/conda.sh && conda --version && "
                         "conda activate base && echo $CONDA_PREFIX"],
                        capture_output=True, text=True, env=clean_env(home))
    assert sh.returncode == 0, sh.stderr
    assert sh.stdout.split() == ["conda", NEW, str(prefix)]


def test_files_json_and_sha256(mirror_dir):
    d = mirror_dir / "installers"
    files = json.loads((d / ".files.json").read_text())
    assert set(files) == {f"LabConda-{v}-0-Linux-x86_64.sh" for v in (OLD, NEW)}
    for name, meta in files.items():
        assert set(meta) == {"md5", "mtime", "sha256", "size"}
        assert (d / name).stat().st_size == meta["size"]
        line = (d / f"{name}.sha256").read_text()
        assert line == f"{meta['sha256']}  {name}\n"
