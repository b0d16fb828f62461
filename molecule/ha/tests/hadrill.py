"""What the ha scenario's drills share: the cluster as Patroni reports it, the balancers' floating address, a
deadline-bound wait, and a writer on the controller that commits one usage row per transaction through the floating
address and counts every acknowledged commit."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
import urllib.request

import psycopg
from labrun import ENGINE

MEMBERS = ("tbh-db1", "tbh-db2", "tbh-db3")
BALANCERS = ("tbh-lb1", "tbh-lb2")
PASSWORD = "ha-superuser-secret"  # group_vars/db.yml
BACKUP = "tbh-backup1"
OUTAGE_LIMIT = 30.0  # seconds; the aim (README) is 15
CUSTOMERS = ("acme", "globex", "initech")
MODELS = ("small", "large")


def address(container: str) -> str:
    return subprocess.run(
        [ENGINE, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container], capture_output=True, text=True, check=True
    ).stdout.strip()


NETWORK = "tbh-net"  # molecule.yml


def power_off(container: str) -> str:
    """Kill a host's container (a power cut); returns its address for power_on."""
    kept = address(container)
    subprocess.run([ENGINE, "kill", container], check=True, capture_output=True)
    return kept


def power_on(container: str, kept: str) -> None:
    """Start a killed host again at the address it had, as a real host comes back: podman would hand the container
    a new one, and the balancers' HAProxy resolved the old one at its start (a restore to that host then found no
    server up for 90 s)."""
    for args in (
        ["wait", container],
        ["container", "cleanup", container],
        ["network", "disconnect", NETWORK, container],
        ["network", "connect", "--ip", kept, NETWORK, container],
        ["start", container],
    ):
        subprocess.run([ENGINE, *args], check=True, capture_output=True)
    assert address(container) == kept, f"{container} came back at {address(container)}, not {kept}"


@functools.cache
def vip() -> str:
    """The balancers' floating address: .250 of their network (group_vars/lb.yml), read while both run."""
    return address(BALANCERS[0]).rsplit(".", 1)[0] + ".250"


def cluster(via: str) -> dict:
    with urllib.request.urlopen(f"http://{address(via)}:8008/cluster", timeout=3) as r:
        return json.load(r)


def wait_for(what: str, check, deadline_s: float = 90.0):
    """Poll check() until it returns a truthy value; fail at the deadline with the last answer or error."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # any error is retried until the deadline
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {deadline_s:.0f} s; last: {last!r}")


def healthy_cluster(via: str, size: int) -> dict | None:
    c = cluster(via)
    members = c["members"]
    running = [m for m in members if m["state"] in ("running", "streaming")]
    leaders = [m for m in running if m["role"] == "leader"]
    sync = [m for m in running if m["role"] == "sync_standby"]
    return c if len(running) == size and len(leaders) == 1 and sync else None


def conninfo(port: int) -> str:
    # tcp_user_timeout: a session whose packets go nowhere (its balancer lost the address) fails instead of hanging.
    return (
        f"host={vip()} port={port} dbname=postgres user=postgres password={PASSWORD} connect_timeout=2 "
        "keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=5000"
    )


def leader(via: str) -> str:
    return next(m["name"] for m in cluster(via)["members"] if m["role"] == "leader")


def usage(n: int) -> tuple[str, str, int]:
    """Row n's customer, model and token count."""
    return CUSTOMERS[n % len(CUSTOMERS)], MODELS[n % len(MODELS)], 1 + n * 7919 % 4093


def totals(ids) -> dict[tuple[str, str], int]:
    """Tokens per (customer, model) of rows with these ids."""
    out: dict[tuple[str, str], int] = {}
    for n in ids:
        customer, model, tokens = usage(n)
        out[customer, model] = out.get((customer, model), 0) + tokens
    return out


def new_table() -> None:
    wait_for("a healthy cluster of three", lambda: healthy_cluster(MEMBERS[0], 3))
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS drill")
        conn.execute(
            "CREATE TABLE drill (id bigint PRIMARY KEY, customer text NOT NULL, model text NOT NULL, "
            "tokens bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())"
        )


def stored_ids() -> list[int]:
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM drill ORDER BY id")]


class Writer(threading.Thread):
    """One INSERT per transaction, ids 1, 2, 3..., at a steady `rate` per second (unpaced, it committed about 470 a
    second, two fsyncs each, and took the CPU the scenarios beside it need); an id is acknowledged when its commit
    returned, uncertain when the connection failed with the commit possibly sent. Reconnects through the balancer
    after any error."""

    def __init__(self, port: int = 5432, first: int = 1, rate: float = 100.0) -> None:
        super().__init__(daemon=True)
        self.first = first
        self.interval = 1.0 / rate
        self.conninfo = conninfo(port)
        self.acked: list[int] = []
        self.uncertain: list[int] = []
        self.failures: list[tuple[float, str]] = []
        self.successes: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = self.first - 1
        conn = None
        due = time.monotonic()
        while not self.stop.is_set():
            # the next commit's turn; a writer that fell behind does not burst to catch up
            due = max(due + self.interval, time.monotonic() - self.interval)
            if self.stop.wait(max(0.0, due - time.monotonic())):
                break
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                n += 1
                try:
                    conn.execute("INSERT INTO drill (id, customer, model, tokens) VALUES (%s, %s, %s, %s)", (n, *usage(n)))
                except psycopg.OperationalError:
                    self.uncertain.append(n)
                    raise
                self.acked.append(n)
                self.successes.append(time.monotonic())
            except psycopg.Error as exc:
                self.failures.append((time.monotonic(), str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def acked_after(self, t: float) -> int:
        return sum(1 for s in self.successes if s > t)

    def outage(self, since: float) -> float:
        """Seconds from the first failure after `since` to the first success after that failure (0 if none failed)."""
        first_fail = next((t for t, _ in self.failures if t >= since), None)
        if first_fail is None:
            return 0.0
        return next(s for s in self.successes if s > first_fail) - first_fail
