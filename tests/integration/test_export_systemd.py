"""``sysg export systemd`` checked by systemd 252 itself: every exported unit of every example
and test manifest passes ``systemd-analyze verify`` with no warning, and what systemd parsed
(``systemd --test`` dump) is, key by key, what the manifest says.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from systemg.export.calendar import on_calendar
from systemg.export.project import export_project
from systemg.export.writer import write_units
from systemg.manifest.model import Isolation, Project, Service
from systemg.manifest.schedule import next_due, normalize
from tests.support import systemd
from tests.support.runtime import SYSG

pytestmark = pytest.mark.skipif(bool(systemd.available()), reason=systemd.available())

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(
    [
        *REPO.glob("examples/**/*.yaml"),
        *(REPO / "tests/data/good").glob("*.yaml"),
        REPO / "tests/data/export/every-key.yaml",
        REPO / "tests/data/export/dropped.yaml",
    ]
)
EVERY_KEY = REPO / "tests/data/export/every-key.yaml"


def export(manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSG, "export", "systemd", "-c", str(manifest), "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_exported_unit_verifies_without_a_warning(manifest: Path, tmp_path: Path) -> None:
    done = export(manifest, tmp_path)
    assert done.returncode in (0, 3), done.stderr
    assert sorted(p.suffix for p in tmp_path.iterdir()).count(".target") >= 1
    code, warnings = systemd.verify(tmp_path)
    assert code == 0
    assert warnings == []


@pytest.fixture(scope="module")
def every_key(tmp_path_factory: pytest.TempPathFactory) -> dict[str, systemd.Parsed]:
    out = tmp_path_factory.mktemp("every-key")
    done = export(EVERY_KEY, out)
    assert done.returncode == 0, done.stderr  # every key here has an equivalent
    return systemd.dump(out, "shop.target")


def test_identity_and_capabilities(every_key: dict[str, systemd.Parsed]) -> None:
    db = every_key["shop-db.service"]
    assert db.one("User") == "www-data"
    assert db.one("Group") == "www-data"
    assert db.one("SupplementaryGroups") == "adm 4"
    assert db.one("CapabilityBoundingSet") == "cap_chown cap_net_bind_service"
    assert db.one("AmbientCapabilities") == "cap_chown cap_net_bind_service"
    # a non-root service without capabilities: sysg empties every set
    assert every_key["shop-api.service"].one("CapabilityBoundingSet") == ""
    assert "AmbientCapabilities" not in every_key["shop-api.service"].props
    # a root service without the key keeps root's: nothing restricts the bounding set
    assert "CapabilityBoundingSet" not in every_key["shop-root.service"].props  # full set


def test_every_sandbox_key_from_yaml_as_systemd_parses_it(
    every_key: dict[str, systemd.Parsed],
) -> None:
    """The manifest's sandbox keys, parsed from YAML, exported, and read back from systemd."""
    root = every_key["shop-filtered.service"]
    allowed = set(root.one("SystemCallFilter").split())
    assert "read" in allowed
    assert "reboot" not in allowed  # ~@privileged
    assert "personality" not in allowed
    assert root.one("SystemCallErrorNumber") == "EACCES"
    assert root.one("SystemCallArchitectures") == "native"  # an allow list
    assert root.one("LockPersonality") == "yes"  # personality is filtered out
    assert root.one("ProtectSystem") == "strict"
    assert root.one("ProtectHome") == "tmpfs"
    assert root.one("ReadOnlyPaths") == "/srv"
    assert root.one("ReadWritePaths") == "/var/tmp"
    assert root.one("InaccessiblePaths") == "-/etc/ssl/private"
    assert root.one("AppArmorProfile") == "-sysg-test"
    assert root.one("SELinuxContext") == "-system_u:system_r:httpd_t:s0"


def test_limits_and_cgroup(every_key: dict[str, systemd.Parsed]) -> None:
    db = every_key["shop-db.service"]
    assert db.one("LimitNOFILE") == db.one("LimitNOFILESoft") == "65536"
    assert db.one("LimitNPROC") == db.one("LimitNPROCSoft") == "4096"
    assert db.one("LimitMEMLOCK") == db.one("LimitMEMLOCKSoft") == str(2**64 - 1)  # infinity
    assert db.one("Nice") == "5"
    assert db.one("CPUAffinity") == "0"
    assert db.one("MemoryMax") == str(512 * 1024 * 1024)
    assert db.one("CPUQuotaPerSecSec") == "3s"  # 150000 µs per 50000 µs = 3 CPUs
    assert db.one("CPUQuotaPeriodSec") == "50ms"
    assert db.one("TasksMax") == "64"


def test_namespaces(every_key: dict[str, systemd.Parsed]) -> None:
    db = every_key["shop-db.service"]
    for key in ("PrivateNetwork", "PrivateUsers", "PrivateTmp", "PrivateDevices"):
        assert db.one(key) == "yes", key
    api = every_key["shop-api.service"]
    for key in ("PrivateNetwork", "PrivateUsers", "PrivateTmp", "PrivateDevices"):
        assert api.one(key) == "no", key


