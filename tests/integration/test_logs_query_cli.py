"""``sysg logs`` with journalctl's habits, on files a real supervisor wrote for real services.

Time ranges, ``-g``, ``-k``, ``--raw``, several ``-s`` and ``-p`` merged by time, ``-a``
over rotated files, ``--prune`` — with the supervisor running, after it stopped, and
while following (``-f``: the filters hold for followed lines too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from systemg.views.render_status import human_bytes
from tests.support.lines import LineReader as Reader
from tests.support.lines import end
from tests.support.runtime import SYSG, Runtime, wait_for

pytestmark = pytest.mark.slow

LINE = re.compile(r"(?:(\w+) \| )?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\w+) (.*)")

# Two streams, numbered lines, a pause between them so capture times differ.
CHATTY = (
    "import sys, time\n"
    "name = sys.argv[1]\n"
    "for i in range(int(sys.argv[2])):\n"
    "    print(f'{name} ok {i}', flush=True)\n"
    "    print(f'{name} err {i}', file=sys.stderr, flush=True)\n"
    "    time.sleep(0.003)\n"
)


def start(rt: Runtime, services: str) -> None:
    rt.write("chatty.py", CHATTY)
    rt.write("m.yaml", f'version: "2"\nprojects:\n  q:\n    services:\n{services}')
    rt.sysg("start", "-c", "m.yaml", "--daemonize", check=True)


def chatty(name: str, count: int, extra: str = "") -> str:
    return (
        f"      {name}:\n"
        f"        exec: [{sys.executable!r}, chatty.py, {name}, '{count}']\n"
        "        restart_policy: never\n" + extra
    )


def exited(rt: Runtime, *names: str) -> None:
    for name in names:
        wait_for(
            lambda n=name: rt.unit(n)["phase"] == "exited",  # type: ignore[misc]
            timeout=30,
            interval=0.05,
            what=f"{name} to exit",
        )


def rows(text: str) -> list[tuple[str | None, str, str, str]]:
    out = []
    for raw in text.splitlines():
        m = LINE.fullmatch(raw)
        assert m, raw
        out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return out


def logs(rt: Runtime, *args: str) -> str:
    return rt.sysg("logs", *args, check=True).stdout


@pytest.fixture
def two(rt: Runtime) -> Runtime:
    """Services a and b of project q, 40 lines each on each stream, exited."""
    start(rt, chatty("a", 40) + chatty("b", 40))
    exited(rt, "a", "b")
    return rt


def check_filters(rt: Runtime) -> None:
    stored = rows(logs(rt, "-s", "q/a", "-a"))
    assert len(stored) == 80
    # -k: one stream, repeatable.
    err = rows(logs(rt, "-s", "a", "-k", "stderr", "-a"))
    assert [r[3] for r in err] == [f"a err {i}" for i in range(40)]
    both = rows(logs(rt, "-s", "a", "-k", "stderr", "-k", "stdout", "-a"))
    assert len(both) == 80
    # -g: a Python regex on the application text only (not the timestamp or stream).
    grep = rows(logs(rt, "-s", "a", "-g", r"ok (1\d|3)$"))
    assert [r[3] for r in grep] == ["a ok 3"] + [f"a ok {i}" for i in range(10, 20)]
    assert logs(rt, "-s", "a", "-g", "stdout") == ""
    # --since / --until: exactly at stored capture times, inclusive.
    ts = [r[1] for r in stored]
    since, until = ts[20], ts[59]
    ranged = rows(logs(rt, "-s", "a", "--since", since, "--until", until))
    assert [r[1] for r in ranged] == [t for t in ts if since <= t <= until]
    assert ranged[0][3] == stored[20][3]
    assert logs(rt, "-s", "a", "--since", "1h") == logs(rt, "-s", "a", "-a")
    assert logs(rt, "-s", "a", "--since", "today", "-n", "2").count("\n") == 2
    assert logs(rt, "-s", "a", "--until", "2000-01-01 00:00") == ""
    # -n with a filter: the last N that match.
    last = rows(logs(rt, "-s", "a", "-k", "stdout", "-n", "2"))
    assert [r[3] for r in last] == ["a ok 38", "a ok 39"]
    # --raw: the application text only.
    raw = logs(rt, "-s", "a", "-k", "stdout", "-n", "3", "--raw")
    assert raw == "a ok 37\na ok 38\na ok 39\n"


def check_merge(rt: Runtime) -> None:
    merged = rows(logs(rt, "-p", "q", "-a"))
    assert len(merged) == 160
    assert {r[0] for r in merged} == {"a", "b"}
    assert [r[1] for r in merged] == sorted(r[1] for r in merged)  # time order
    # Per service the stored order (the file's) is kept.
    for name in ("a", "b"):
        mine = [r[1:] for r in merged if r[0] == name]
        assert mine == [r[1:] for r in rows(logs(rt, "-s", name, "-a"))]
    several = rows(logs(rt, "-s", "a", "-s", "q/b", "-a"))
    assert several == merged
    # -n across the selection: the newest N by time; --raw keeps the service label.
    raw = logs(rt, "-s", "a", "-s", "b", "-k", "stderr", "-n", "3", "--raw").splitlines()
    newest = [r for r in merged if r[2] == "stderr"][-3:]
    assert raw == [f"{r[0]} | {r[3]}" for r in newest]


def test_filters_and_merge_with_the_supervisor_running(two: Runtime) -> None:
    assert two.supervisor_pid() is not None
    check_filters(two)
    check_merge(two)


def test_filters_and_merge_without_a_supervisor(two: Runtime) -> None:
    two.sysg("stop", "--supervisor", check=True)
    wait_for(lambda: two.supervisor_pid() is None, what="the supervisor to be gone")
    check_filters(two)
    check_merge(two)


def test_all_reads_rotated_files_oldest_first_and_prune_removes_only_them(rt: Runtime) -> None:
    start(rt, chatty("r", 300, "        logs: {max_bytes: 4k, max_files: 4}\n"))
    exited(rt, "r")
    active = rt.logs / "q" / "r.log"
    backups = sorted(active.parent.glob("r.log.*"))
    assert [p.name for p in backups] == ["r.log.1", "r.log.2", "r.log.3", "r.log.4"]
    everything = logs(rt, "-s", "r", "-a").splitlines()
    # Oldest to newest, then the active file, each as stored.
    ordered = [rt.logs / "q" / f"r.log.{k}" for k in (4, 3, 2, 1)] + [active]
    assert everything == [line for p in ordered for line in p.read_text().splitlines()]
    # And that is the service's output without a gap (per stream: pipes are read apart).
    oks = [int(r[3].split()[-1]) for r in rows("\n".join(everything)) if r[2] == "stdout"]
    assert oks == list(range(oks[0], 300))
    assert len(rows(logs(rt, "-s", "r"))) == 100  # without -a: the last 100
    # --prune --max-size: oldest first until the backups fit.
    four = (rt.logs / "q" / "r.log.4").stat().st_size
    three = (rt.logs / "q" / "r.log.3").stat().st_size
    total = sum(p.stat().st_size for p in backups)
    out = logs(rt, "--prune", "--max-size", f"{total - four}b", "-s", "r")
    assert out.splitlines()[0] == f"removed {rt.logs / 'q' / 'r.log.4'} ({human_bytes(four)})"
    assert not (rt.logs / "q" / "r.log.4").exists()
    assert (rt.logs / "q" / "r.log.3").stat().st_size == three
    assert "pruned 1 rotated file(s)" in out
    # --prune --max-age: every backup older than that (here: all), never the active file.
    out = logs(rt, "-p", "q", "--prune", "--max-age", "0s")
    assert "pruned 3 rotated file(s)" in out
    assert sorted(active.parent.glob("r.log.*")) == []
    assert active.is_file()
    assert [r[3] for r in rows(logs(rt, "-s", "r", "-a"))] == [
        r[3] for r in rows(logs(rt, "-s", "r", "-n", "100000"))
    ]
    assert "pruned 0 rotated file(s)" in logs(rt, "--prune", "--max-age", "1d")


TICKER = (
    "import sys, time\n"
    "i = 0\n"
    "while True:\n"
    "    print(f'tick {i}', flush=True)\n"
    "    print(f'noise {i}', file=sys.stderr, flush=True)\n"
    "    i += 1\n"
    "    time.sleep(0.02)\n"
)


def follow(rt: Runtime, *args: str) -> list[str]:
    proc = subprocess.Popen(
        [SYSG, "logs", "-f", *args],
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        return Reader(proc).lines(4)
    finally:
        end(proc)


@pytest.mark.parametrize("supervisor", [True, False])
def test_follow_applies_grep_stream_and_raw(rt: Runtime, supervisor: bool) -> None:
    rt.write("ticker.py", TICKER)
    rt.write(
        "m.yaml",
        'version: "2"\nprojects:\n  q:\n    services:\n'
        f"      t:\n        exec: [{sys.executable!r}, ticker.py]\n",
    )
    rt.sysg("start", "-c", "m.yaml", "--daemonize", check=True)
    wait_for(lambda: "tick 3" in (rt.logs / "q" / "t.log").read_text(), what="ticks")
    if not supervisor:
        # The service keeps writing into its pipe; a reader-less pipe would block it, so
        # keep the supervisor but make the CLI unable to reach it: follow the files.
        os.rename(rt.state / "control.sock", rt.state / "control.sock.away")
    try:
        got = follow(rt, "-s", "q/t", "-n", "1", "-k", "stdout", "-g", r"[05]$", "--raw")
    finally:
        if not supervisor:
            os.rename(rt.state / "control.sock.away", rt.state / "control.sock")
    assert all(re.fullmatch(r"tick \d*[05]", line) for line in got), got
    numbers = [int(line.split()[1]) for line in got]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 4


def test_usage_errors_say_the_code_and_the_fix(rt: Runtime) -> None:
    path = rt.logs / "q" / "a.log"
    path.parent.mkdir(parents=True)
    path.write_text("2026-05-14T02:00:00.000000Z stdout x\n")
    cases = [
        (("-g", "a(b"), "SG0210", "--grep 'a(b' is not a valid regular expression"),
        (("--since", "last tuesday"), "SG0210", "--since 'last tuesday' is not a time"),
        (("-k", "stdin"), "SG0210", "-k 'stdin' is not a stream label"),
        (("--prune",), "SG0017", "--prune needs a bound"),
        (("--prune", "--max-size", "lots"), "SG0210", "--max-size 'lots' is not a size"),
        (("-f", "--path"), "SG0204", "--path and -f cannot be combined"),
        (("-f", "--until", "now"), "SG0204", "-f follows new lines; --until ends them"),
        (("--max-age", "1d"), "SG0002", "--max-size and --max-age are bounds for --prune"),
        (("--raw", "--format", "json"), "SG0002", "--raw and --format json"),
    ]
    for args, code, message in cases:
        proc = rt.sysg("logs", *args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert f"error[{code}]" in proc.stderr, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "help:" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""


def test_no_follow_and_l_are_upstreams_spellings(rt: Runtime) -> None:
    path = rt.logs / "q" / "a.log"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"2026-05-14T02:00:0{i}.000000Z stdout l{i}\n" for i in range(5)))
    out = rt.sysg("logs", "-s", "q/a", "-l", "2", "-f", "--no-follow", check=True, timeout=20)
    assert out.stdout.splitlines() == [
        "2026-05-14T02:00:03.000000Z stdout l3",
        "2026-05-14T02:00:04.000000Z stdout l4",
    ]


def test_since_seeks_instead_of_reading_the_whole_file(rt: Runtime) -> None:
    """A big file: `--since` near its end reads a few blocks, not the file (the bytes
    the command reads from log files, counted around ``os.pread``)."""
    path = rt.logs / "q" / "big.log"
    path.parent.mkdir(parents=True)
    line = " stdout " + "x" * 90 + "\n"
    with open(path, "w") as fh:
        for block in range(200):  # 200 x 1000 lines of ~126 bytes: 25 MB
            base = block * 1000
            fh.write(
                "".join(
                    f"2026-05-14T{(base + i) // 3600000:02d}:{(base + i) // 60000 % 60:02d}:"
                    f"{(base + i) // 1000 % 60:02d}.{(base + i) % 1000:03d}000Z" + line
                    for i in range(1000)
                )
            )
    size = path.stat().st_size
    python = str(Path(SYSG).parent / "python")
    code = (
        "import os, sys\n"
        "from systemg.cli.main import main\n"
        "real, read = os.pread, [0]\n"
        "def counted(fd, n, offset):\n"
        "    data = real(fd, n, offset)\n"
        "    read[0] += len(data)\n"
        "    return data\n"
        "os.pread = counted\n"
        "rc = main(['logs', '-s', 'q/big', '--since', '2026-05-14T00:03:19.990Z'])\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write(f'READ {read[0]}\\n')\n"
        "sys.exit(rc)\n"
    )
    proc = rt.sysg("-c", code, exe=python, check=True)
    assert len(proc.stdout.splitlines()) == 10
    read = int(proc.stderr.split("READ ")[1].split()[0])
    assert 0 < read < size // 25, (read, size)  # under 1 MB of a 25 MB file
