"""Nothing wedges the CLI: a supervisor that accepts but never answers (frozen by SIGSTOP,
or a stand-in that listens and says nothing) gives ``SG0205`` naming its pid, ``sysg stop
--supervisor`` ends it (and the services it left), and no command ends in a traceback.

Real processes and sockets under a private runtime root. Every process a test freezes is
sent SIGCONT and killed in a ``finally``; subprocess timeouts are only safety nets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runtime import SYSG, Runtime, pid_alive, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "while true; do echo web-tick; sleep 0.1; done"
        stop_timeout: 3s
      db:
        command: "exec sleep 300"
        stop_timeout: 3s
"""

# A stand-in "supervisor": `supervise` is one of its argv words, it listens on the control
# socket and never accepts or answers, and it ignores SIGTERM (a wedged loop would too).
WEDGED = r"""
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1])
sock.listen(64)
print("ready", flush=True)
while True:
    time.sleep(60)
"""

SLEEPER = "import time\nwhile True: time.sleep(60)\n"


def _kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: _state(pid) == "T", timeout=10, what=f"{pid} to stop")
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[19])


def _start(rt: Runtime) -> tuple[int, dict[str, int]]:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    pids = {u["name"]: pid_of(u) for u in rt.status()["units"]}
    sup = rt.supervisor_pid()
    assert sup is not None
    assert all(pid_alive(p) for p in pids.values())
    return sup, pids


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr


# --- a real supervisor, frozen with SIGSTOP ----------------------------------------------


def test_frozen_supervisor_is_sg0205_naming_its_pid_for_reads_writes_and_streams(
    rt: Runtime,
) -> None:
    sup, _ = _start(rt)
    with frozen(sup):
        status = rt.sysg("status", timeout=60)
        assert status.returncode == 1
        assert (
            f"error[SG0205]: supervisor {sup} is stopped (state T) and cannot answer"
            in status.stderr
        )
        assert f"kill -CONT {sup}" in status.stderr
        assert "sysg stop --supervisor" in status.stderr
        _no_traceback(status)
        # A mutating request has a 5-minute deadline, but a supervisor in state T is not
        # working on it: the CLI says so at once, and sends nothing that the supervisor
        # would carry out once resumed.
        stop = rt.sysg("stop", "-s", "demo/db", timeout=60)
        assert stop.returncode == 1
        assert f"error[SG0205]: supervisor {sup} is stopped" in stop.stderr
        _no_traceback(stop)
        # A stream (logs -f) has a deadline on connect + first line.
        follow = rt.sysg("logs", "-f", "-s", "demo/web", "-n", "0", timeout=60)
        assert follow.returncode == 1
        assert "error[SG0205]" in follow.stderr
        assert str(sup) in follow.stderr
        _no_traceback(follow)
    # Resumed, it answers again and nothing was changed.
    units = {u["name"]: u["phase"] for u in rt.status()["units"]}
    assert units == {"web": "running", "db": "running"}


def test_stop_supervisor_ends_a_frozen_supervisor_and_its_services(rt: Runtime) -> None:
    sup, pids = _start(rt)
    with frozen(sup):
        stop = rt.sysg("stop", "--supervisor", timeout=90)
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "Supervisor stopped"
    assert f"supervisor {sup} was stopped (state T); sent SIGCONT" in stop.stderr
    _no_traceback(stop)
    assert not pid_alive(sup)
    for pid in pids.values():
        assert not pid_alive(pid)
    assert not (rt.state / "control.sock").exists()
    assert not (rt.state / "sysg.pid").exists()


@pytest.mark.parametrize("args", [("stop", "-s", "stubborn"), ("stop",)])
def test_a_supervisor_frozen_while_a_long_request_waits_fails_it_within_seconds(
    rt: Runtime, args: tuple[str, ...]
) -> None:
    """A stop that may legitimately take a minute (stop_timeout) is waited for — until the
    supervisor working on it is frozen: then SG0205, not the 5-minute deadline. A plain
    `sysg stop` goes the fast path (cli/quick.py), which hands the wait to the full path's
    reader once the request is sent: the same error, and the stop is not sent twice."""
    rt.write(
        "systemg.yaml",
        'version: "2"\n'
        "services:\n"
        "  stubborn:\n"
        "    command: \"trap '' TERM; while true; do sleep 0.2; done\"\n"
        "    stop_timeout: 60s\n",
    )
    rt.sysg("start", "--daemonize", check=True)
    service = pid_of(rt.unit("stubborn"))
    sup = rt.supervisor_pid()
    assert sup is not None
    proc = rt.popen(*args)
    try:
        rt.wait_state("stubborn", "stopping")
        assert proc.poll() is None  # working, not stuck: the CLI waits
        with frozen(sup):
            _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert f"error[SG0205]: supervisor {sup} is stopped (state T)" in err
        assert "no reply to 'stop'; it was sent and will be carried out if it is resumed" in err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service, signal.SIGKILL)