def test_dependencies_notify_watchdog_and_commands(every_key: dict[str, systemd.Parsed]) -> None:
    api = every_key["shop-api.service"]
    assert {"shop-db.service (origin-file)", "shop-migrate.service (origin-file)"} <= set(
        api.props["Requires"]
    )
    assert "shop-db.service (origin-file)" in api.props["After"]
    assert api.one("Type") == "notify"
    assert api.one("NotifyAccess") == "all"
    assert api.one("WatchdogSec") == "30s"
    assert api.one("TimeoutStartSec") == "20s"
    assert api.one("Restart") == "on-failure"
    assert api.one("RestartSec") == "2s"
    assert api.one("WorkingDirectory") == "/tmp"
    # command: runs through sh -c with its text intact ($ and % are not systemd's)
    assert api.commands["ExecStart"] == [
        ["/bin/sh", "-c", 'echo "100% $HOME" \\ ; exec /bin/sleep 3600']
    ]
    env = ["/usr/bin/env", "SYSG_SERVICE_NAME=api", "SYSG_PROJECT=shop", "/bin/sh", "-c"]
    assert api.commands["ExecStartPre"] == [[*env, "test -d /tmp"]]
    assert api.commands["ExecStartPost"] == [[*env, "echo up"]]
    assert api.commands["ExecStopPost"][1] == [*env, "echo down"]
    assert 'echo "failed: $SYSG_EXIT_CODE"' in api.commands["ExecStopPost"][0][-1]
    assert api.commands["ExecCondition"][0][:5] == env
    assert set(api.props["Environment"]) >= {'GREETING=say "hi" 50%', "EMPTY="}
    assert api.one("UnsetEnvironment") == "AWS_SECRET_ACCESS_KEY"
    # condition: completed -> the dependency is a one-shot that stays done
    migrate = every_key["shop-migrate.service"]
    assert migrate.one("Type") == "oneshot"
    assert migrate.one("RemainAfterExit") == "yes"
    quiet = every_key["shop-quiet.service"]
    assert quiet.commands["ExecCondition"] == [["/bin/false"]]
    assert quiet.one("StandardOutput") == "null"


def test_socket_and_timers(every_key: dict[str, systemd.Parsed]) -> None:
    sock = every_key["shop-api.socket"]
    assert sock.props["ListenStream"] == [
        "127.0.0.1:18080",
        "[::1]:18081",
        "/run/shop-api.sock",
        "127.0.0.1:18082",
    ]
    assert sock.one("FileDescriptorName") == "api"
    assert sock.one("SocketMode") == "0660"
    assert sock.one("SocketUser") == "www-data"
    assert "shop-api.service (origin-implicit)" in sock.props["Triggers"]
    report = every_key["shop-report.timer"]
    assert report.props["OnCalendar"] == ["*-*-* 02:30:00 Europe/Berlin"]
    assert report.one("Persistent") == "yes"
    assert report.one("Accuracy") == "1s"
    assert every_key["shop-tick.timer"].props["OnCalendar"] == [
        "Mon..Fri *-*-* 09..17:00,20,40:00 UTC"
    ]
    # cron's either-day rule: two expressions
    assert sorted(every_key["shop-monthly.timer"].props["OnCalendar"]) == [
        "*-*-01,15 00:00:00",
        "Fri *-*-* 00:00:00",
    ]
    assert every_key["shop-report.service"].one("Type") == "oneshot"
    target_wants = set(every_key["shop.target"].props["Wants"])
    assert "shop-report.timer (origin-file)" in target_wants
    assert not any("shop-report.service" in w for w in target_wants)  # the timer starts it


