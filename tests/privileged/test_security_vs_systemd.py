"""``sysg security`` against ``systemd-analyze security --offline=yes`` (docs/security.md §11).

Five real services, from bare root to as locked down as today's keys allow, each beside a unit
file written by hand with the equivalent systemd settings. systemd 252's per-item badness is
read from its JSON (``SYSTEMD_ANALYZE_DEBUG=1`` adds weight, badness and range): the overall
exposures must agree within 1.0 and every item both assess must get the same badness, except
the few differences listed in ``KNOWN`` with the reason.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.privileged.security_helpers import differences, needs_systemd_analyze, systemd_analyze
from tests.support.runtime import Runtime, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = [needs_systemd_analyze, HOST_GLOBAL]  # cgroup limits of the locked service

SLEEP = '["/bin/sleep", "3600"]'
LOCKED_KEYS = """\
        isolation:
          network: true
          mount: true
          pid: true
          user: true
          private_tmp: true
          private_devices: true
          no_new_privileges: true
"""
# name -> (systemg service body, the equivalent [Service] settings)
CONFIGS: dict[str, tuple[str, str]] = {
    "bare": ("", ""),
    # systemg empties the bounding set of a non-root service that lists no capabilities
    "user": ("        user: www-data\n", "User=www-data\nCapabilityBoundingSet=\n"),
    "bind": (
        "        user: www-data\n        capabilities: [CAP_NET_BIND_SERVICE]\n"
        "        isolation:\n          no_new_privileges: true\n          private_tmp: true\n",
        "User=www-data\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\nNoNewPrivileges=yes\nPrivateTmp=yes\n"
        # private_tmp is a mount namespace of its own; systemd's offline view does not infer it
        "PrivateMounts=yes\n",
    ),
    "boxed_root": (
        "        isolation:\n          network: true\n          mount: true\n"
        "          user: true\n",
        "PrivateNetwork=yes\nPrivateMounts=yes\nPrivateUsers=yes\n",
    ),
    "locked": (
        "        user: www-data\n        capabilities: []\n"
        "        limits:\n          nproc: 64\n          cgroup:\n            memory_max: 64M\n"
        '            pids_max: 32\n            cpu_max: "50000 100000"\n' + LOCKED_KEYS,
        "User=www-data\nCapabilityBoundingSet=\nNoNewPrivileges=yes\nPrivateNetwork=yes\n"
        "PrivateMounts=yes\nPrivateUsers=yes\nPrivateTmp=yes\nPrivateDevices=yes\n"
        "MemoryMax=64M\nTasksMax=32\nCPUQuota=50%\nLimitNPROC=64\n"
        # isolation.pid's private /proc is mounted hidepid=invisible
        "ProtectProc=invisible\n",
    ),
}
KNOWN = {
    # systemg gives no service a private session keyring: it shares the supervisor's.
    "KeyringMode": "systemd's default is private",
}


def _manifest() -> str:
    body = "".join(
        f"      {name}:\n        exec: {SLEEP}\n        working_dir: /\n{keys}"
        for name, (keys, _) in CONFIGS.items()
    )
    return f'version: "2"\nprojects:\n  sec:\n    services:\n{body}'


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rt = Runtime()
    try:
        manifest = rt.write("sec.yaml", _manifest())
        rt.sysg("start", "-c", str(manifest), "--daemonize", check=True)
        wait_for(lambda: all(u["phase"] == "running" and pid_of(u) for u in rt.status()["units"]),
                 timeout=20, what="all services running")  # fmt: skip
        proc = rt.sysg("security", "--format", "json", check=True)
        yield rt, json.loads(proc.stdout), tmp_path_factory.mktemp("units")
    finally:
        rt.close()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_items_and_score_as_systemd(report: Any, name: str) -> None:
    _, doc, unit_dir = report
    ours = next(s for s in doc["services"] if s["service"] == name)
    theirs_value, theirs = systemd_analyze(unit_dir, name, CONFIGS[name][1])
    differ = differences(ours, theirs)
    assert set(differ) == set(KNOWN), (name, differ)
    assert abs(ours["exposure"] - theirs_value) <= 1.0, (name, ours["exposure"], theirs_value)
    print(f"{name}: sysg {ours['exposure']} {ours['label']}, systemd {theirs_value}")


def test_bare_root_is_above_9_and_threshold_sets_the_exit(report: Any) -> None:
    rt, doc, _ = report
    bare = next(s for s in doc["services"] if s["service"] == "bare")
    assert bare["exposure"] > 9.0
    assert bare["label"] == "UNSAFE"
    assert rt.sysg("security", "--threshold", "9.0").returncode == 1
    assert rt.sysg("security", "--threshold", "10").returncode == 0
    assert rt.sysg("security", "-s", "locked", "--threshold", "9").returncode == 0
    locked = rt.sysg("security", "-s", "sec/locked", "--format", "json", "--threshold", "1")
    assert locked.returncode == 1
    only = json.loads(locked.stdout)
    assert [s["service"] for s in only["services"]] == ["locked"]
    assert only["services"][0]["above_threshold"] is True
    assert rt.sysg("security", "--threshold", "11").returncode == 2  # usage error


def test_json_document_names_each_field(report: Any) -> None:
    _, doc, _ = report
    assert doc["schema_version"] == "security.v1"
    assert doc["supervisor_pid"] > 0
    entry = doc["services"][0]
    assert set(entry) == {
        "project", "service", "pid", "exposure", "exposure_text", "label", "above_threshold",
        "checks",
    }  # fmt: skip
    assert set(entry["checks"][0]) == {
        "set", "name", "json_field", "description", "weight", "badness", "range", "exposure",
        "basis", "systemd",
    }  # fmt: skip


def test_text_report_is_a_table_with_the_overall_line(report: Any) -> None:
    rt, _, _ = report
    text = rt.sysg("security", "-s", "bare", check=True).stdout
    assert "✗ PrivateNetwork=" in text
    assert "✓ AmbientCapabilities=" in text
    assert text.rstrip().endswith("UNSAFE")
    assert "→ Overall exposure level for sec/bare: " in text


def test_config_selects_its_projects_and_unknown_service_fails(report: Any) -> None:
    rt, doc, _ = report
    by_config = rt.sysg("security", "-c", str(rt.work / "sec.yaml"), "--format", "json")
    assert by_config.returncode == 0, by_config.stderr
    names = {s["service"] for s in json.loads(by_config.stdout)["services"]}
    assert names == set(CONFIGS) == {s["service"] for s in doc["services"]}
    missing = rt.sysg("security", "-s", "nope")
    assert missing.returncode == 1
    assert "SG0202" in missing.stderr
