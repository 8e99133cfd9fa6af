"""END-TO-END: the real supervisor captures service output into log files.

Runs ``sysg start --daemonize`` with real services and checks the stored files: every line
of a service that writes as fast as it can and exits at once, stdout/stderr tags, and
rotation keeping exactly ``max_files`` backups. Depends on the whole supervisor (spawn,
loop, pipes, ``daemon/logs.py``), not only on the log writer.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.runtime import SYSG, Runtime, wait_for

pytestmark = pytest.mark.slow

LINE_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (stdout|stderr) (.*)")


def stored(path: Path) -> list[tuple[str, str]]:
    data = path.read_text()
    assert data.endswith("\n")
    out = []
    for raw in data.split("\n")[:-1]:
        m = LINE_RE.fullmatch(raw)
        assert m, raw[:120]
        out.append((m.group(2), m.group(3)))
    return out


def manifest(rt: Runtime, services: str) -> Path:
    return rt.write("m.yaml", f'version: "2"\nprojects:\n  cap:\n    services:\n{services}')


def run_to_exit(rt: Runtime, service: str, *, timeout: float = 60) -> None:
    rt.sysg("start", "-c", "m.yaml", "--daemonize", check=True, timeout=timeout)
    wait_for(
        lambda: rt.unit(service)["phase"] in ("exited", "stopped", "failed"),
        timeout=timeout,
        interval=0.1,
        what=f"{service} to exit",
    )
    assert rt.unit(service)["phase"] == "exited"


def test_200k_lines_written_as_fast_as_possible_are_all_captured(rt: Runtime) -> None:
    rt.write(
        "burst.py",
        "import sys\n"
        "w = sys.stdout.buffer.write\n"
        "for i in range(200_000):\n"
        "    w(b'line %06d the quick brown fox jumps over the lazy dog\\n' % i)\n",
    )
    manifest(
        rt,
        "      burst:\n"
        f"        exec: [{sys.executable!r}, burst.py]\n"
        "        restart_policy: never\n"
        "        logs: {max_bytes: 1G}\n",
    )
    run_to_exit(rt, "burst")
    lines = stored(rt.logs / "cap" / "burst.log")
    assert len(lines) == 200_000
    assert lines == [
        ("stdout", f"line {i:06d} the quick brown fox jumps over the lazy dog")
        for i in range(200_000)
    ]


def test_stdout_and_stderr_are_tagged_and_a_last_partial_line_is_kept(rt: Runtime) -> None:
    manifest(
        rt,
        "      tags:\n"
        "        command: \"echo to-out; echo to-err >&2; echo out-again; printf 'no newline'\"\n"
        "        restart_policy: never\n",
    )
    run_to_exit(rt, "tags")
    lines = stored(rt.logs / "cap" / "tags.log")
    assert sorted(lines) == sorted(
        [
            ("stdout", "to-out"),
            ("stderr", "to-err"),
            ("stdout", "out-again"),
            ("stdout", "no newline"),
        ]
    )
    outs = [t for s, t in lines if s == "stdout"]
    assert outs == ["to-out", "out-again", "no newline"]
    proc = rt.sysg("logs", "-s", "tags", "--format", "json", check=True)
    assert '"stream":"stderr","project":"cap","service":"tags","line":"to-err"' in proc.stdout


def test_rotation_keeps_exactly_max_files(rt: Runtime) -> None:
    rt.write(
        "many.py",
        "import sys\nfor i in range(20_000):\n    print('row %05d ' % i + 'x' * 40)\n",
    )
    manifest(
        rt,
        "      many:\n"
        f"        exec: [{sys.executable!r}, many.py]\n"
        "        restart_policy: never\n"
        "        logs: {max_bytes: 64K, max_files: 3}\n",
    )
    run_to_exit(rt, "many")
    folder = rt.logs / "cap"
    assert sorted(p.name for p in folder.iterdir()) == [
        "many.log",
        "many.log.1",
        "many.log.2",
        "many.log.3",
    ]
    texts: list[str] = []
    for name in ("many.log.3", "many.log.2", "many.log.1", "many.log"):
        path = folder / name
        assert path.stat().st_size <= 64 * 1024
        texts += [t for _, t in stored(path)]
    first = int(texts[0].split()[1])
    assert texts == [f"row {i:05d} " + "x" * 40 for i in range(first, 20_000)]


def test_follow_through_the_live_supervisor_has_no_gap_or_duplicate(rt: Runtime) -> None:
    rt.write(
        "tick.py",
        "import sys, time\n"
        "i = 0\n"
        "while True:\n"
        "    print('tick %d' % i, flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.01)\n",
    )
    manifest(
        rt,
        "      tick:\n"
        f"        exec: [{sys.executable!r}, tick.py]\n"
        "        restart_policy: never\n",
    )
    rt.sysg("start", "-c", "m.yaml", "--daemonize", check=True)
    log = rt.logs / "cap" / "tick.log"
    wait_for(lambda: log.exists() and log.stat().st_size > 0, what="first tick stored")
    proc = subprocess.Popen(
        [SYSG, "logs", "-s", "tick", "-n", "5", "-f"],
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + 20
    try:
        while buf.count(b"\n") < 60:
            left = deadline - time.monotonic()
            assert left > 0, buf
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, buf
                buf += chunk
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
    numbers = [int(line.rsplit(" ", 1)[1]) for line in buf.decode().splitlines()[:60]]
    assert numbers == list(range(numbers[0], numbers[0] + 60)), numbers