def test_sandbox_keys(tmp_path: Path) -> None:
    """The sandbox keys of the model (the parser takes them once their validation lands)."""
    box = Service(
        name="box",
        argv=("/bin/sleep", "3600"),
        user="www-data",
        isolation=Isolation(
            seccomp=("@system-service", "~@privileged", "~@resources"),
            seccomp_errno="EACCES",
            address_families=("AF_UNIX", "AF_INET", "AF_INET6"),
            protect_system="strict",
            protect_home="read-only",
            read_only_paths=("/srv", "-/srv/missing"),
            read_write_paths=("/var/lib",),
            inaccessible_paths=("-/etc/ssl/private",),
            apparmor_profile="-my-profile",
            selinux_context="-system_u:system_r:httpd_t:s0",
        ),
    )
    deny = Service(
        name="deny",
        argv=("/bin/sleep", "3600"),
        isolation=Isolation(
            seccomp=("baseline-v1",),
            seccomp_action="kill",
            address_families=("AF_PACKET",),
            address_families_deny=True,
            protect_system="true",
            protect_home="true",
        ),
    )
    exported = export_project(Project("sb", "sandbox", (box, deny), "/m.yaml"))
    assert exported.dropped == ()
    write_units(tmp_path, exported.units)
    code, warnings = systemd.verify(tmp_path)
    assert (code, warnings) == (0, [])
    parsed = systemd.dump(tmp_path, "sb.target")
    b = parsed["sb-box.service"]
    assert b.one("ProtectSystem") == "strict"
    assert b.one("ProtectHome") == "read-only"
    assert b.one("ReadOnlyPaths") == "/srv -/srv/missing"
    assert b.one("ReadWritePaths") == "/var/lib"
    assert b.one("InaccessiblePaths") == "-/etc/ssl/private"
    assert b.one("AppArmorProfile") == "-my-profile"
    assert b.one("SELinuxContext") == "-system_u:system_r:httpd_t:s0"
    assert b.one("SystemCallErrorNumber") == "EACCES"
    allowed = set(b.one("SystemCallFilter").split())
    assert "read" in allowed
    assert "reboot" not in allowed  # @privileged
    assert "setrlimit" not in allowed  # @resources
    d = parsed["sb-deny.service"]
    assert d.one("ProtectSystem") == "yes"
    assert d.one("ProtectHome") == "yes"
    assert d.one("SystemCallErrorNumber") == "kill"
    assert "reboot" not in set(d.one("SystemCallFilter").split())
    text = {u.name: u.text for u in exported.units}
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n" in text["sb-box.service"]
    assert "RestrictAddressFamilies=~AF_PACKET\n" in text["sb-deny.service"]
    assert "NoNewPrivileges=yes\n" in text["sb-box.service"]  # implied by the filter
    assert "NoNewPrivileges" not in text["sb-deny.service"]  # root keeps CAP_SYS_ADMIN


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 30 2 * * *", "Europe/Berlin"),
        ("*/20 9-17 * * MON-FRI", "UTC"),
        ("0 0 1,15 * 5", "UTC"),
        ("15 */10 * * * *", "UTC"),
        ("0 0 12 L * *", "America/New_York"),
        ("0 0 12 * * 5L", "UTC"),
        ("0 0 6 * * MON#2", "Asia/Tokyo"),
        ("0 0 12 LW * *", "UTC"),
        ("0 0 0 */2 * MON", "UTC"),
        ("0 5 4 * JAN-MAR,DEC SUN", "Europe/Berlin"),
    ],
)
def test_on_calendar_elapses_when_cron_is_due(expression: str, zone: str) -> None:
    """``systemd-analyze calendar`` from a fixed base: the union of the exported expressions
    elapses exactly at sysg's next due times."""
    spec = normalize(expression)
    base = datetime(2027, 1, 10, 12, 0, 7, tzinfo=UTC)
    count = 12
    expected: list[datetime] = []
    moment = base
    for _ in range(count):
        moment = next_due(spec, zone, moment)
        expected.append(moment)
    found: set[datetime] = set()
    for text in on_calendar(spec, zone):
        found.update(systemd.calendar(text, base, count))
    assert sorted(found)[:count] == expected


def test_a_local_time_zone_adds_no_suffix() -> None:
    assert on_calendar("0 0 3 * * *", "local") == ("*-*-* 03:00:00",)
    base = datetime(2027, 1, 10, tzinfo=UTC)
    got = systemd.calendar("*-*-* 03:00:00", base, 1)
    assert got[0] - base < timedelta(days=1)


def test_a_wall_time_skipped_by_spring_forward_is_where_they_differ() -> None:
    """docs/export.md: sysg runs a 02:30 job at 03:00 on the day 02:30 does not exist (as
    Debian's cron); systemd skips that day. The fall-back day is the same (first pass)."""
    (text,) = on_calendar("0 30 2 * * *", "Europe/Berlin")
    spring = datetime(2027, 3, 27, 12, tzinfo=UTC)
    assert systemd.calendar(text, spring, 1) == [datetime(2027, 3, 29, 0, 30, tzinfo=UTC)]
    assert next_due("0 30 2 * * *", "Europe/Berlin", spring).astimezone(UTC) == datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
    autumn = datetime(2027, 10, 30, 12, tzinfo=UTC)
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert systemd.calendar(text, autumn, 1) == [first]
    assert next_due("0 30 2 * * *", "Europe/Berlin", autumn).astimezone(UTC) == first


def test_systemd_security_offline_rates_what_the_manifest_locks_down(tmp_path: Path) -> None:
    """The exported units are what ``systemd-analyze security --offline=yes`` can score (the
    anchor of sandbox.md §4): from a bare root service to a locked-down one, exposure falls."""
    done = export(EVERY_KEY, tmp_path)
    assert done.returncode == 0, done.stderr
    bare = systemd.exposure(tmp_path / "shop-root.service")
    confined = systemd.exposure(tmp_path / "shop-db.service")
    assert bare >= 9.0  # root, every capability, no namespace
    assert confined < bare - 3.0
