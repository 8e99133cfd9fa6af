"""``sysg logs`` against files in a private runtime, with no supervisor running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.lines import LineReader as _Reader
from tests.support.runtime import SYSG, Runtime


def stamp(i: int) -> str:
    return f"2026-05-14T02:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"


def write_log(rt: Runtime, project: str, service: str, rows: list[tuple[int, str, str]]) -> Path:
    path = rt.logs / project / f"{service}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        for i, stream, text in rows:
            fh.write(f"{stamp(i)} {stream} {text}\n")
    return path


def test_last_n_lines_of_one_service_as_stored(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(i, "stdout", f"line {i}") for i in range(500)])
    proc = rt.sysg("logs", "-s", "app/web", "-n", "3", check=True)
    assert proc.stdout.splitlines() == [f"{stamp(i)} stdout line {i}" for i in (497, 498, 499)]
    default = rt.sysg("logs", "-s", "app/web", check=True)
    assert len(default.stdout.splitlines()) == 100


def test_bare_service_resolves_when_unique(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(1, "stderr", "boom")])
    proc = rt.sysg("logs", "-s", "web", check=True)
    assert proc.stdout == f"{stamp(1)} stderr boom\n"


def test_project_interleaves_services_by_time_with_prefix(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(1, "stdout", "w1"), (3, "stdout", "w2")])
    write_log(rt, "app", "db", [(2, "stderr", "d1")])
    write_log(rt, "other", "x", [(0, "stdout", "not mine")])
    proc = rt.sysg("logs", "-p", "app", check=True)
    assert proc.stdout.splitlines() == [
        f"web | {stamp(1)} stdout w1",
        f"db | {stamp(2)} stderr d1",
        f"web | {stamp(3)} stdout w2",
    ]


def test_everything_when_nothing_is_given(rt: Runtime) -> None:
    write_log(rt, "a", "web", [(2, "stdout", "second")])
    write_log(rt, "b", "web", [(1, "stdout", "first")])
    proc = rt.sysg("logs", check=True)
    assert proc.stdout.splitlines() == [
        f"b/web | {stamp(1)} stdout first",
        f"a/web | {stamp(2)} stdout second",
    ]


def test_json_lines(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(1, "stdout", 'say "hi"'), (2, "stderr", "oops")])
    proc = rt.sysg("logs", "-s", "app/web", "--format", "json", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f'{{"ts":"{stamp(1)}","stream":"stdout","project":"app","service":"web",'
        f'"line":"say \\"hi\\""}}'
    )
    assert json.loads(lines[1]) == {
        "ts": stamp(2),
        "stream": "stderr",
        "project": "app",
        "service": "web",
        "line": "oops",
    }


def test_ambiguous_bare_service_is_sg0006_listing_matches(rt: Runtime) -> None:
    write_log(rt, "a", "web", [(1, "stdout", "x")])
    write_log(rt, "b", "web", [(1, "stdout", "y")])
    proc = rt.sysg("logs", "-s", "web")
    assert proc.returncode == 1
    assert "error[SG0006]" in proc.stderr
    assert "a/web" in proc.stderr
    assert "b/web" in proc.stderr
    assert proc.stdout == ""


def test_not_found_and_no_target(rt: Runtime) -> None:
    proc = rt.sysg("logs")
    assert proc.returncode == 1
    assert "error[SG0019]" in proc.stderr
    write_log(rt, "a", "web", [(1, "stdout", "x")])
    proc = rt.sysg("logs", "-s", "nope")
    assert proc.returncode == 1
    assert "error[SG0021]" in proc.stderr  # a bare name that matches no service
    proc = rt.sysg("logs", "-s", "a/nope")
    assert proc.returncode == 1
    assert "error[SG0202]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_path(rt: Runtime) -> None:
    path = write_log(rt, "app", "web", [(1, "stdout", "x")])
    assert rt.sysg("logs", "--path", "-s", "web", check=True).stdout == f"{path}\n"
    assert rt.sysg("logs", "--path", "-s", "app/web", check=True).stdout == f"{path}\n"
    assert rt.sysg("logs", "--path", check=True).stdout == f"{rt.logs}\n"
    expected_new = rt.logs / "app" / "later.log"
    assert rt.sysg("logs", "--path", "-s", "app/later", check=True).stdout == f"{expected_new}\n"


def test_logs_does_not_import_yaml_psutil_or_daemon(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(1, "stdout", "x")])
    code = (
        "import sys; from systemg.cli.main import main; rc = main(['logs', '-s', 'app/web']);"
        "bad = [m for m in ('yaml', 'psutil', 'systemg.daemon', 'systemg.manifest') "
        "if m in sys.modules]; print('BAD', bad); sys.exit(rc)"
    )
    python = str(Path(SYSG).parent / "python")
    proc = rt.sysg("-c", code, exe=python, check=True)
    assert "BAD []" in proc.stdout


def test_follow_without_supervisor_tracks_appends_and_rotation(rt: Runtime) -> None:
    path = write_log(rt, "app", "web", [(i, "stdout", f"old {i}") for i in range(5)])
    proc = subprocess.Popen(
        [SYSG, "logs", "-s", "app/web", "-n", "2", "-f"],
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        out = _Reader(proc)
        assert out.lines(2) == [f"{stamp(3)} stdout old 3", f"{stamp(4)} stdout old 4"]
        write_log(rt, "app", "web", [(10, "stdout", "new 10")])
        assert out.lines(1) == [f"{stamp(10)} stdout new 10"]
        write_log(rt, "app", "web", [(11, "stderr", "last before rotation")])
        os.replace(path, path.with_name("web.log.1"))
        write_log(rt, "app", "web", [(12, "stdout", "first after rotation")])
        assert out.lines(2) == [
            f"{stamp(11)} stderr last before rotation",
            f"{stamp(12)} stdout first after rotation",
        ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_a_line_appended_while_the_tail_is_read_is_shown_once(rt: Runtime) -> None:
    """`logs -f` without a supervisor opens its followers before reading the tail, and the
    tail ends where they start: a line written in between is neither lost nor repeated."""
    from systemg.cli.logfiles import Follower, ServiceLogFile, merged_tail

    path = write_log(rt, "app", "web", [(i, "stdout", f"old {i}") for i in range(3)])
    log = ServiceLogFile("app", "web", path)
    follower = Follower(log)
    try:
        write_log(rt, "app", "web", [(5, "stdout", "in between")])
        shown = [e.line.raw.decode() for e in merged_tail([log], 10, {log.label: follower})]
        assert shown == [f"{stamp(i)} stdout old {i}" for i in range(3)]
        assert follower.poll() == [f"{stamp(5)} stdout in between".encode()]
    finally:
        follower.close()


def test_follow_project_picks_up_new_services(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(1, "stdout", "w")])
    proc = subprocess.Popen(
        [SYSG, "logs", "-p", "app", "-f"],
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        out = _Reader(proc)
        assert out.lines(1) == [f"web | {stamp(1)} stdout w"]
        write_log(rt, "app", "worker", [(2, "stdout", "hello from worker")])
        assert out.lines(1) == [f"worker | {stamp(2)} stdout hello from worker"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


# --- following through a supervisor (a scripted stand-in on the control socket) -----------

FAKE_SUPERVISOR = r"""
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1])
sock.listen(1)
print("ready", flush=True)
conn, _ = sock.accept()
request = conn.makefile("rb").readline()
print(request.decode().strip(), flush=True)
for frame in json.loads(sys.argv[2]):
    if "append" in frame:  # a line captured after the request, before the confirmation
        path, text = frame["append"]
        with open(path, "a") as fh:
            fh.write(text)
        continue
    conn.sendall((json.dumps(frame) + "\n").encode())
