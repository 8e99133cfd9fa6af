"""Dependency crash cascade and recovery, and ``sysg restart`` reconciling an edited
manifest, with real processes."""

from __future__ import annotations

import os
import signal

from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, pid_alive, pid_of, started_at, wait_for


def pids(rt: Runtime) -> dict[str, int | None]:
    return {u["name"]: pid_of(u) for u in rt.status()["units"]}


def test_dependency_crash_cascade_and_recovery(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  casc:
    services:
      db:
        command: "exec sleep 1000.{m}"
        restart_policy: always
        backoff: 300ms
      api:
        command: "exec sleep 1000.{m}"
        depends_on: [db]
      front:
        command: "exec sleep 1000.{m}"
        depends_on: [api]
      other:
        command: "exec sleep 1000.{m}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    before = pids(rt)
    assert all(before.values())
    os.kill(before["db"], signal.SIGKILL)
    # The dependents are stopped (their processes die), not left talking to a dead db.
    wait_for(lambda: not pid_alive(before["api"]), timeout=10, what="api stopped")
    wait_for(lambda: not pid_alive(before["front"]), timeout=10, what="front stopped")
    # ... and come back once db is running again, with new pids.
    for name in ("db", "api", "front"):
        rt.wait_state(name, "running")

    def all_back() -> dict[str, int | None] | None:
        now = pids(rt)
        states = {u["name"]: u["phase"] for u in rt.status()["units"]}
        ok = all(states[n] == "running" for n in now) and all(
            now[n] != before[n] for n in ("db", "api", "front")
        )
        return now if ok else None

    after = wait_for(all_back, timeout=15, what="db, api, front back with new pids")
    assert after["other"] == before["other"]  # unrelated: untouched
    units = {u["name"]: u for u in rt.status()["units"]}
    assert units["db"]["restarts"] == 1
    assert units["db"]["last_exit"]["signal"] == 9
    # A dependency stop is not a crash of the dependent.
    assert units["api"]["restarts"] == 0
    # Order on the way back: db up (250 ms) before api, api before front.
    assert started_at(units["api"]) >= started_at(units["db"]) + 0.25
    assert started_at(units["front"]) >= started_at(units["api"]) + 0.25
    journal = (rt.logs / "supervisor.log").read_text()
    assert "stopping because its dependency 'db' went down" in journal
    assert len(with_marker(m)) == 4
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_dependent_that_is_slow_to_stop_still_comes_back(rt: Runtime) -> None:
    """The dependency is back before its dependent finished stopping: the dependent must
    still be started again once it is down."""
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  slow:
    services:
      db:
        command: "exec sleep 1000.{m}"
        restart_policy: always
        backoff: 0
      api:
        command: "trap '' TERM; exec sleep 1000.{m}"
        depends_on: [db]
        stop_timeout: 1500ms
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    before = pids(rt)
    os.kill(before["db"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(before["api"]), timeout=10, what="api killed")
    unit = wait_for(
        lambda: (u := rt.unit("api"))["phase"] == "running" and pid_of(u) != before["api"] and u,
        timeout=10,
        what="api restarted after db came back",
    )
    assert pid_alive(pid_of(unit))
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


MANIFEST_V1 = """version: "2"
projects:
  rec:
    services:
      keep:
        command: "exec sleep 1000.{m}1"
      edit:
        command: "exec sleep 1000.{m}2"
      child:
        command: "exec sleep 1000.{m}3"
        depends_on: [edit]
      gone:
        command: "exec sleep 1000.{m}4"
"""

MANIFEST_V2 = """version: "2"
projects:
  rec:
    services:
      keep:
        command: "exec sleep 1000.{m}1"
      edit:
        command: "exec sleep 1001.{m}2"
      child:
        command: "exec sleep 1000.{m}3"
        depends_on: [edit]
      fresh:
        command: "exec sleep 1000.{m}5"
"""


def test_restart_reconciles_an_edited_manifest(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write("sysg.yaml", MANIFEST_V1.format(m=m))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    before = pids(rt)
    assert set(before) == {"keep", "edit", "child", "gone"}

    # An invalid manifest changes nothing.
    rt.write("sysg.yaml", MANIFEST_V2.format(m=m).replace("depends_on: [edit]", "depends_on: [x]"))
    bad = rt.sysg("restart")
    assert bad.returncode != 0
    assert "SG0301" in bad.stderr
    assert pids(rt) == before
    assert {u["phase"] for u in rt.status()["units"]} == {"running"}
    rt.write("sysg.yaml", "version: '2'\nprojects: [not, a, mapping\n")
    bad = rt.sysg("restart")
    assert bad.returncode != 0
    assert "SG0301" in bad.stderr
    assert pids(rt) == before

    rt.write("sysg.yaml", MANIFEST_V2.format(m=m))
    rt.sysg("restart", check=True)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert set(units) == {"keep", "edit", "child", "fresh"}  # gone is gone from status
    assert {u["phase"] for u in units.values()} == {"running"}
    assert pid_of(units["keep"]) == before["keep"]  # unchanged: same process
    assert pid_of(units["edit"]) != before["edit"]  # changed: restarted
    assert "1001." in units["edit"]["command"]
    assert pid_of(units["child"]) != before["child"]  # dependent of a changed service
    assert not pid_alive(before["gone"])
    assert not pid_alive(before["edit"])
    assert not with_marker(f"1000.{m}4")  # removed: stopped
    assert len(with_marker(f"1000.{m}5")) == 1  # added: started
    assert len(with_marker(f"1001.{m}2")) == 1
    assert not with_marker(f"1000.{m}2")
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_restart_one_service_restarts_its_dependents_only(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  rs:
    services:
      db:
        command: "exec sleep 1000.{m}"
      api:
        command: "exec sleep 1000.{m}"
        depends_on: [db]
      other:
        command: "exec sleep 1000.{m}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    before = pids(rt)
    rt.sysg("restart", "-s", "db", check=True)
    after = pids(rt)
    assert after["db"] != before["db"]
    assert after["api"] != before["api"]
    assert after["other"] == before["other"]
    assert {u["phase"] for u in rt.status()["units"]} == {"running"}
    assert len(with_marker(m)) == 3
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_restart_of_one_service_answers_for_it_not_for_a_failed_sibling(rt: Runtime) -> None:
    # A sibling that cannot start must not turn `restart -s web` into a failure (it was
    # "Service 'web' not restarted", exit 1, with the sibling's error, though web restarted).
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  rs:
    services:
      web:
        command: "exec sleep 1000.{m}"
      broken:
        exec: ["/nonexistent/{m}"]
        restart_policy: never
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    before = pids(rt)
    done = rt.sysg("restart", "-s", "web")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Service 'web' restarted" in done.stdout
    assert "nonexistent" not in done.stderr
    assert "SG0302" not in done.stderr
    assert pids(rt)["web"] != before["web"]
    failed = rt.sysg("restart", "-s", "broken")
    assert failed.returncode != 0
    assert "nonexistent" in failed.stderr
    # The summary code names only what did not come up (the upstream's SG0302).
    assert "error[SG0302]: restart incomplete: rs/broken did not come up" in failed.stderr
    whole = rt.sysg("restart", "-p", "rs")
    assert whole.returncode == 1
    assert "error[SG0302]: restart incomplete: rs/broken did not come up" in whole.stderr
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


ONE_SHOT = """version: "2"
projects:
  mig:
    services:
      migrate:
        exec: ["/bin/sh", "-c", "echo run >> {counter}"]
        restart_policy: never
      web:
        command: "exec sleep {web}.{m}"
        depends_on: [{{service: migrate, condition: completed}}]
"""


def test_restart_bounces_an_unchanged_project_and_spares_a_finished_one_shot(
    rt: Runtime,
) -> None:
    m = new_marker()
    counter = rt.root / "runs"
    cfg = rt.write("sysg.yaml", ONE_SHOT.format(counter=counter, web=1000, m=m))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)

    def runs() -> int:
        return len(counter.read_text().splitlines()) if counter.exists() else 0

    def web_pid() -> int | None:
        return pids(rt)["web"]

    assert runs() == 1
    first = web_pid()

    # Only web changed: web restarts, the completed migration is not run again.
    rt.write("sysg.yaml", ONE_SHOT.format(counter=counter, web=1001, m=m))
    rt.sysg("restart", "-c", str(cfg), check=True)
    second = web_pid()
    assert second != first
    assert runs() == 1
    assert rt.unit("migrate")["phase"] == "exited"

    # Nothing changed: the project is bounced (new pid), the one-shot runs once more, and
    # the message says what happened.
    again = rt.sysg("restart", "-c", str(cfg), check=True)
    assert "restarted" in again.stdout
    wait_for(lambda: web_pid() not in (None, second), what="web restarted")
    assert runs() == 2
    assert rt.unit("web")["phase"] == "running"
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)
