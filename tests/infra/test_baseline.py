"""Every host: systemd healthy, baseline packages and settings in place."""

from labhosts import hosts_of

testinfra_hosts = hosts_of("all")


def test_systemd_is_pid1_and_running(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_baseline_packages(host):
    for name in ("ca-certificates", "curl", "tzdata", "bzip2"):
        assert host.package(name).is_installed, name


def test_apt_recommends_off(host):
    conf = host.file("/etc/apt/apt.conf.d/90-no-recommends")
    assert conf.mode == 0o644
    assert 'APT::Install-Recommends "false";' in conf.content_string


def test_journald_capped(host):
    conf = host.file("/etc/systemd/journald.conf.d/10-size.conf")
    assert "SystemMaxUse=200M" in conf.content_string
    assert conf.content_string.startswith("#")
