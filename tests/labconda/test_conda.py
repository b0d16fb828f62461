"""The lab conda double against the contract (conda-cli-contract.md sections 0, 2, 3, 5)."""
import subprocess
from pathlib import Path

from conftest import NEW

LINK_KEYS = {"base_url", "build_number", "build_string", "channel", "dist_name", "name", "platform", "version"}
ERR_KEYS = {"caused_by", "error", "exception_name", "exception_type", "message"}


def write_env(path: Path, deps, channels=("conda-forge",), pip=None, name="t"):
    lines = [f"name: {name}"]
    if channels is not None:
        lines.append("channels:")
        lines += [f"  - {c}" for c in channels]
    lines.append("dependencies:")
    lines += [f"  - {d}" for d in deps]
    if pip:
        lines.append("  - pip:")
        lines += [f"      - {p}" for p in pip]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- info / version / env list ------------------------------------------------------

def test_version(conda):
    r = conda("--version")
    assert r.returncode == 0 and r.stdout == f"conda {NEW}\n"


def test_info_says_lab_double(conda, base):
    info = conda.json("info")
    assert info["lab_double"] is True and "test double" in info["lab_double_note"]
    assert info["conda_version"] == NEW and info["platform"] == "linux-64"
    assert info["root_prefix"] == str(base) == info["conda_prefix"] == info["default_prefix"]
    assert info["root_writable"] is True
    assert info["pkgs_dirs"][0] == str(base / "pkgs")
    assert info["envs_dirs"][0] == str(base / "envs")
    assert info["sys_rc_path"] == str(base / ".condarc")
    assert info["user_rc_path"] == str(Path(conda.home) / ".condarc")
    assert str(Path(conda.home) / ".condarc") in info["config_files"]
    assert info["solver"]["name"] == "rattler"
    for k in ("channels", "envs", "envs_details", "offline", "active_prefix"):
        assert k in info
    text = conda("info")
    assert text.returncode == 0 and "lab double" in text.stdout and "py-rattler" in text.stdout


def test_env_list_matches_info_envs(conda, base, env_v1):
    prefix, _ = env_v1
    a = conda.json("env", "list")
    b = conda.json("info", "--envs")
    assert a == b
    assert a["envs"][0] == str(base) and str(prefix) in a["envs"]
    d = a["envs_details"][str(prefix)]
    assert set(d) == {"name", "created", "last_modified", "active", "base", "frozen", "writable"}
    assert d["name"] == "" and d["base"] is False and d["active"] is False
    assert a["envs_details"][str(base)]["base"] is True and a["envs_details"][str(base)]["name"] == "base"


# ---- config ------------------------------------------------------------------------

def test_config_merge_final_aliases_and_errors(conda, tmp_path):
    home = tmp_path
    (home / ".conda").mkdir()
    # low precedence: ~/.conda/.condarc locks channel_alias with #!final
    (home / ".conda" / ".condarc").write_text(
        "channel_alias: http://mirror:8080/conda  #!final\nchannels:\n  - low\n  - shared\n")
    (home / ".conda" / "condarc.d").mkdir()
    (home / ".conda" / "condarc.d" / "10-x.yml").write_text("custom_channels:\n  internal: http://pkgs.lab/c\n")
    (home / ".condarc").write_text("channel_alias: https://ignored.example\nchannels:\n  - mid\n  - shared\n"
                                   "channel_priority: flexible\nauto_activate_base: false\n")
    rc = tmp_path / "rc.yml"
    rc.write_text("channels:\n  - high\nchannel_priority: strict\n")
    out = conda.json("config", "--show", "channels", "channel_alias", "channel_priority", "auto_activate",
                     "custom_channels", home=home, env={"CONDARC": rc})
    assert list(out) == ["auto_activate", "channel_alias", "channel_priority", "channels", "custom_channels"]
    assert out["channels"] == ["high", "mid", "shared", "low"]
    assert out["channel_priority"] == "strict"
    assert out["auto_activate"] is False
    assert out["channel_alias"]["scheme"] == "http" and out["channel_alias"]["location"] == "mirror:8080/conda"
    assert out["custom_channels"]["internal"]["location"] == "pkgs.lab/c"
    # everything, sorted, with the defaults
    allv = conda.json("config", "--show", home=home)
    assert list(allv) == sorted(allv)
    assert allv["pkgs_dirs"] == [str(conda.base / "pkgs"), str(home / ".conda" / "pkgs")]
    assert allv["always_yes"] is None and allv["offline"] is False
    # #!final on channels in a low file beats env vars too
    (home / ".conda" / ".condarc").write_text("channels: #!final\n  - only\n")
    out = conda.json("config", "--show", "channels", home=home, env={"CONDARC": rc, "CONDA_CHANNELS": "x,y"})
    assert out == {"channels": ["only"]}
    # env var with the CONDA_ prefix
    out = conda.json("config", "--show", "channel_priority", home=home,
                     env={"CONDA_CHANNEL_PRIORITY": "disabled"})
    assert out == {"channel_priority": "disabled"}
    # unknown key
    err = conda.json("config", "--show", "no_such_key", rc=1, home=home)
    assert set(err) >= ERR_KEYS and err["exception_name"] == "CondaKeyError"
    assert err["message"] == "'no_such_key': unknown parameter"
    assert err["exception_type"] == "<class 'conda.exceptions.CondaKeyError'>"
    r = conda("config", "--show", "no_such_key", home=home)
    assert r.returncode == 1 and "CondaKeyError: 'no_such_key': unknown parameter" in r.stderr and r.stdout == ""


