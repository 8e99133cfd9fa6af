"""``sysg security`` of sandboxed services against ``systemd-analyze security`` of the units
``sysg export systemd`` writes for them (issue 12 §4, issue 13).

Real services run under sysg with the sandbox keys; the same manifest is exported and systemd
252 scores the exported units offline. Overall exposures agree within 1.0 and every item both
assess gets the same badness, except ``KNOWN`` (each with its reason). The locked-down
``examples/system-mode.yaml`` must score below 3.0, a bare root service above 9.0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.privileged.security_helpers import analyze_unit, badness, needs_systemd_analyze
from tests.privileged.system_helpers import need_port, remove_cgroup_dirs
from tests.support.runtime import Runtime, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = [needs_systemd_analyze, HOST_GLOBAL]  # port 80 and cgroups of the example
REPO = Path(__file__).resolve().parents[2]
SANDBOXED = """\
version: "2"
projects:
  box:
    services:
      bare:
        exec: ["/bin/sleep", "3600"]
        working_dir: /
      filtered:
        exec: ["/bin/sleep", "3600"]
        working_dir: /
        isolation:
          seccomp: ["~@mount", "~@reboot", "~@swap"]
          protect_system: full
          protect_home: read-only
      sealed:
        exec: ["/bin/sleep", "3600"]
        working_dir: /
        user: www-data
        capabilities: []
        limits:
          nproc: 64
          cgroup: {memory_max: 64M, pids_max: 32}
        isolation:
          network: true
          user: true
          private_tmp: true
          private_devices: true
          seccomp: ["@system-service", "~@privileged", "~@resources", "~personality"]
          address_families: [AF_UNIX]
          protect_system: strict
          protect_home: true
          read_only_paths: [/var]
          inaccessible_paths: [/etc/ssh, -/srv/none]
"""
KNOWN = {
    # systemg gives no service a private session keyring: it shares the supervisor's.
    "KeyringMode": "systemd's default is private",
    # sysg: the filter excludes every @clock call and no clock capability is kept, which is
    # what ProtectClock= does; the unit does not say ProtectClock=yes because systemd's also
    # adds /dev/rtc to a device ACL (changing DeviceAllow=), which sysg does not do.
    "ProtectClock": "the same effect through the exported SystemCallFilter=",
}


def _compare(ours: dict[str, Any], unit: Path) -> tuple[float, dict[str, tuple[Any, Any]]]:
    value, theirs = analyze_unit(unit)
    checks = {c["json_field"]: c for c in ours["checks"]}
    differ = {
        field: (checks[field]["badness"], badness(row))
        for field, row in theirs.items()
        if checks[field]["badness"] != badness(row)
    }
    return value, differ


def _run_and_export(rt: Runtime, manifest: Path, *sysg: str) -> tuple[dict[str, Any], Path]:
    rt.sysg(*sysg, "start", "-c", str(manifest), "--daemonize", check=True)

    def up() -> dict[str, Any] | None:
        proc = rt.sysg(*sysg, "status", "--format", "json")
        units = json.loads(proc.stdout)["units"] if proc.stdout.strip() else []
        return units if units and all(u["phase"] == "running" for u in units) else None

    for unit in wait_for(up, timeout=30, what="every service running"):
        rt.seen_pids.add(int(pid_of(unit)))
    doc = json.loads(rt.sysg(*sysg, "security", "--format", "json", check=True).stdout)
    out = rt.root / "units"
    exported = rt.sysg("export", "systemd", "-c", str(manifest), "-o", str(out))
    assert exported.returncode in (0, 3), exported.stderr  # 3: something had no equivalent
    return doc, out


def test_sandboxed_services_score_as_systemd_scores_their_exported_units(rt: Runtime) -> None:
    manifest = rt.write("box.yaml", SANDBOXED)
    scores = {}
    try:
        doc, units = _run_and_export(rt, manifest)
        for entry in doc["services"]:
            theirs, differ = _compare(entry, units / f"box-{entry['service']}.service")
            assert set(differ) <= set(KNOWN), (entry["service"], differ)
            assert abs(entry["exposure"] - theirs) <= 1.0, (entry, theirs)
            scores[entry["service"]] = entry["exposure"]
    finally:
        rt.sysg("stop", "--supervisor")
        remove_cgroup_dirs("box")
    assert scores["bare"] > 9.0
    assert scores["filtered"] < scores["bare"]
    assert scores["sealed"] < 3.0, scores


def test_the_locked_down_example_is_below_3(rt: Runtime) -> None:
    need_port(80)
    example = rt.write("system-mode.yaml", (REPO / "examples" / "system-mode.yaml").read_text())
    try:
        doc, units = _run_and_export(rt, example, "--sys")
        for entry in doc["services"]:
            theirs, differ = _compare(entry, units / f"site-{entry['service']}.service")
            assert set(differ) <= set(KNOWN), (entry["service"], differ)
            assert abs(entry["exposure"] - theirs) <= 1.0
            assert entry["exposure"] < 3.0, (entry["service"], entry["exposure"])
            assert entry["label"] == "OK"
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        remove_cgroup_dirs("site")
