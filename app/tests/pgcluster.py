"""A throwaway PostgreSQL cluster for tests and benchmarks.

Uses Debian's server binaries (``apt-get install postgresql``): ``initdb`` and ``pg_ctl``
run as the ``postgres`` OS user when we are root, in a temporary directory, listening on
127.0.0.1 on a free port. ``stop()`` removes everything.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

DEFAULT_BINDIRS = ("/usr/lib/postgresql/15/bin",)
MISSING_MESSAGE = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found in {dirs}: "
    "run `apt-get install postgresql`"
)


class PgBinariesMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = [os.environ.get("TOKEN_BILLING_PG_BINDIR", ""), *DEFAULT_BINDIRS]
    for cand in candidates:
        if cand and (Path(cand) / "initdb").is_file() and (Path(cand) / "pg_ctl").is_file():
            return Path(cand)
    raise PgBinariesMissing(MISSING_MESSAGE.format(dirs=", ".join(c for c in candidates if c)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(
        self,
        *,
        durable: bool = False,
        extra_settings: Mapping[str, str] | None = None,
        prefix: str = "tb-pg-",
    ) -> None:
        self.bindir = find_bindir()
        self.durable = durable
        self.extra_settings = dict(extra_settings or {})
        self.prefix = prefix
        self.base: Path | None = None
        self.port = 0
        self.running = False

    # -- helpers -----------------------------------------------------------------------
    def _run_as_postgres(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        cmd = args
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            cmd, check=True, capture_output=True, text=True, **kw
        )

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    # -- lifecycle -----------------------------------------------------------------------
    def init(self) -> PgCluster:
        self.base = Path(tempfile.mkdtemp(prefix=self.prefix))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._run_as_postgres(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "timezone": "'UTC'",
            "log_min_messages": "warning",
        }
        if not self.durable:
            conf.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        conf.update(self.extra_settings)
        with open(self.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        return self

    def start(self) -> PgCluster:
        if self.base is None:
            self.init()
        last_err = ""
        for _ in range(5):
            self.port = free_port()
            try:
                self._pg_ctl_start()
            except subprocess.CalledProcessError as exc:
                last_err = (exc.stderr or exc.stdout or "").strip()
                time.sleep(0.2)
                continue
            self.running = True
            return self
        raise RuntimeError(f"could not start PostgreSQL: {last_err} (log: {self.logfile})")

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run_as_postgres(
                    [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"]
                )
            self.running = False

    def restart_same_port(self) -> None:
        """Start again on the port used before (after ``stop()``)."""
        self._pg_ctl_start()
        self.running = True

    def _pg_ctl_start(self) -> None:
        self._run_as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def destroy(self) -> None:
        self.stop("immediate")
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_cluster(**kwargs: object) -> Iterator[PgCluster]:
    cluster = PgCluster(**kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
