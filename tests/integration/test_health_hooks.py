"""Liveness, hooks, pre_start and skip with real processes (docs/manifest.md, "Readiness";
docs/manifest.md, "Liveness, pre_start, hooks, skip").

A liveness probe failing ``failures`` times restarts the service by its policy; a hook
that hangs is killed at its timeout and the service is unaffected; hooks get their
environment and log under their own label; ``pre_start`` gates every launch (non-zero →
SG0103, the service is not launched); ``skip`` leaves a service ``skipped`` and its
dependents ``blocked``.
"""

from __future__ import annotations

import socket

from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, live_pid, pid_alive, pid_of, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_of(rt: Runtime, project: str, service: str) -> str:
    path = rt.logs / project / f"{service}.log"
    return path.read_text() if path.exists() else ""


def test_liveness_failing_three_times_restarts_the_service(rt: Runtime) -> None:
    m = new_marker()
    port = free_port()
    flag = rt.work / "alive"
    # The service answers on the port while the flag exists; the test removes the flag.
    server = (
        f"import os, socket, time; s = socket.socket(); "
        f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(16); s.settimeout(0.05)\\n"
        f"while True:\\n"
        f"    try: c, _ = s.accept(); c.close()\\n"
        f"    except OSError: pass\\n"
        f"    if not os.path.exists('{flag}'): s.close(); time.sleep(1000)"
    )
    flag.touch()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  lv:
    services:
      api:
        exec: [python3, -c, "{server}", "{m}"]
        restart_policy: on-failure
        backoff: 100ms
        liveness: {{tcp: "127.0.0.1:{port}", interval: 200ms, attempt_timeout: 200ms,
                    failures: 3}}
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    first = rt.wait_state("api", "running")
    wait_for(lambda: rt.unit("api")["last_probe"] is not None, what="a liveness probe")
    assert rt.unit("api")["last_probe"]["result"] == "pass"
    flag.unlink()  # stops answering: three failures, then a restart by the policy

    def restarted() -> dict[str, object] | None:
        unit = rt.unit("api")
        return unit if unit["restarts"] >= 1 else None

    wait_for(restarted, timeout=20, what="the liveness restart")
    log = (rt.logs / "supervisor.log").read_text()
    assert "liveness failed 3 time(s) in a row" in log
    flag.touch()
    again = rt.wait_state("api", "running", timeout=20)
    assert pid_of(again) != pid_of(first)
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_hooks_run_with_their_environment_and_a_hung_one_is_killed(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  hk:
    services:
      job:
        command: "sleep 1; exit 3; : {m}"
        hooks:
          onstart: {{command: "exec sleep 1000.{m}1", timeout: 500ms}}
          onerr: {{command: "echo onerr code=$SYSG_EXIT_CODE name=$SYSG_SERVICE_NAME"}}
          onstop: {{command: "echo onstop project=$SYSG_PROJECT"}}
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr  # up after 250 ms; the hook does not delay it
    # The hung onstart hook is killed at its timeout; the service goes on and exits 3.
    wait_for(lambda: "hook onstart failed" in (rt.logs / "supervisor.log").read_text())
    assert not with_marker(f"{m}1")
    wait_for(lambda: rt.unit("job")["phase"] == "exited", what="the job to exit")
    wait_for(lambda: " onstop onstop project=hk" in log_of(rt, "hk", "job"), what="onstop")
    log = log_of(rt, "hk", "job")
    assert " onerr onerr code=3 name=job" in log
    assert rt.unit("job")["last_exit"]["exit_code"] == 3
    rt.sysg("stop", "--supervisor", check=True)


def test_a_manual_stop_runs_onstop_but_not_onerr(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  ms:
    services:
      web:
        command: "exec sleep 1000.{m}"
        hooks:
          onerr: {{command: "echo onerr ran"}}
          onstop: {{command: "echo onstop ran"}}
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    rt.sysg("stop", "-s", "web", check=True)
    wait_for(lambda: "onstop ran" in log_of(rt, "ms", "web"), what="onstop")
    assert "onerr ran" not in log_of(rt, "ms", "web")
    rt.sysg("stop", "--supervisor", check=True)


def test_pre_start_gates_every_launch(rt: Runtime) -> None:
    m = new_marker()
    ok = rt.work / "migrations-ok"
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  ps:
    services:
      web:
        command: "exec sleep 1000.{m}"
        deployment:
          pre_start: "echo migrating; test -f {ok}"
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 1
    assert "SG0103" in proc.stderr
    assert "migrating" in proc.stderr  # its output, from the service log
    assert not with_marker(m), "not launched"
    assert " pre_start migrating" in log_of(rt, "ps", "web")
    ok.touch()
    rt.sysg("start", "-s", "ps/web", "--daemonize", check=True)
    assert rt.unit("web")["phase"] == "running"
    rt.sysg("stop", "--supervisor", check=True)


def test_skip_leaves_the_service_skipped_and_its_dependents_blocked(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  sk:
    services:
      maint:
        command: "exec sleep 1000.{m}"
        skip: "test -d /"
      off:
        command: "exec sleep 1000.{m}"
        skip: true
      web:
        command: "exec sleep 1000.{m}"
        depends_on: [maint]
      other:
        command: "exec sleep 1000.{m}"
        skip: "test -d /no/such/dir"
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    # web waits for its skipped dependency: what the skip asked for, so a warning, exit 0.
    assert proc.returncode == 0, proc.stderr
    assert "warning[SG0109]: service 'web' is blocked" in proc.stderr
    states = {u["name"]: u["phase"] for u in rt.status()["units"]}
    assert states == {"maint": "skipped", "off": "skipped", "web": "blocked", "other": "running"}
    assert "'maint' is skipped" in rt.unit("web")["message"]
    # Started explicitly despite its skip, maint comes up and web follows by itself.
    rt.sysg("start", "-s", "maint", check=True)
    rt.wait_state("web", "running")
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_start_s_starts_a_skipped_service_anyway(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  ov:
    services:
      maint:
        command: "exec sleep 1000.{m}"
        skip: true
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    assert rt.unit("maint")["phase"] == "skipped"
    rt.sysg("start", "-s", "ov/maint", "--daemonize", check=True)
    assert rt.unit("maint")["phase"] == "running"
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_restart_of_a_skipped_root_starts_nothing_behind_it(rt: Runtime) -> None:
    # Only an explicit `start -s` overrides a skip; a restart (of the root or of a
    # dependent) honours it, so nothing behind a skipped service is brought up.
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  sk:
    services:
      root:
        command: "exec sleep 1000.{m}"
        skip: true
      mid:
        command: "exec sleep 1000.{m}"
        depends_on: [root]
      leaf:
        command: "exec sleep 1000.{m}"
        depends_on: [mid]
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    for target in ("root", "leaf"):
        done = rt.sysg("restart", "-s", target)
        assert done.returncode == 0, done.stderr
        phases = {u["name"]: u["phase"] for u in rt.status()["units"]}
        assert phases == {"root": "skipped", "mid": "blocked", "leaf": "blocked"}, target
    assert not with_marker(m)
    rt.sysg("stop", "--supervisor", check=True)


def test_a_running_service_newly_marked_skip_is_stopped_by_the_restart(rt: Runtime) -> None:
    """The upstream's skip-cron-and-cascade, ours: `skip: true` added to a running service
    and `restart -c` (a reconcile): the changed service is bounced into its skip — its
    process is stopped, the unit reads `skipped`, and an untouched sibling keeps its pid."""
    m = new_marker()
    text = f"""version: "2"
projects:
  sk:
    services:
      web:
        command: "exec sleep 1000.{m}"{{skip}}
      other:
        command: "exec sleep 1001.{m}"
"""
    cfg = rt.write("sysg.yaml", text.format(skip=""))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    web, other = live_pid(rt.unit("web")), live_pid(rt.unit("other"))
    rt.write("sysg.yaml", text.format(skip="\n        skip: true"))
    done = rt.sysg("restart", "-c", str(cfg))
    assert done.returncode == 0, done.stderr
    assert rt.unit("web")["phase"] == "skipped"
    assert pid_of(rt.unit("web")) is None
    wait_for(lambda: not pid_alive(web), what="web's old process to be gone")
    assert pid_of(rt.unit("other")) == other
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)
