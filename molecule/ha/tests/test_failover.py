"""The database cluster of playbooks/db_cluster.yml under failure: a writer on the controller commits one row per
transaction through the balancers' floating address (keepalived; HAProxy routing to the Patroni leader) and counts
every acknowledged commit; the drills kill the leader's postmaster, kill the leader's host, kill the balancer that
holds the address, switch over, restart every member, and replace a lost replica. After each, every acknowledged
row is on the leader (none lost), none is there twice, and the write outage (first failed to first successful commit)
and the time to a new leader are printed."""

from __future__ import annotations

import json
import subprocess
import time

import psycopg
from hadrill import (
    BALANCERS,
    ENGINE,
    MEMBERS,
    OUTAGE_LIMIT,
    Writer,
    conninfo,
    healthy_cluster,
    leader,
    new_table,
    power_off,
    power_on,
    stored_ids,
    vip,
    wait_for,
)
from labrun import changed_total, playbook, sh


def drill(kill, new_leader: bool) -> None:
    """Write, break the leader with kill(leader_name), write on until 200 commits after it, then compare."""
    new_table()
    writer = Writer()
    writer.start()
    try:
        wait_for("200 commits before the drill", lambda: len(writer.acked) >= 200)
        old = leader(MEMBERS[0])
        broke_at = time.monotonic()
        kill(old)
        took = "not asked"
        if new_leader:
            survivor = next(m for m in MEMBERS if m != old)
            wait_for("a new leader", lambda: leader(survivor) != old)
            took = f"{time.monotonic() - broke_at:.1f} s"
        wait_for("200 commits after the drill", lambda: writer.acked_after(broke_at) >= 200)
    finally:
        writer.stop.set()
        writer.join(30)
    stored = stored_ids()
    acked, uncertain = set(writer.acked), set(writer.uncertain)
    lost = sorted(acked - set(stored))
    outage = writer.outage(broke_at)
    print(
        f"\ndrill on leader {old}: {len(acked)} acknowledged, {len(stored)} stored, {len(uncertain)} uncertain "
        f"(failed at commit), {len(writer.failures)} failed attempts; write outage {outage:.1f} s, a new leader "
        f"after {took}; "
        f"first errors: {[e for _, e in writer.failures[:2]]}"
    )
    assert lost == [], f"{len(lost)} acknowledged rows lost, e.g. {lost[:5]}"
    assert len(stored) == len(set(stored))
    assert set(stored) <= acked | uncertain, f"rows nobody wrote: {sorted(set(stored) - acked - uncertain)[:5]}"
    assert outage <= OUTAGE_LIMIT, f"write outage {outage:.1f} s > {OUTAGE_LIMIT:.0f} s"


def test_cluster_has_a_leader_and_a_synchronous_standby():
    c = wait_for("a healthy cluster of three", lambda: healthy_cluster(MEMBERS[0], 3))
    roles = sorted(m["role"] for m in c["members"])
    assert roles == ["leader", "replica", "sync_standby"], roles
    config = json.loads(sh(MEMBERS[0], "curl -s http://127.0.0.1:8008/config"))
    assert config["synchronous_mode"] is True and config["synchronous_mode_strict"] is True, config


def test_etcd_refuses_a_client_without_a_certificate():
    member = MEMBERS[0]
    tls = "--cacert /etc/etcd/tls/ca.crt"
    assert '"health":"true"' in sh(member, f"curl -s {tls} --cert /etc/etcd/tls/member.crt --key /etc/etcd/tls/member.key https://127.0.0.1:2379/health")
    refused = subprocess.run([ENGINE, "exec", member, "sh", "-c", f"curl -sS {tls} https://127.0.0.1:2379/health"], capture_output=True, text=True)
    assert refused.returncode != 0 or '"health":"true"' not in refused.stdout, refused.stdout