def test_config_text_and_set(conda, tmp_path):
    r = conda("config", "--show", "channels", home=tmp_path, env={"CONDA_CHANNELS": "conda-forge"})
    assert r.returncode == 0 and r.stdout == "channels:\n  - conda-forge\n"
    out = conda.json("config", "--set", "auto_activate_base", "false", home=tmp_path)
    assert out == {"success": True, "rc_path": str(tmp_path / ".condarc"), "warnings": [], "get": {}}
    assert (tmp_path / ".condarc").read_text() == "auto_activate: false\n"


# ---- env create --------------------------------------------------------------------

def test_env_create_v1(conda, env_v1):
    prefix, out = env_v1
    assert out["success"] is True and out["prefix"] == str(prefix)
    acts = out["actions"]
    assert acts["PREFIX"] == str(prefix)
    names = {e["name"]: e for e in acts["LINK"]}
    for n in ("python", "flask", "sqlalchemy", "psycopg", "prometheus-client", "pip", "gunicorn", "alembic"):
        assert n in names
    assert names["flask"]["version"] == "3.1.2" and names["python"]["version"] == "3.11.7"
    assert all(set(e) == LINK_KEYS for e in acts["LINK"])
    assert names["flask"]["channel"] == "conda-forge"
    assert names["flask"]["base_url"] == conda.server + "/conda/conda-forge"
    assert acts["PIP"] == ["psycopg-binary-3.3.9"]
    code = ("import flask, sqlalchemy, psycopg, prometheus_client, gunicorn, alembic, ssl, sqlite3;"
            "from importlib.metadata import version as v;"
            "print(v('flask'), sqlalchemy.__version__, psycopg.pq.__impl__, v('prometheus_client'))")
    r = subprocess.run([prefix / "bin" / "python", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3.1.2", "2.0.58", "binary", "0.25.0"]
    hist = (prefix / "conda-meta" / "history").read_text()
    assert "# cmd: " in hist and "+conda-forge/noarch::flask-3.1.2-py_0" in hist
    assert "+conda-forge/linux-64::python-3.11.7-" in hist and "# update specs: [" in hist
    assert str(prefix) in (Path(conda.home) / ".conda" / "environments.txt").read_text().split()
    assert not (prefix / "CACHEDIR.TAG").exists()
    assert not list(prefix.parent.glob("condaenv.*.requirements.txt"))


def test_list_shape(conda, env_v1):
    prefix, _ = env_v1
    lst = conda.json("list", "-p", prefix)
    assert [e["name"] for e in lst] == sorted(e["name"] for e in lst)
    assert all(set(e) == LINK_KEYS for e in lst)
    pipd = [e for e in lst if e["channel"] == "pypi"]
    assert pipd == [{"base_url": "https://pypi.org/", "build_number": 0, "build_string": "pypi_0",
                     "channel": "pypi", "dist_name": "psycopg-binary-3.3.9-pypi_0", "name": "psycopg-binary",
                     "platform": "pypi", "version": "3.3.9"}]
    py = next(e for e in lst if e["name"] == "python")
    assert py["platform"] == "linux-64" and py["channel"] == "conda-forge"
    err = conda.json("list", "-p", prefix.parent / "nope", rc=1)
    assert err["exception_name"] == "EnvironmentLocationNotFound"


def test_run_passes_rc(conda, env_v1, tmp_path):
    prefix, _ = env_v1
    r = conda("run", "-p", prefix, "python", "-c", "import sys; print(sys.prefix); sys.exit(3)")
    assert r.returncode == 3 and r.stdout.strip() == str(prefix)
    assert "failed. (See above for error)" in r.stderr
    r = conda("run", "-p", prefix, "--cwd", tmp_path, "--no-capture-output", "--",
              "python", "-c", "import os; print(os.getcwd())")
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path)
    r = conda("run", "-p", prefix, "-s", "gunicorn", "--version")
    assert r.returncode == 0 and "23.0.0" in r.stdout
    assert conda("run", "-p", tmp_path / "missing", "true").returncode == 1
    assert conda("run", "-p", prefix).returncode == 2


def test_rerun_replaces_env_and_explicit_lock(conda, tmp_path, mirror_dir):
    spec = write_env(tmp_path / "small.yml", ["python=3.11.7", "flask=3.1.3"])
    prefix = tmp_path / "small"
    conda.json("env", "create", "-f", spec, "-p", prefix)
    (prefix / "marker").write_text("x")
    # plain `create` without --yes asks; stdin EOF answers the default "no": rc 0, no change
    r = conda("create", "-p", prefix, "--file", spec, input="")
    assert r.returncode == 0 and "Remove existing environment?" in r.stdout and (prefix / "marker").exists()
    out = conda.json("env", "create", "-f", spec, "-p", prefix)
    assert out["success"] and not (prefix / "marker").exists()
    assert (prefix / "conda-meta" / "history").read_text().count("==> ") == 1
    # @EXPLICIT lock from the build, pointed at this server
    lock = tmp_path / "v2.lock.txt"
    lock.write_text((mirror_dir / "envs" / "token-billing-v2.lock.txt").read_text()
                    .replace("http://mirror:8080", conda.server))
    p2 = tmp_path / "locked"
    conda.json("create", "-p", p2, "--file", lock, "--yes")
    lst = {e["name"]: e["version"] for e in conda.json("list", "-p", p2)}
    assert lst["flask"] == "3.1.3" and lst["gunicorn"] == "25.1.0" and lst["prometheus-client"] == "0.26.0"


def test_missing_package_leaves_no_prefix(conda, tmp_path):
    spec = write_env(tmp_path / "bad.yml", ["python=3.11.7", "nosuchpkg"])
    prefix = tmp_path / "bad"
    err = conda.json("env", "create", "-f", spec, "-p", prefix, rc=1)
    assert err["exception_name"] == "PackagesNotFoundInChannelsError"
    assert err["packages"] == ["nosuchpkg"]
    assert err["channel_urls"] == [conda.server + "/conda/conda-forge"]
    assert err["message"].startswith("The following packages are not available from current channels:\n\n"
                                     "  - nosuchpkg\n\nCurrent channels:\n\n  - " + conda.server)
    assert ERR_KEYS | {"packages_formatted", "channels_formatted"} <= set(err)
    assert not prefix.exists()
    r = conda("create", "-p", prefix, "--file", spec, "--yes")
    assert r.returncode == 1 and "PackagesNotFoundInChannelsError: The following packages" in r.stderr
    assert not prefix.exists()


def test_no_channels(conda, tmp_path):
    (tmp_path / ".condarc").write_text(f"channel_alias: {conda.server}/conda\n")
    spec = write_env(tmp_path / "nochan.yml", ["python=3.11.7"], channels=None)
    err = conda.json("env", "create", "-f", spec, "-p", tmp_path / "e", rc=1, home=tmp_path)
    assert err["exception_name"] == "NoChannelsConfiguredError"
    assert not (tmp_path / "e").exists()


def test_missing_target_is_argument_error(conda, tmp_path):
    spec = tmp_path / "noname.yml"
    spec.write_text("channels: [conda-forge]\ndependencies: [python=3.11.7]\n")
    r = conda("env", "create", "-f", spec)
    assert r.returncode == 2


def test_pip_failure_keeps_env(conda, tmp_path):
    spec = write_env(tmp_path / "pipbad.yml", ["python=3.11.7", "pip=26.3"], pip=["no-such-dist-xyz==1.0"])
    prefix = tmp_path / "pipbad"
    r = conda("env", "create", "-f", spec, "-p", prefix)
    assert r.returncode == 1
    assert "Pip subprocess error:" in r.stderr and "CondaEnvException: Pip failed" in r.stderr
    assert (prefix / "conda-meta" / "history").exists()
    assert not list(tmp_path.glob("condaenv.*.requirements.txt"))


def test_env_remove(conda, tmp_path, base):
    spec = write_env(tmp_path / "rm.yml", ["python=3.11.7"])
    prefix = tmp_path / "rm"
    conda.json("env", "create", "-f", spec, "-p", prefix)
    r = conda("env", "remove", "-p", prefix, input="")  # no --yes: EOF declines, rc 0, no change
    assert r.returncode == 0 and (prefix / "conda-meta" / "history").exists()
    out = conda.json("env", "remove", "-p", prefix, "--yes")
    assert out["success"] is True and out["prefix"] == str(prefix)
    assert out["actions"]["FETCH"] == [] and out["actions"]["PREFIX"] == str(prefix)
    assert [e["name"] for e in out["actions"]["UNLINK"]] == ["python"]
    assert not prefix.exists()
    assert str(prefix) not in conda.json("env", "list")["envs"]
    err = conda.json("env", "remove", "-p", prefix, "--yes", rc=1)
    assert err["exception_name"] == "EnvironmentLocationNotFound"
    assert err["message"] == f"Not a conda environment: {prefix}"
    err = conda.json("env", "remove", "-n", "ghost", "--yes", rc=1)
    assert err["message"] == f"Not a conda environment: {base / 'envs' / 'ghost'}"
    r = conda("env", "remove", "-n", "ghost", "--yes")
    assert r.returncode == 1 and "EnvironmentLocationNotFound: Not a conda environment: " in r.stderr
    assert conda("env", "remove", "-p", base, "--yes").returncode == 1
    plain = tmp_path / "plain"
    plain.mkdir()
    assert conda.json("env", "remove", "-p", plain, "--yes", rc=1)["exception_name"] == \
        "DirectoryNotACondaEnvironmentError"


def test_named_env_in_envs_dir(conda, tmp_path, base):
    spec = write_env(tmp_path / "named.yml", ["python=3.11.7"], name="named-env")
    out = conda.json("env", "create", "-f", spec)  # name from the file
    assert out["prefix"] == str(base / "envs" / "named-env")
    lst = conda.json("env", "list")
    assert lst["envs_details"][str(base / "envs" / "named-env")]["name"] == "named-env"
    conda.json("env", "remove", "-n", "named-env", "--yes")
    assert not (base / "envs" / "named-env").exists()


def test_clean_skips_packages_in_use(conda, tmp_path):
    pkgs = tmp_path / "pkgs"
    env = {"CONDA_PKGS_DIRS": pkgs}
    spec = write_env(tmp_path / "c.yml", ["python=3.11.7", "blinker=1.9.0"])
    prefix = tmp_path / "c"
    conda.json("env", "create", "-f", spec, "-p", prefix, env=env)
    out = conda.json("clean", "--packages", "--tarballs", "--yes", env=env)
    assert out["success"] is True
    tb = out["tarballs"]
    assert set(tb) == {"warnings", "pkg_sizes", "pkgs_dirs", "total_size"}
    assert sorted(tb["pkgs_dirs"][str(pkgs)]) == sorted(p.name for p in [
        *pkgs.glob("*.conda")]) or not list(pkgs.glob("*.conda"))
    assert any(n.startswith("python-3.11.7") for n in tb["pkgs_dirs"][str(pkgs)])
    assert tb["total_size"] == sum(tb["pkg_sizes"][str(pkgs)].values()) > 0
    assert out["packages"]["pkgs_dirs"] == {}  # every extracted package is hard-linked into the env
    assert (pkgs / "blinker-1.9.0-py_0").is_dir() and not list(pkgs.glob("*.conda"))
    conda.json("env", "remove", "-p", prefix, "--yes")
    out = conda.json("clean", "--packages", "--tarballs", "--yes", env=env)
    assert sorted(out["packages"]["pkgs_dirs"][str(pkgs)]) == ["blinker-1.9.0-py_0", "python-3.11.7-h0lab_0_cpython"]
    assert out["tarballs"]["pkgs_dirs"] == {}
    assert not (pkgs / "blinker-1.9.0-py_0").exists()
    out = conda.json("clean", "--all", "--yes", env=env)
    assert set(out) >= {"success", "index_cache", "packages", "tarballs", "tempfiles", "logfiles"}
    out = conda.json("clean", "--force-pkgs-dirs", "--yes", env=env)
    assert out == {"success": True, "pkgs_dirs": [str(pkgs)]} and not pkgs.exists()
    assert conda("clean", "--yes").returncode == 2