@pytest.mark.parametrize("verb", ["run", "stop"])
def test_a_request_without_deadline_still_fails_when_the_supervisor_freezes(
    rt: Runtime, verb: str
) -> None:
    """`sysg run` has no deadline (a job may run for hours), nor has `--timeout 0`: a
    supervisor frozen while they wait is still SG0205 within seconds, not a wait for ever."""
    rt.write(
        "systemg.yaml",
        'version: "2"\n'
        "services:\n"
        "  job:\n"
        "    command: \"trap '' TERM; while true; do sleep 0.2; done\"\n"
        "    stop_timeout: 60s\n"
        + ('    cron: {expression: "0 0 0 1 1 *", timezone: UTC}\n' if verb == "run" else ""),
    )
    rt.sysg("start", "--daemonize", check=True)
    sup = rt.supervisor_pid()
    assert sup is not None
    argv = ["run", "-s", "job"] if verb == "run" else ["stop", "-s", "job", "--timeout", "0"]
    proc = rt.popen(*argv)
    service: int | None = None
    try:
        rt.wait_state("job", "running" if verb == "run" else "stopping")
        service = pid_of(rt.unit("job"))
        assert proc.poll() is None  # working, not stuck: the CLI waits
        with frozen(sup):
            _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert f"error[SG0205]: supervisor {sup} is stopped (state T)" in err
        assert f"no reply to '{verb}'" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if service is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service, signal.SIGKILL)


# --- a stand-in that accepts and never answers -------------------------------------------


@pytest.fixture
def wedged(rt: Runtime) -> Iterator[subprocess.Popen[str]]:
    rt.state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", WEDGED, str(rt.state / "control.sock"), "supervise"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        (rt.state / "sysg.pid").write_text(f"{proc.pid}\n")
        yield proc
    finally:
        _kill(proc)


def _service(rt: Runtime, project: str, name: str, record: dict[str, object]) -> None:
    """Record a service the way a supervisor does (``daemon/store.py``'s state.json)."""
    path = rt.state / "projects" / project / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (
        json.loads(path.read_text())
        if path.exists()
        else {
            "project_id": project,
            "manifest_path": str(rt.work / "systemg.yaml"),
            "environ": {},
            "drop_privileges": False,
            "attached": False,
            "services": {},
        }
    )
    data["services"][name] = {
        "started_at": time.time(),
        "phase": "running",
        "restarts": 0,
        "last_exit": None,
        "stop_reason": None,
        **record,
    }
    path.write_text(json.dumps(data))


def test_a_silent_supervisor_is_sg0205_within_each_deadline(
    rt: Runtime, wedged: subprocess.Popen[str]
) -> None:
    status = rt.sysg("status", timeout=60)
    assert status.returncode == 1
    assert f"error[SG0205]: supervisor {wedged.pid} is alive but not answering" in status.stderr
    assert "within 5s" in status.stderr
    assert f"kill {wedged.pid}" in status.stderr
    _no_traceback(status)
    version = rt.sysg("version", timeout=60)
    assert version.returncode == 1
    assert "error[SG0205]" in version.stderr
    # Mutating requests: the whole request, as long as --timeout says.
    rt.write("systemg.yaml", MANIFEST)
    start = rt.sysg("start", "--daemonize", "--timeout", "1s", timeout=60)
    assert start.returncode == 1
    assert "no reply to 'start' within 1s" in start.stderr
    assert "--timeout" in start.stderr
    _no_traceback(start)
    restart = rt.sysg("restart", "--timeout", "500ms", timeout=60)
    assert restart.returncode == 1
    assert "no reply to 'restart' within 500ms" in restart.stderr
    bad = rt.sysg("stop", "--timeout", "soon")
    assert bad.returncode == 2
    assert "'soon' is not a duration" in bad.stderr
    assert wedged.poll() is None  # asking is not signalling


