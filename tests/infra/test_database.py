"""Database host: PostgreSQL from Debian, reachable by the billing role only with a password."""

from labhosts import hosts_of

testinfra_hosts = hosts_of("db")


def test_postgresql_running_and_listening(host):
    service = host.service("postgresql@15-main")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_billing_database_owned_by_billing_role(host):
    owner = host.check_output(
        "runuser -u postgres -- psql -tAc \"select pg_get_userbyid(datdba) from pg_database where datname='billing'\""
    )
    assert owner == "billing"


def test_remote_access_needs_scram_password(host):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf")
    assert hba.mode == 0o640
    assert "billing    +billing    samenet    scram-sha-256" in hba.content_string
    assert " trust" not in hba.content_string


def test_apps_log_in_as_one_of_two_roles_acting_as_the_owner(host):
    rows = host.check_output(
        "runuser -u postgres -- psql -tAc \"select rolname, rolcanlogin from pg_roles where rolname like 'billing%' order by 1\""
    ).splitlines()
    assert rows == ["billing|f", "billing_blue|t", "billing_green|t"]
    settings = host.check_output(
        "runuser -u postgres -- psql -tAc \"select r.rolname, s.setconfig from pg_db_role_setting s "
        "join pg_roles r on r.oid = s.setrole where r.rolname like 'billing_%' order by 1\""
    ).splitlines()
    assert settings == ["billing_blue|{role=billing}", "billing_green|{role=billing}"]


def psql_ro(host, sql: str):
    return host.run(
        "PGPASSWORD=lab-reporting-ro-password psql -h 127.0.0.1 -U reporting_ro -d billing -tAc %s", sql
    )


def test_reporting_role_has_exactly_select_on_what_the_report_reads(host):
    grants = host.check_output(
        "runuser -u postgres -- psql -d billing -tAc \"select table_name || ':' || privilege_type "
        "from information_schema.role_table_grants where grantee = 'reporting_ro' order by 1\""
    ).splitlines()
    assert grants == ["prices:SELECT", "usage_daily_all:SELECT"]
    assert psql_ro(host, "select count(*) from usage_daily_all").rc == 0
    for sql in ("insert into prices select * from prices limit 1", "delete from usage_daily",
                "select count(*) from usage_daily", "select count(*) from api_keys"):
        result = psql_ro(host, sql)
        assert result.rc != 0 and "permission denied" in result.stderr, sql
