"""Backups of the cluster (roles/pgbackrest) and playbooks/restore.yml under the drills of the HA issue: the
repository verifies; a target the repository cannot reach is refused before anything stops; a point-in-time restore
gives exactly the usage acknowledged before the target; and after every member's data directory is lost, a restore
loses no acknowledged row older than the last archived WAL file (the loss after it is printed)."""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import time

import psycopg
from hadrill import BACKUP, BALANCERS, MEMBERS, Writer, conninfo, healthy_cluster, leader, new_table, stored_ids, totals, wait_for
from labrun import FLEET_LOCK, lock_state, playbook, sh

ARCHIVE_TIMEOUT = 10  # group_vars/db.yml patroni_archive_timeout
LOCK_HOST = BALANCERS[0]  # roles/fleet_lock: on the first balancer


def pgbackrest(command: str) -> str:
    return sh(BACKUP, f"su postgres -c 'pgbackrest --stanza=billing {command}'")


def write(first: int, count: int) -> Writer:
    """Commit `count` rows from id `first` through the floating address, then stop; every one acknowledged."""
    writer = Writer(first=first)
    writer.start()
    try:
        wait_for(f"{count} commits", lambda: len(writer.acked) >= count)
    finally:
        writer.stop.set()
        writer.join(30)
    assert not writer.failures, writer.failures[:3]
    return writer


def server_time() -> str:
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0].isoformat(sep=" ")


def stored_totals() -> dict[tuple[str, str], int]:
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        rows = conn.execute("SELECT customer, model, sum(tokens) FROM drill GROUP BY customer, model").fetchall()
    return {(customer, model): int(tokens) for customer, model, tokens in rows}


def leader_reachable() -> bool:
    """The balancers have taken the new leader in (Patroni may report it healthy a check interval earlier)."""
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        return conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()[0]


def restore(*extra: str) -> tuple[int, str, float]:
    rc, out, took = playbook("restore.yml", *extra)
    assert rc == 0, out[-3000:]
    assert lock_state(LOCK_HOST) == "free"
    wait_for("a healthy cluster of three after the restore", lambda: healthy_cluster(MEMBERS[0], 3), deadline_s=120)
    wait_for("the leader through the floating address", leader_reachable)
    return rc, out, took


def test_the_repository_holds_a_verified_backup_and_its_timers_run():
    info = json.loads(pgbackrest("--output=json info"))[0]
    assert info["status"]["code"] == 0, info["status"]
    assert [b["type"] for b in info["backup"]][:1] == ["full"], info["backup"]
    pgbackrest("check")
    pgbackrest("verify")
    assert sh(BACKUP, "systemctl is-active pgbackrest-backup-full.timer pgbackrest-backup-diff.timer") == "active\nactive"
    # A database host's pgBackRest server takes only the repository host's certificate.
    refused = sh(MEMBERS[0], "curl -sk --max-time 5 https://127.0.0.1:8432/ -o /dev/null -w '%{http_code}'", check=False)
    assert refused in ("000", ""), refused


def test_a_target_outside_the_repository_is_refused_before_anything_stops():
    before = leader(MEMBERS[0])
    oldest = min(b["timestamp"]["stop"] for b in json.loads(pgbackrest("--output=json info"))[0]["backup"])
    too_early = datetime.datetime.fromtimestamp(oldest - 3600, datetime.UTC).isoformat(sep=" ")
    too_late = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat(sep=" ")
    for target, says in (
        (too_early, "is before the end of the oldest backup"),
        (too_late, "is after the newest archived WAL"),
        ("yesterday", "is not an ISO 8601 time with its offset"),
    ):
        rc, out, _ = playbook("restore.yml", "-e", f"restore_target_time='{target}'")
        assert rc != 0 and says in out, out[-2000:]
    # another change (a deploy, here by hand) holds the fleet lock: no restore
    holder = json.dumps({"id": "drill", "who": "ops@laptop", "what": "deploy of v9", "since": "2026-12-07T00:00:00Z"})
    sh(LOCK_HOST, f"mkdir -p {FLEET_LOCK}; echo '{holder}' > {FLEET_LOCK}/holder.json")
    try:
        rc, out, _ = playbook("restore.yml")
    finally:
        sh(LOCK_HOST, f"rm -rf {FLEET_LOCK}")
    assert rc != 0 and "restore of the database cluster refused: the fleet is locked by ops@laptop (deploy of v9" in out, out[-2000:]
    assert leader(MEMBERS[0]) == before
    assert healthy_cluster(MEMBERS[0], 3)


def test_point_in_time_restore_gives_exactly_what_was_acknowledged_before_the_target():
    new_table()
    before = write(1, 300)
    target = server_time()
    after = write(100_001, 300)
    pgbackrest("check")  # closes the WAL file holding the later rows and waits until the repository has it
    _, _, took = restore("-e", f"restore_target_time='{target}'")
    stored = stored_ids()
    print(
        f"\npoint-in-time restore to {target}: {len(before.acked)} rows acknowledged before, {len(after.acked)} "
        f"after; {len(stored)} stored after the restore, which took {took:.1f} s"
    )
    assert stored == sorted(before.acked), f"{len(stored)} rows stored, {len(before.acked)} acknowledged before"
    assert stored_totals() == totals(before.acked)


def test_losing_every_data_directory_loses_nothing_older_than_the_last_archived_wal():
    new_table()
    writer = Writer()
    writer.start()
    try:
        wait_for("300 commits", lambda: len(writer.acked) >= 300)
        # Everything acknowledged before this WAL switch is in the repository once the switched file is.
        archived_before = set(writer.acked)
        with psycopg.connect(conninfo(5432), autocommit=True) as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]

            def archived() -> bool:
                last = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
                return last is not None and last[8:] >= segment[8:]

            wait_for(f"{segment} archived", archived)
        count = len(writer.acked)
        wait_for("200 commits after it", lambda: len(writer.acked) >= count + 200)
        wipe = "systemctl kill -s KILL patroni; systemctl stop patroni; rm -rf /var/lib/postgresql/15/billing"
        with concurrent.futures.ThreadPoolExecutor(len(MEMBERS)) as pool:
            list(pool.map(lambda member: sh(member, wipe), MEMBERS))
        lost_at = time.monotonic()
    finally:
        writer.stop.set()
        writer.join(30)
    _, _, took = restore()
    stored = stored_ids()
    acked, uncertain = set(writer.acked), set(writer.uncertain)
    lost = sorted(acked - set(stored))
    acked_at = dict(zip(writer.acked, writer.successes, strict=True))
    window = lost_at - min((acked_at[n] for n in lost), default=lost_at)
    print(
        f"\nevery data directory lost {time.monotonic() - lost_at:.1f} s before the cluster was back (restore "
        f"{took:.1f} s): {len(acked)} acknowledged, {len(stored)} stored; {len(lost)} acknowledged rows lost, all "
        f"written after the last archived WAL file, in the last {window:.1f} s before the loss (archive_timeout "
        f"{ARCHIVE_TIMEOUT} s)"
    )
    assert not archived_before - set(stored), f"{len(archived_before - set(stored))} archived rows lost"
    assert len(stored) == len(set(stored))
    assert set(stored) <= acked | uncertain
    assert window <= ARCHIVE_TIMEOUT + 5, f"rows acknowledged {window:.1f} s before the loss were not archived"
