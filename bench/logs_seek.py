#!/usr/bin/env python3
"""``sysg logs`` on a big log file, against ``grep`` and ``tail`` on the same file, same run.

    python3 bench/logs_seek.py [--size-mib 1024] [--reps 3] [--sysg PATH] [--keep]

Writes one service log of ``--size-mib`` MiB in the stored format (100-byte lines, one
capture time per line, 1 ms apart) under a temp dir, then times (median of ``--reps``):

* ``sysg logs -s b/big --since T`` with T 1000 lines before the end (a binary search,
  then 1000 lines) vs ``grep ^T…`` (which must read the whole file to find them) and
  ``tail -n 1000`` (which reads from the end, as sysg's seek does);
* ``sysg logs -s b/big -n 100`` vs ``tail -n 100``;
* once, the full read ``sysg logs -s b/big -a`` vs ``grep -c .`` (the cost of not seeking);
* ``sysg logs --path``: the CLI's fixed start-up cost (no log read), also subtracted from
  each sysg time in a column of its own, so what the seek itself costs is visible.

Output: a Markdown table with the ratios. Every number comes from this run; compare within
a run only. The temp dir is removed at the end (``--keep`` keeps the file for a rerun).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LINE_BYTES = 100
_PAD = LINE_BYTES - 27 - len(" stdout ") - len("00000000 ") - 1  # "%08d ", the newline


def stamp(i: int) -> str:
    """Capture time of line ``i``: 1 ms apart from 2026-05-14T00:00:00Z (ok to ~11 days)."""
    sec, ms = divmod(i, 1000)
    day, sec = divmod(sec, 86400)
    return (
        f"2026-05-{14 + day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        f".{ms * 1000:06d}Z"
    )


def write_file(path: str, size: int) -> int:
    """Write about ``size`` bytes of stored lines; return the number of lines."""
    lines = size // LINE_BYTES // 1000 * 1000  # the last 1000 lines: one whole second
    pad = "x" * _PAD
    with open(path, "w") as fh:
        for start in range(0, lines, 100_000):
            stop = min(lines, start + 100_000)
            fh.write("".join(f"{stamp(i)} stdout {i:08d} {pad}\n" for i in range(start, stop)))
    return lines


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds to run ``argv`` (stdout read and counted, then dropped) and its line count."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, check=True)
    elapsed = time.perf_counter() - t0
    return elapsed, proc.stdout.count(b"\n")


def median(argv: list[str], env: dict[str, str], reps: int) -> tuple[float, int]:
    runs = [timed(argv, env) for _ in range(reps)]
    counts = {n for _, n in runs}
    assert len(counts) == 1, (argv, counts)
    return statistics.median(t for t, _ in runs), counts.pop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sysg", default=os.path.join(os.path.dirname(sys.executable), "sysg"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (path printed)")
    ap.add_argument("--skip-full", action="store_true", help="skip the full-read row")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="sg-logbench-", dir="/tmp")
    try:
        logs = os.path.join(root, "logs")
        os.makedirs(os.path.join(logs, "b"))
        path = os.path.join(logs, "b", "big.log")
        t0 = time.perf_counter()
        lines = write_file(path, args.size_mib * 1024 * 1024)
        size = os.path.getsize(path)
        sys.stderr.write(f"wrote {size / 2**20:.0f} MiB ({lines} lines) in ")
        sys.stderr.write(f"{time.perf_counter() - t0:.1f} s\n")
        env = dict(os.environ, SYSTEMG_LOG_DIR=logs, SYSTEMG_STATE_DIR=os.path.join(root, "s"))
        since = stamp(lines - 1000)
        # grep: the lines from `since` on share its prefix up to the second (1000 lines of
        # 1 ms each span one second when `since` is on a second boundary).
        prefix = since[:19]
        rows: list[tuple[str, float, str, float]] = []
        # The fixed cost of the CLI (interpreter, imports, mode checks), reading no log.
        startup = median([args.sysg, "logs", "--path"], env, args.reps)[0]
        sysg_since = median([args.sysg, "logs", "-s", "b/big", "--since", since], env, args.reps)
        grep_since = median(["grep", f"^{prefix}", path], env, args.reps)
        tail_1000 = median(["tail", "-n", "1000", path], env, args.reps)
        rows.append(("--since (last 1000 lines)", sysg_since[0], "grep ^TIME", grep_since[0]))
        rows.append(("--since (last 1000 lines)", sysg_since[0], "tail -n 1000", tail_1000[0]))
        counts = [sysg_since[1], grep_since[1], tail_1000[1]]
        sysg_n = median([args.sysg, "logs", "-s", "b/big", "-n", "100"], env, args.reps)
        tail_n = median(["tail", "-n", "100", path], env, args.reps)
        rows.append(("-n 100", sysg_n[0], "tail -n 100", tail_n[0]))
        counts += [sysg_n[1], tail_n[1]]
        if not args.skip_full:
            full = timed([args.sysg, "logs", "-s", "b/big", "-a"], env)
            grep_all = timed(["grep", "-c", ".", path], env)
            rows.append(("-a (full read, no seek)", full[0], "grep -c .", grep_all[0]))
            assert full[1] == lines, (full[1], lines)
        version = subprocess.run(
            [args.sysg, "--version"], check=True, capture_output=True, text=True
        ).stdout
        print(f"`sysg logs` on a {size / 2**20:.0f} MiB log ({lines} lines), {version.strip()}, ")
        print(f"{os.cpu_count()} CPUs, loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}, ")
        print(f"median of {args.reps} (full read: once)\n")
        print(
            "| sysg logs | time | minus CLI start | peer | time | ratio (sysg/peer) "
            "| ratio minus CLI start |"
        )
        print("|---|---|---|---|---|---|---|")
        print(f"| `--path` (CLI start, no log read) | {startup * 1000:.1f} ms | | | | | |")
        for what, t_sysg, peer, t_peer in rows:
            work = max(0.0, t_sysg - startup)
            print(
                f"| `{what}` | {t_sysg * 1000:.1f} ms | {work * 1000:.1f} ms | `{peer}` "
                f"| {t_peer * 1000:.1f} ms | {t_sysg / t_peer:.2f}x | {work / t_peer:.2f}x |"
            )
        print(f"\nlines shown (sysg --since, grep, tail -n 1000, sysg -n, tail -n): {counts}")
        assert counts == [1000, 1000, 1000, 100, 100], counts
    finally:
        if args.keep:
            sys.stderr.write(f"kept {root}\n")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
