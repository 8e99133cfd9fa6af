"""``sysg status --format json`` and ``sysg inspect --format json`` are the upstream's
``status.v1`` document, read the way the upstream's use-case scripts read it (their
``unit_field``: ``name``, ``project.id``, ``process.pid``, ``state``, ``health``, and
``last_exit.exit_code``), with the real CLI against a real supervisor."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import SYSG, Runtime, epoch, pid_alive, pid_of, units_by_name, wait_for


def _manifest(rt: Runtime, marker: str) -> str:
    return str(
        rt.write(
            "systemg.yaml",
            f"""version: "2"
projects:
  shop:
    name: Shop Front
    services:
      web:
        command: "exec sleep 1000.{marker}"
      migrate:
        command: "exit 0"
        restart_policy: never
      broken:
        command: "exit 3"
      maint:
        command: "exec sleep 1000.{marker}"
        skip: true
      nightly:
        exec: [/bin/sh, -c, "echo nightly"]
        cron: {{expression: "0 0 3 1 1 *", timezone: UTC}}
""",
        )
    )


def _json(rt: Runtime, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = rt.sysg(*args, "--format", "json")
    return proc.returncode, json.loads(proc.stdout)


def test_status_json_is_the_upstream_document(rt: Runtime) -> None:
    m = new_marker()
    config = _manifest(rt, m)
    started = rt.sysg("start", "--daemonize")
    assert started.returncode == 1, started.stderr  # broken did not come up
    code, doc = _json(rt, "status")
    assert code == 2  # overall failing: broken exited 3
    assert list(doc)[:4] == ["schema_version", "captured_at", "overall_health", "units"]
    assert (doc["schema_version"], doc["overall_health"]) == ("status.v1", "failing")
    assert abs(epoch(doc["captured_at"]) - time.time()) < 60
    units = units_by_name(doc)
    assert set(units) == {"web", "migrate", "broken", "maint", "nightly"}
    for unit in units.values():
        assert unit["project"] == {
            "id": "shop",
            "name": "Shop Front",
            "mode": "daemon",
            "config_path": config,
        }
    got = {n: (u["kind"], u["state"], u["intent"], u["health"]) for n, u in units.items()}
    assert got == {
        "web": ("service", "running", "unspecified", "healthy"),
        "migrate": ("service", "done", "once", "healthy"),
        "broken": ("service", "failed", "unspecified", "failing"),
        "maint": ("service", "skipped", "skip", "idle"),
        "nightly": ("cron", "queued", "cron", "idle"),
    }

    web = units["web"]
    pid = pid_of(web)
    assert pid is not None
    assert pid_alive(pid)
    assert [p.pid for p in with_marker(m)] == [pid]  # the one process status names
    assert web["process"]["state"] == "running"
    started_at = epoch(web["uptime"]["started_at"])
    assert web["uptime"]["started_at"].endswith("Z")
    assert started_at <= epoch(doc["captured_at"])
    assert time.time() - started_at < 60
    assert web["uptime"]["human"].endswith(" ago")
    assert "last_exit" not in web
    assert web["command"] == f"exec sleep 1000.{m}"
    assert (web["phase"], web["restarts"], web["enforcement"]) == ("running", 0, "full")

    assert units["migrate"]["last_exit"]["exit_code"] == 0
    assert units["broken"]["last_exit"]["exit_code"] == 3
    for name in ("migrate", "broken", "maint", "nightly"):
        assert "process" not in units[name], name
    assert units["nightly"]["cron"]["timezone_label"] == "UTC"

    # One unit: its own health decides the exit code.
    code, one = _json(rt, "status", "-s", "shop/web")
    assert (code, [u["name"] for u in one["units"]]) == (0, ["web"])
    assert one["overall_health"] == "healthy"
    rt.sysg("stop", "--supervisor", check=True)


def test_an_empty_selection_is_an_empty_units_list_and_exit_0(rt: Runtime) -> None:
    rt.write("systemg.yaml", 'version: "2"\nservices:\n  web:\n    command: "exec sleep 300"\n')
    rt.sysg("start", "--daemonize", check=True)
    # The upstream's --live and --no-color are accepted (ours is always read live).
    live = rt.sysg("status", "--live", "--no-color", "--format", "json", check=True)
    assert json.loads(live.stdout)["units"][0]["metrics"]["latest_rss_bytes"] > 0
    assert rt.sysg("inspect", "-s", "web", "--live", "--no-color").returncode == 0
    for selector in (("-s", "definitely_not_a_service"), ("-p", "ghost")):
        proc = rt.sysg("status", *selector, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert (doc["units"], doc["overall_health"]) == ([], "healthy")
        assert "No matching" not in proc.stdout
    # The table says so in the upstream's words.
    text = rt.sysg("status", "-s", "definitely_not_a_service")
    assert text.returncode == 0
    assert "No matching units found." in text.stdout
    rt.sysg("stop", "--supervisor", check=True)


def test_inspect_json_is_unit_and_samples_with_the_status_units_shape(rt: Runtime) -> None:
    m = new_marker()
    _manifest(rt, m)
    rt.sysg("start", "--daemonize")
    status_unit = units_by_name(rt.status())["web"]
    proc = rt.sysg("inspect", "-s", "web", "--format", "json")
    assert proc.returncode == 0, proc.stderr  # healthy
    doc = json.loads(proc.stdout)
    assert list(doc)[:2] == ["unit", "samples"]
    unit = doc["unit"]
    assert set(unit) == set(status_unit)  # the same object as a status unit
    assert (unit["name"], unit["project"]["id"], pid_of(unit)) == (
        "web",
        "shop",
        pid_of(status_unit),
    )
    assert unit["metrics"]["samples"] >= 2
    assert unit["metrics"]["latest_rss_bytes"] > 0
    assert doc["samples"], doc
    for sample in doc["samples"]:
        assert set(sample) == {"timestamp", "cpu_percent", "rss_bytes"}
        assert sample["timestamp"].endswith("Z")
    assert {"requested", "observed", "mismatch", "readiness"} <= set(doc)
    # Exit as upstream: the unit's health (failing: 2).
    broken = rt.sysg("inspect", "-s", "broken", "--format", "json")
    assert broken.returncode == 2, broken.stderr
    assert json.loads(broken.stdout)["unit"]["last_exit"]["exit_code"] == 3
    assert rt.sysg("inspect", "-s", "maint").returncode == 0  # idle
    rt.sysg("stop", "--supervisor", check=True)


def test_a_project_with_an_attached_start_is_foreground(rt: Runtime) -> None:
    m = new_marker()
    rt.write(
        "systemg.yaml",
        f'version: "2"\nprojects:\n  fg:\n    services:\n'
        f'      web:\n        command: "exec sleep 1000.{m}"\n',
    )
    attached = subprocess.Popen(
        [SYSG, "start"],
        cwd=rt.work,
        env=rt.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        web = wait_for(
            lambda: (u := _web_or_none(rt)) and pid_of(u) and u, timeout=20, what="web up"
        )
        assert web["project"]["mode"] == "foreground"
        attached.send_signal(signal.SIGINT)
        assert attached.wait(timeout=30) == 0
    finally:
        if attached.poll() is None:
            attached.kill()
            attached.wait()
    # Ctrl-C stopped and unloaded it (the terminal owned it).
    assert "web" not in units_by_name(rt.status())
    rt.write("systemg.yaml", (rt.work / "systemg.yaml").read_text())
    rt.sysg("start", "--daemonize", check=True)
    assert units_by_name(rt.status())["web"]["project"]["mode"] == "daemon"
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def _web_or_none(rt: Runtime) -> dict | None:  # type: ignore[type-arg]
    proc = rt.sysg("status", "--format", "json")
    if not proc.stdout.strip():
        return None
    return units_by_name(json.loads(proc.stdout)).get("web")