conn.close()
"""

SUBSCRIBED = {"v": 1, "event": {"kind": "subscribed"}}


def _fake_supervisor(rt: Runtime, frames: list[dict[str, object]]) -> subprocess.Popen[bytes]:
    rt.state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_SUPERVISOR, str(rt.state / "control.sock"), json.dumps(frames)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert _Reader(proc).lines(1) == ["ready"]
    return proc


def _finish(proc: subprocess.Popen[bytes]) -> str:
    out, _ = proc.communicate(timeout=10)
    return out.decode()


def test_follow_with_supervisor_streams_events_and_skips_what_the_tail_showed(rt: Runtime) -> None:
    write_log(rt, "app", "web", [(i, "stdout", f"old {i}") for i in range(5)])
    data_dup = f"{stamp(4)} stdout old 4\n"
    data_new = f"{stamp(9)} stdout new 9\n{stamp(9)} stderr new err\n"
    log = rt.logs / "app" / "web.log"
    raced = f"{stamp(6)} stdout written while subscribing\n"
    fake = _fake_supervisor(
        rt,
        [
            # Written after the request arrived but before the confirmation: the CLI must
            # read the tail only after "subscribed", or this line is in neither.
            {"append": [str(log), raced]},
            SUBSCRIBED,
            {
                "v": 1,
                "event": {"kind": "log", "project": "app", "service": "web", "data": data_dup},
            },
            {
                "v": 1,
                "event": {"kind": "log", "project": "app", "service": "web", "data": data_new},
            },
            {"v": 1, "event": {"kind": "other"}},
        ],
    )
    try:
        proc = rt.sysg("logs", "-s", "web", "-n", "2", "-f", timeout=20)
    finally:
        request = _finish(fake)
    assert json.loads(request) == {
        "v": 1,
        "verb": "logs",
        "args": {"project": "app", "service": "web"},
    }
    assert proc.stdout.splitlines() == [
        f"{stamp(4)} stdout old 4",
        f"{stamp(6)} stdout written while subscribing",
        f"{stamp(9)} stdout new 9",
        f"{stamp(9)} stderr new err",
    ]
    # The stand-in then closed the connection without a closing reply, as a supervisor that
    # stops or dies does: that is said, not silently taken for the end of the logs.
    assert proc.returncode == 1, proc.stderr
    assert "error[SG0206]: the supervisor went away; no more lines will come" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_follow_with_supervisor_json_and_error_reply(rt: Runtime) -> None:
    fake = _fake_supervisor(
        rt,
        [
            SUBSCRIBED,
            {
                "v": 1,
                "event": {
                    "kind": "log",
                    "project": "p",
                    "service": "s",
                    "data": f"{stamp(1)} stdout hi\n",
                },
            },
            {
                "v": 1,
                "ok": False,
                "diagnostics": [{"code": "SG0202", "message": "no service 's' in project 'p'"}],
            },
        ],
    )
    try:
        # No log file yet is fine when a supervisor answers: it may still produce one.
        proc = rt.sysg("logs", "-s", "p/s", "-f", "--format", "json", timeout=20)
    finally:
        _finish(fake)
    assert json.loads(proc.stdout) == {
        "ts": stamp(1),
        "stream": "stdout",
        "project": "p",
        "service": "s",
        "line": "hi",
    }
    assert proc.returncode == 1
    assert "error[SG0202]: no service 's' in project 'p'" in proc.stderr


def test_supervisor_log_and_its_selector_rule(rt: Runtime) -> None:
    rt.logs.mkdir(parents=True, exist_ok=True)
    (rt.logs / "supervisor.log").write_text("".join(f"sup line {i}\n" for i in range(300)))
    proc = rt.sysg("logs", "--supervisor", "-n", "2", check=True)
    assert proc.stdout == "sup line 298\nsup line 299\n"
    assert len(rt.sysg("logs", "--supervisor", check=True).stdout.splitlines()) == 100
    assert rt.sysg("logs", "--supervisor", "--path", check=True).stdout.strip() == str(
        rt.logs / "supervisor.log"
    )
    bad = rt.sysg("logs", "--supervisor", "-s", "web")
    assert bad.returncode == 1
    assert "error[SG0020]" in bad.stderr


def test_purge_empties_the_selection_and_only_it(rt: Runtime) -> None:
    web = write_log(rt, "app", "web", [(1, "stdout", "old web")])
    Path(f"{web}.1").write_text(f"{stamp(0)} stdout older web\n")
    db = write_log(rt, "app", "db", [(2, "stdout", "db line")])
    (rt.logs / "supervisor.log").write_text("sup\n")
    conflict = rt.sysg("logs", "--path", "--purge")
    assert conflict.returncode == 1
    assert "error[SG0204]" in conflict.stderr
    assert "--path and --purge" in conflict.stderr
    rt.sysg("logs", "-s", "app/web", "--purge", check=True)
    assert web.read_text() == ""
    assert not Path(f"{web}.1").exists()
    assert db.read_text() != ""
    assert (rt.logs / "supervisor.log").read_text() == "sup\n"
    assert "old web" not in rt.sysg("logs", "-s", "app/web", check=True).stdout
    everything = rt.sysg("logs", "--purge", check=True)
    assert "every log" in everything.stdout
    assert db.read_text() == ""
    assert (rt.logs / "supervisor.log").read_text() == ""
    ambiguous = write_log(rt, "other", "web", [(3, "stdout", "keep")])
    refused = rt.sysg("logs", "-s", "web", "--purge")
    assert refused.returncode == 1
    assert "error[SG0006]" in refused.stderr
    assert ambiguous.read_text() != ""


def test_stream_duration_redraws_until_ctrl_c_and_stream_label_still_filters(
    rt: Runtime,
) -> None:
    import pty
    import select
    import time

    write_log(
        rt, "app", "web", [(1, "stdout", "one"), (2, "stderr", "two"), (3, "stdout", "three")]
    )
    # A label is a filter, whichever spelling (ours -k/--stream, the upstream's --kind).
    for flag in ("-k", "--stream", "--kind"):
        shown = rt.sysg("logs", "-s", "app/web", flag, "stderr", check=True).stdout
        assert shown == f"{stamp(2)} stderr two\n"
    # A duration redraws the last -n lines on a cleared screen, until Ctrl-C.
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(rt.work)
        os.execvpe(SYSG, [SYSG, "logs", "-s", "app/web", "-n", "2", "--stream", "0.2"], rt.env)
    captured = b""
    deadline = time.monotonic() + 20
    while captured.count(b"\x1b[2J\x1b[H") < 3 and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            captured += os.read(fd, 65536)
    os.write(fd, b"\x03")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert captured.count(b"\x1b[2J\x1b[H") >= 3, captured
    frame = captured.split(b"\x1b[2J\x1b[H")[-2]  # a whole frame (the last may be cut)
    assert b"three" in frame
    assert b"one" not in frame  # -n 2
    assert os.waitstatus_to_exitcode(status) == 0
    both = rt.sysg("logs", "-s", "app/web", "-f", "--stream", "1")
    assert both.returncode == 1
    assert "SG0204" in both.stderr