def test_stop_supervisor_kills_a_wedged_one_and_stops_what_it_left(
    rt: Runtime, wedged: subprocess.Popen[str]
) -> None:
    # A service it "left": a process group whose leader has a child of its own.
    service = subprocess.Popen(
        ["sh", "-c", "sleep 300 & wait"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    # A recorded pid that is alive but is not the service any more (another start time).
    bystander = subprocess.Popen(
        [sys.executable, "-c", SLEEPER], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: _group(service.pid) >= 2, what="the service's child")
        _service(rt, "demo", "web", {"pid": service.pid, "start_time": _start_time(service.pid)})
        _service(
            rt, "demo", "db", {"pid": bystander.pid, "start_time": _start_time(bystander.pid) + 1}
        )
        stop = rt.sysg("stop", "--supervisor", timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout.strip() == "Supervisor stopped"
        err = stop.stderr
        assert f"supervisor {wedged.pid} is alive but not answering" in err
        assert f"sent SIGCONT to supervisor {wedged.pid}; still no answer" in err
        assert f"sent SIGTERM to supervisor {wedged.pid}; still running" in err
        assert f"sent SIGKILL to supervisor {wedged.pid}; it is gone" in err
        assert "removed sysg.pid and control.sock" in err
        assert f"stopped 1 service it left running: demo/web (pid {service.pid})" in err
        _no_traceback(stop)
        assert wedged.wait(timeout=10) == -signal.SIGKILL
        assert service.wait(timeout=10) != 0
        wait_for(lambda: _group(service.pid) == 0, what="the service's group to be gone")
        assert bystander.poll() is None  # same pid, other start time: not ours
        assert not (rt.state / "control.sock").exists()
        assert not (rt.state / "sysg.pid").exists()
    finally:
        for p in (service, bystander):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _group(pgid: int) -> int:
    """Live members of process group ``pgid``."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                count += 1
    return count


@pytest.mark.parametrize("impostor", ["no-supervise-in-argv", "started-after-the-pid-file"])
def test_nothing_is_signalled_unless_it_is_our_supervisor(rt: Runtime, impostor: str) -> None:
    """sysg.pid names a live process that is not this runtime's supervisor: SG0205 says so,
    and ``stop --supervisor`` leaves that process alone."""
    rt.state.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rt.state / "control.sock"))
    listener.listen(8)
    argv = [sys.executable, "-c", SLEEPER]
    if impostor == "started-after-the-pid-file":
        argv.append("supervise")
    other = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        pid_file = rt.state / "sysg.pid"
        pid_file.write_text(f"{other.pid}\n")
        if impostor == "started-after-the-pid-file":
            old = time.time() - 3600  # written an hour before that process was born
            os.utime(pid_file, (old, old))
        status = rt.sysg("status", timeout=60)
        assert status.returncode == 1
        assert "error[SG0205]: the supervisor is alive but not answering" in status.stderr
        assert "names no live supervisor" in status.stderr
        assert str(other.pid) not in status.stderr
        stop = rt.sysg("stop", "--supervisor", timeout=60)
        assert stop.returncode == 1
        assert "error[SG0205]" in stop.stderr
        _no_traceback(stop)
        assert other.poll() is None
        assert _state(other.pid) in ("S", "R")  # not even SIGSTOP/SIGCONT'ed
    finally:
        listener.close()
        _kill(other)


# --- streams and pipes --------------------------------------------------------------------


def test_logs_follow_says_so_when_the_supervisor_dies_mid_stream(rt: Runtime) -> None:
    sup, _ = _start(rt)
    proc = rt.popen("logs", "-f", "-s", "demo/web", "-n", "0")
    try:
        assert proc.stdout is not None
        assert "web-tick" in proc.stdout.readline()  # streamed live by the supervisor
        os.kill(sup, signal.SIGKILL)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert "error[SG0206]: the supervisor went away; no more lines will come" in err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_closed_stdout_is_a_quiet_exit(rt: Runtime) -> None:
    """`sysg status | head -0`: the reader is gone before sysg writes."""
    _start(rt)
    for args in (("status",), ("status", "--format", "json"), ("version",), ("--version",)):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(
                [SYSG, *args],
                env=rt.env,
                stdout=write,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr == "", (args, proc.stderr)
    # And a long output whose reader leaves early.
    log = rt.logs / "demo" / "big.log"
    log.write_text("".join(f"2026-01-01T00:00:00.{i:06d}Z stdout line {i}\n" for i in range(50000)))
    piped = subprocess.run(
        ["bash", "-c", f'set -o pipefail; "{SYSG}" logs -s demo/big -n 50000 | head -1 >/dev/null'],
        env=rt.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert piped.stderr == ""


def test_an_unexpected_error_is_sg0001_without_a_traceback(rt: Runtime) -> None:
    code = (
        "import sys\n"
        "import systemg.cli.commands.version as version\n"
        "def broken(args):\n"
        "    raise RuntimeError('the unexpected')\n"
        "version.run = broken\n"
        "from systemg.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    python = str(Path(SYSG).parent / "python")
    plain = rt.sysg("-c", code, "version", exe=python)
    assert plain.returncode == 70
    assert plain.stderr.startswith("error[SG0001]: internal error: RuntimeError: the unexpected\n")
    assert "please report it" in plain.stderr
    assert "-v" in plain.stderr
    assert "Traceback" not in plain.stderr
    verbose = rt.sysg("-c", code, "version", "-v", exe=python)
    assert verbose.returncode == 70
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "error[SG0001]: internal error: RuntimeError: the unexpected" in verbose.stderr


def test_ctrl_c_while_waiting_exits_130_without_a_traceback(
    rt: Runtime, wedged: subprocess.Popen[str]
) -> None:
    proc = subprocess.Popen(
        [SYSG, "stop", "--timeout", "0"],  # no deadline: it waits until interrupted
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        # Connected (queued in the stand-in's backlog) and waiting for the reply.
        wait_for(lambda: _waiting_on_socket(proc.pid), what="sysg to wait for a reply")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "Traceback" not in err
        assert out == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _waiting_on_socket(pid: int) -> bool:
    """``pid`` has a Unix socket open and sleeps (blocked in recv)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
    except OSError:
        return False
    return any(link.startswith("socket:") for link in links) and _state(pid) == "S"