def test_reads_go_to_a_replica_and_writes_to_the_leader():
    with psycopg.connect(conninfo(5433), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    with psycopg.connect(conninfo(5432), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_patroni_api_refuses_an_unauthenticated_change():
    code = sh(MEMBERS[0], "curl -s -o /dev/null -w '%{http_code}' -X PATCH -d '{\"ttl\": 99}' http://127.0.0.1:8008/config")
    assert code == "401", code


def test_kill_9_of_the_leaders_postmaster_loses_no_acknowledged_commit():
    def kill(name: str) -> None:
        sh(name, "kill -9 $(head -1 /var/lib/postgresql/15/billing/postmaster.pid)")

    drill(kill, new_leader=False)


def test_losing_the_leaders_host_loses_no_acknowledged_commit():
    """The leader's container is killed (power off); the synchronous standby takes over. Then it is started again
    and rejoins as a replica (pg_rewind)."""
    stopped: dict[str, str] = {}

    def kill(name: str) -> None:
        stopped[name] = power_off(name)

    try:
        drill(kill, new_leader=True)
    finally:
        for name, kept in stopped.items():
            power_on(name, kept)
    survivor = next(m for m in MEMBERS if m not in stopped)
    started = time.monotonic()
    wait_for("the old leader back as a replica", lambda: healthy_cluster(survivor, 3), deadline_s=120)
    print(f"old leader {next(iter(stopped))} rejoined in {time.monotonic() - started:.1f} s")


def holder() -> str | None:
    """The balancer that has the floating address on its interface (of those running)."""
    floating = vip()
    held = [b for b in BALANCERS if f"inet {floating}/" in sh(b, "ip -o -4 addr show", check=False)]
    assert len(held) <= 1, f"the floating address is on {held}"
    return held[0] if held else None


def test_losing_the_balancer_with_the_address_loses_no_acknowledged_commit():
    """The balancer holding the floating address is killed; the other takes the address over. Then it is started
    again and does not take the address back (nopreempt: that would cut every session a second time)."""
    first = wait_for("a balancer holding the floating address", holder)
    stopped: dict[str, str] = {}
    survivor = None
    try:
        drill(lambda _leader: stopped.update({first: power_off(first)}), new_leader=False)
        survivor = holder()
        assert survivor not in (None, first)
    finally:
        for name, kept in stopped.items():
            power_on(name, kept)
    wait_for(f"{first} back with HAProxy and keepalived", lambda: sh(first, "systemctl is-active haproxy keepalived") == "active\nactive")
    assert holder() == survivor


def test_planned_switchover_loses_no_acknowledged_commit():
    """playbooks/db_switchover.yml under the writer: the synchronous standby becomes the leader. The writer's
    connection to the old leader is cut at the switch, so its next commit fails once and is retried: the outage is
    printed (a service retrying within its deadline would hide it)."""
    rc, out, _ = playbook("db_switchover.yml", "-e", "switchover_candidate=tbh-lb1")
    assert rc != 0 and "is not a running replica" in out, out[-2000:]

    def switch(_old: str) -> None:
        rc, out, _ = playbook("db_switchover.yml")
        assert rc == 0, out[-3000:]

    drill(switch, new_leader=True)


def test_rolling_restart_of_every_member_loses_no_acknowledged_commit():
    """playbooks/db_upgrade.yml -e patroni_upgrade_restart=true under the writer (the lab's apt sources have nothing
    newer than the image, so the drill takes the upgrade's restart path on its own): the replicas restart one at a
    time, then the leader after a switchover to the synchronous standby; every member runs a new postmaster. A rerun
    with nothing to upgrade changes and restarts nothing."""
    postmaster = "head -1 /var/lib/postgresql/15/billing/postmaster.pid"
    before = {m: sh(m, postmaster) for m in MEMBERS}

    def upgrade(_old: str) -> None:
        rc, out, _ = playbook("db_upgrade.yml", "-e", "patroni_upgrade_restart=true")
        assert rc == 0, out[-3000:]

    drill(upgrade, new_leader=True)
    after = {m: sh(m, postmaster) for m in MEMBERS}
    assert all(after[m] != before[m] for m in MEMBERS), (before, after)
    rc, out, _ = playbook("db_upgrade.yml")
    assert rc == 0 and changed_total(out) == 0, out[-3000:]
    assert {m: sh(m, postmaster) for m in MEMBERS} == after


ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --cacert /etc/etcd/tls/ca.crt --cert /etc/etcd/tls/member.crt --key /etc/etcd/tls/member.key "
    "--endpoints https://127.0.0.1:2379"
)


def etcd_members(via: str) -> dict[str, int]:
    """Started etcd members, name -> id."""
    return {m["name"]: m["ID"] for m in json.loads(sh(via, f"{ETCDCTL} member list -w json"))["members"] if m.get("name")}


def rows_on(member: str) -> int:
    return int(sh(member, "runuser -u postgres -- psql -Atc 'SELECT count(*) FROM drill'"))


def test_replacing_a_lost_replica_loses_no_acknowledged_commit():
    """A replica's machine lost (Patroni and etcd stopped, both data directories gone) and replaced by
    playbooks/db_replace_member.yml under the writer: a new etcd member joins in place of the old one, Patroni clones
    the leader, the cluster is whole again and nothing acknowledged is lost; the replaced host then converges with 0
    changed. A name that is not a member, and the leader, are refused before anything changes."""
    c = wait_for("a healthy cluster of three", lambda: healthy_cluster(MEMBERS[0], 3))
    lead = next(m["name"] for m in c["members"] if m["role"] == "leader")
    rc, out, _ = playbook("db_replace_member.yml", "-e", "db_member=tbh-lb1")
    assert rc != 0 and "names the member to replace, one of: tbh-db1, tbh-db2, tbh-db3" in out, out[-2000:]
    rc, out, _ = playbook("db_replace_member.yml", "-e", f"db_member={lead}")
    assert rc != 0 and f"{lead} can be replaced only while another member leads (leader now: {lead})" in out, out[-2000:]
    assert "(the fleet lock is released)" in out and sh(lead, "systemctl is-active patroni etcd") == "active\nactive"
    # the asynchronous replica when there is one: losing it costs the writer nothing
    replica = min((m for m in c["members"] if m["role"] != "leader"), key=lambda m: m["role"] == "sync_standby")["name"]
    before = etcd_members(lead)
    took = {}

    def lose_and_replace(_leader: str) -> None:
        sh(replica, "systemctl stop patroni etcd && rm -rf /var/lib/postgresql/15/billing /var/lib/etcd/billing")
        rc, out, took["replace"] = playbook("db_replace_member.yml", "-e", f"db_member={replica}")
        assert rc == 0, out[-3000:]

    drill(lose_and_replace, new_leader=False)
    print(f"{replica} replaced in {took['replace']:.1f} s")
    wait_for("a healthy cluster of three", lambda: healthy_cluster(lead, 3))
    after = etcd_members(lead)
    assert set(after) == set(MEMBERS) and after[replica] != before[replica], (before, after)
    assert sh(replica, f"{ETCDCTL} endpoint health --cluster 2>&1").count("is healthy") == 3
    wait_for(f"{replica} holding every stored row", lambda: rows_on(replica) == len(stored_ids()))
    joined = sh(replica, "ls /run/systemd/system/etcd.service.d/join.conf /run/etcd-join.env 2>&1 || true")
    assert joined.count("No such file") == 2, joined
    assert "ETCD_INITIAL_CLUSTER_STATE=new" in sh(replica, "cat /etc/default/etcd")
    assert "join.conf" not in sh(replica, "systemctl show -p DropInPaths --value etcd")
    rc, out, _ = playbook("db_cluster.yml", "--limit", replica)
    assert rc == 0 and changed_total(out) == 0, out[-3000:]
