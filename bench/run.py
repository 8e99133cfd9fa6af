#!/usr/bin/env python3
"""sysg against supervisord on the same workloads, in the same run, as ratios.

    python3 bench/run.py [--quick] [--out bench/results.md] [--sysg-bin DIR]

Installs supervisord into /tmp/sysg-bench-peers and the checkout (non-editable, from a copy)
into /tmp/sysg-bench-sysg, then measures both and prints a Markdown table of medians.
Every process it starts is stopped by pid and every temp dir removed, also on Ctrl-C.
See bench/README.md for what each metric means.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import procs
from peers import Peer, Supervisord, Svc, Sysg, stop_quietly

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_VENV = "/tmp/sysg-bench-peers"
SYSG_VENV = "/tmp/sysg-bench-sysg"
LINE_PAD = 51  # "%07d " + 51 x + "\n" = 60 bytes


@dataclass
class Cfg:
    quick: bool
    reps: int
    n_small: int
    n_big: int
    crash_trials: int
    idle_s: float
    idle_reps: int
    log_lines: int
    status_calls: int
    sysg_bin: str = ""
    sup_bin: str = ""


@dataclass
class Row:
    metric: str
    sysg: float | None
    sup: float | None
    unit: str
    target: str = ""
    check: Callable[[float | None, float | None], bool | None] | None = None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_LIVE: list[Peer] = []  # every peer not yet cleaned up (for Ctrl-C / failure)


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p95(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


# --- setup ------------------------------------------------------------------------------
def install(cfg: Cfg, sysg_bin: str | None) -> None:
    if not os.path.exists(f"{PEERS_VENV}/bin/supervisord"):
        log(f"installing supervisor into {PEERS_VENV}")
        subprocess.run([sys.executable, "-m", "venv", PEERS_VENV], check=True)
        subprocess.run([f"{PEERS_VENV}/bin/pip", "install", "-q", "supervisor"], check=True)
    cfg.sup_bin = f"{PEERS_VENV}/bin"
    if sysg_bin:
        cfg.sysg_bin = sysg_bin
        return
    # A non-editable install of a copy of the checkout: the CLI runs as users would run it,
    # and the checkout gets no build/ or egg-info litter.
    if not os.path.exists(f"{SYSG_VENV}/bin/python"):
        log(f"creating {SYSG_VENV}")
        subprocess.run([sys.executable, "-m", "venv", SYSG_VENV], check=True)
        subprocess.run(
            [f"{SYSG_VENV}/bin/pip", "install", "-q", "PyYAML>=6.0.1,<7", "psutil>=5.9,<8"],
            check=True,
        )
    src = tempfile.mkdtemp(prefix="sgbsrc", dir="/tmp")
    try:
        for item in ("pyproject.toml", "README.md"):
            shutil.copy(os.path.join(REPO, item), src)
        shutil.copytree(
            os.path.join(REPO, "src"),
            os.path.join(src, "src"),
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        log("installing the checkout into the sysg bench venv (non-editable)")
        subprocess.run(
            [f"{SYSG_VENV}/bin/pip", "install", "-q", "--no-deps", "--force-reinstall", src],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(src, ignore_errors=True)
    cfg.sysg_bin = f"{SYSG_VENV}/bin"


def new_peer(kind: str, cfg: Cfg) -> Peer:
    prefix = f"77{random.randrange(10**6):06d}"
    peer: Peer
    if kind == "sysg":
        peer = Sysg("sysg", cfg.sysg_bin, prefix)
    else:
        peer = Supervisord("supervisord", cfg.sup_bin, prefix)
    _LIVE.append(peer)
    return peer


def done_with(peer: Peer) -> None:
    stop_quietly(peer)
    if peer in _LIVE:
        _LIVE.remove(peer)


def sleepers(peer: Peer, n: int) -> list[Svc]:
    return [Svc(f"s{i}", ("sleep", f"{peer.prefix}{i:04d}")) for i in range(n)]


def wait_launcher(proc: subprocess.Popen[bytes], peer: Peer) -> None:
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{peer.name} launch failed ({proc.returncode}): {err.decode()[-2000:]}")


def settle(peer: Peer, n: int) -> None:
    """Wait until the daemon is quiet (its CPU time stops moving) after a start."""
    pid = peer.daemon_pid()
    if pid is None:
        return
    last = -1.0
    for _ in range(50):
        cpu, _ = procs.cpu_and_switches(pid)
        if cpu == last:
            return
        last = cpu
        time.sleep(0.1)


# --- metrics ----------------------------------------------------------------------------
def cold_start(peer: Peer, n: int) -> float:
    peer.configure(sleepers(peer, n))
    t0 = time.perf_counter()
    proc = peer.launch()
    t1 = procs.wait_sleeps(peer.prefix, n, timeout=120, poll=0.004)
    wait_launcher(proc, peer)
    if t1 is None:
        raise RuntimeError(f"{peer.name}: {n} services not running after 120 s")
    return t1 - t0


def bench_cold(
    cfg: Cfg,
    res: Results,
    n: int,
    extra: Callable[[Peer, dict[str, list[float]]], None] | None = None,
) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"sysg": {}, "supervisord": {}}
    for rep in range(cfg.reps):
        for kind in ("sysg", "supervisord") if rep % 2 == 0 else ("supervisord", "sysg"):
            peer = new_peer(kind, cfg)
            try:
                t = cold_start(peer, n)
                out[kind].setdefault("cold", []).append(t)
                log(f"cold start N={n} {kind}: {t * 1000:.0f} ms")
                if extra is not None:
                    extra(peer, out[kind])
            finally:
                done_with(peer)
    return out


def steady_metrics(cfg: Cfg) -> Callable[[Peer, dict[str, list[float]]], None]:
    """Everything measured on a running N=100 instance, after its cold start."""

    def run(peer: Peer, acc: dict[str, list[float]]) -> None:
        n = cfg.n_big
        settle(peer, n)
        pid = peer.daemon_pid()
        assert pid is not None
        rss, pss = procs.memory(pid)
        acc.setdefault("rss", []).append(rss)
        acc.setdefault("pss", []).append(pss)
        total_rss, total_pss = rss, pss
        for helper in peer.helper_pids():
            r, p = procs.memory(helper)
            total_rss += r
            total_pss += p
        acc.setdefault("rss_total", []).append(total_rss)
        acc.setdefault("pss_total", []).append(total_pss)
        # status latency
        argv = peer.status_argv()
        times = []
        for _ in range(cfg.status_calls):
            t0 = time.perf_counter()
            done = peer.run(argv)
            times.append(time.perf_counter() - t0)
            if done.returncode not in (0, 3):
                raise RuntimeError(f"{argv}: {done.returncode} {done.stderr.decode()[-500:]}")
        acc.setdefault("status", []).append(median(times) or 0)
        # stop-all: CLI returned and every service exited
        t0 = time.perf_counter()
        peer.run(peer.stop_all_argv(), check=True)
        t_cli = time.perf_counter()
        t_gone = procs.wait_no_sleeps(peer.prefix, 60)
        if t_gone is None:
            raise RuntimeError(f"{peer.name}: services still running after stop-all")
        acc.setdefault("stop_all", []).append(max(t_cli, t_gone) - t0)
        acc.setdefault("stop_all_cli", []).append(t_cli - t0)
        # start again, then shutdown: signal -> supervisor gone and every service gone
        peer.run(peer.start_all_argv(), check=True)
        if procs.wait_sleeps(peer.prefix, n, 60) is None:
            raise RuntimeError(f"{peer.name}: restart after stop-all failed")
        settle(peer, n)
        helpers = peer.helper_pids()
        services = list(procs.scan_sleeps(peer.prefix).values())
        t0 = time.perf_counter()
        daemon = peer.signal_shutdown()
        t_end = procs.wait_gone([daemon, *services], 120)
        if t_end is None:
            raise RuntimeError(f"{peer.name}: did not shut down in 120 s")
        acc.setdefault("shutdown", []).append(t_end - t0)
        procs.wait_gone(helpers, 5)
        procs.reap()

    return run


def bench_crash(cfg: Cfg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for kind in ("sysg", "supervisord"):
        peer = new_peer(kind, cfg)
        try:
            peer.configure(sleepers(peer, 1))
            wait_launcher(peer.launch(), peer) if kind == "sysg" else peer.launch().wait()
            if procs.wait_sleeps(peer.prefix, 1, 30) is None:
                raise RuntimeError(f"{kind}: crash service did not start")
            settle(peer, 1)
            arg = f"{peer.prefix}0000"
            times = []
            for _ in range(cfg.crash_trials):
                old = procs.scan_sleeps(peer.prefix)[arg]
                before = {e for e in os.listdir("/proc") if e.isdigit()}
                t0 = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                t1 = procs.wait_new_pid(arg, before, 30)
                if t1 is None:
                    raise RuntimeError(f"{kind}: not restarted within 30 s")
                times.append(t1 - t0)
                time.sleep(0.05)
            out[kind] = times
            log(f"crash->running {kind}: median {median(times) * 1000:.2f} ms")  # type: ignore[operator]
        finally:
            done_with(peer)
    return out


def write_lines(path: str, count: int) -> int:
    pad = b"x" * LINE_PAD
    with open(path, "wb") as f:
        for start in range(0, count, 100_000):
            f.write(
                b"".join(b"%07d %s\n" % (i, pad) for i in range(start, min(count, start + 100_000)))
            )
    return os.path.getsize(path)


def verify_log(path: str, count: int, tagged: bool) -> tuple[int, int, int]:
    """(lost, corrupt, duplicate) lines; out-of-order lines count as corrupt."""
    pad = b"x" * LINE_PAD
    seen = bytearray(count)
    corrupt = dup = 0
    expect = 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if tagged:
                parts = line.split(b" ", 2)
                if len(parts) != 3 or parts[1] != b"stdout":
                    corrupt += 1
                    continue
                line = parts[2]
            num, _, rest = line.partition(b" ")
            if rest != pad or not num.isdigit() or int(num) >= count:
                corrupt += 1
                continue
            i = int(num)
            if seen[i]:
                dup += 1
                continue
            seen[i] = 1
            if i != expect:
                corrupt += 1
            expect = i + 1
    lost = count - sum(seen)
    return lost, corrupt, dup


def bench_logs(cfg: Cfg, res: Results) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"sysg": {}, "supervisord": {}}
    data_dir = tempfile.mkdtemp(prefix="sgblog", dir="/tmp")
    try:
        data = os.path.join(data_dir, "lines")
        size = write_lines(data, cfg.log_lines)
        last = b"%07d %s\n" % (cfg.log_lines - 1, b"x" * LINE_PAD)
        reps = max(3, cfg.reps)
        for rep in range(reps):
            for kind in ("sysg", "supervisord") if rep % 2 == 0 else ("supervisord", "sysg"):
                peer = new_peer(kind, cfg)
                try:
                    marker = os.path.join(peer.root, "t0")
                    # The service stamps its own start, then becomes `cat`: the clock starts
                    # when output can first appear, so CLI and boot time are not counted.
                    script = f"date +%s.%N > {marker}; exec cat {data}"
                    peer.configure([Svc("w", ("sh", "-c", script), restart=False, big_log=True)])
                    proc = peer.launch()
                    logfile = peer.log_file("w")
                    deadline = time.time() + 120
                    end = None
                    last_size = -1
                    while time.time() < deadline:
                        try:
                            st = os.stat(logfile)
                        except FileNotFoundError:
                            time.sleep(0.001)
                            continue
                        if st.st_size != last_size:
                            last_size = st.st_size
                            with open(logfile, "rb") as f:
                                f.seek(max(0, st.st_size - len(last)))
                                if f.read() == last:
                                    end = time.time()
                                    break
                        time.sleep(0.0005)
                    proc.wait(timeout=60)
                    if end is None:
                        raise RuntimeError(f"{kind}: log incomplete after 120 s")
                    with open(marker) as f:
                        t0 = float(f.read())
                    elapsed = end - t0
                    lost, corrupt, dup = verify_log(logfile, cfg.log_lines, kind == "sysg")
                    acc = out[kind]
                    acc.setdefault("time", []).append(elapsed)
                    acc.setdefault("mbs", []).append(size / elapsed / 1e6)
                    acc.setdefault("bad", []).append(lost + corrupt + dup)
                    acc.setdefault("lost", []).append(lost)
                    acc.setdefault("corrupt", []).append(corrupt)
                    acc.setdefault("dup", []).append(dup)
                    log(f"log {kind}: {elapsed * 1000:.0f} ms, bad {lost}/{corrupt}/{dup}")
                finally:
                    done_with(peer)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def bench_idle(cfg: Cfg) -> dict[str, dict[str, list[float]]]:
    """Both N=100 instances idle side by side; CPU and wake-ups over the same windows."""
    out: dict[str, dict[str, list[float]]] = {"sysg": {}, "supervisord": {}}
    peers = [new_peer("sysg", cfg), new_peer("supervisord", cfg)]
    try:
        for peer in peers:
            peer.configure(sleepers(peer, cfg.n_big))
            proc = peer.launch()
            wait_launcher(proc, peer)
            if procs.wait_sleeps(peer.prefix, cfg.n_big, 60) is None:
                raise RuntimeError(f"{peer.name}: services did not start")
        time.sleep(1.0)
        for peer in peers:
            settle(peer, cfg.n_big)
        for _ in range(cfg.idle_reps):
            before = {}
            for peer in peers:
                pids = [peer.daemon_pid(), *peer.helper_pids()]
                before[peer.name] = [procs.cpu_and_switches(p) for p in pids if p]
            time.sleep(cfg.idle_s)
            for peer in peers:
                pids = [peer.daemon_pid(), *peer.helper_pids()]
                after = [procs.cpu_and_switches(p) for p in pids if p]
                cpu = sum(a[0] - b[0] for a, b in zip(after, before[peer.name], strict=True))
                sw = sum(a[1] - b[1] for a, b in zip(after, before[peer.name], strict=True))
                # CPU normalised to a 20 s window so the quick mode reads the same.
                out[peer.name].setdefault("cpu", []).append(cpu * 1000 * 20 / cfg.idle_s)
                out[peer.name].setdefault("wake", []).append(sw / cfg.idle_s)
            log(f"idle window done: { {k: (v['cpu'][-1], v['wake'][-1]) for k, v in out.items()} }")
    finally:
        for peer in peers:
            done_with(peer)
    return out


def bench_version(cfg: Cfg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"sysg": [], "supervisord": []}
    argvs = {
        "sysg": [f"{cfg.sysg_bin}/sysg", "--version"],
        "supervisord": [f"{cfg.sup_bin}/supervisord", "--version"],
    }
    for _ in range(cfg.status_calls):
        for kind, argv in argvs.items():
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            out[kind].append(time.perf_counter() - t0)
    return out


def bench_privileged(cfg: Cfg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"plain": [], "priv": []}
    n = cfg.n_big
    for rep in range(cfg.reps):
        for kind in ("plain", "priv") if rep % 2 == 0 else ("priv", "plain"):
            peer = new_peer("sysg", cfg)
            try:
                services = [
                    Svc(s.name, s.argv, privileged=kind == "priv") for s in sleepers(peer, n)
                ]
                peer.configure(services)
                t0 = time.perf_counter()
                proc = peer.launch()
                t1 = procs.wait_sleeps(peer.prefix, n, 120, poll=0.004)
                wait_launcher(proc, peer)
                if t1 is None:
                    raise RuntimeError(f"{kind}: services did not start")
                if kind == "priv":
                    check_privileged(peer)
                out[kind].append(t1 - t0)
                log(f"spawn {kind} N={n}: {(t1 - t0) * 1000:.0f} ms")
            finally:
                done_with(peer)
    return out


def check_privileged(peer: Peer) -> None:
    """The plan really applied (one service checked through /proc)."""
    pid = next(iter(procs.scan_sleeps(peer.prefix).values()))
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    if "\nUid:\t65534" not in status or "Cpus_allowed_list:\t0\n" not in status:
        raise RuntimeError(f"privileged plan not applied to pid {pid}:\n{status}")


# --- report -----------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v * 1000:.0f} ms"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "MB/s":
        return f"{v:.0f} MB/s"
    if unit == "/s":
        return f"{v:.2f}/s"
    if unit == "ms/20s":
        return f"{v:.1f} ms"
    if unit == "count":
        return f"{v:.0f}"
    return f"{v:.3g} {unit}"


def machine_facts(load: str) -> list[str]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return [
        f"kernel {platform.release()}, {os.cpu_count()} CPUs ({cpu_model})",
        f"python {platform.python_version()}, loadavg at start {load}",
    ]


def table(res: Results, facts: list[str], cfg: Cfg, versions: dict[str, str]) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S')} ({'--quick' if cfg.quick else 'full'}; "
        f"{cfg.reps} repeats, medians): {versions['sysg']} vs {versions['supervisord']}.",
        "",
        *[f"- {f}" for f in facts],
        "",
        "| metric | sysg | supervisord | ratio (sysg/supervisord) | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    met_all = True
    for row in res.rows:
        r = ratio(row.sysg, row.sup)
        ok = row.check(row.sysg, row.sup) if row.check else None
        if ok is False:
            met_all = False
        mark = "" if ok is None else ("yes" if ok else "**no**")
        rtxt = "-" if r is None else f"{r:.2f}x"
        lines.append(
            f"| {row.metric} | {fmt(row.sysg, row.unit)} | {fmt(row.sup, row.unit)} | {rtxt} "
            f"| {row.target} | {mark} |"
        )
    lines.append("")
    lines += [f"- {n}" for n in res.notes]
    lines.append(f"\nAll targets met: {'yes' if met_all else 'no'}.")
    return "\n".join(lines) + "\n"


def le_ratio(limit: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda a, b: None if a is None or b is None else a <= limit * b


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="fewer repeats and a smaller log (< 3 min)"
    )
    ap.add_argument("--out", help="also write the Markdown table to this file")
    ap.add_argument(
        "--sysg-bin", help="directory holding the sysg to test (default: install the checkout)"
    )
    args = ap.parse_args()
    if args.quick:
        cfg = Cfg(True, 3, 10, 100, 10, 3.0, 3, 200_000, 10)
    else:
        cfg = Cfg(False, 3, 10, 100, 20, 20.0, 3, 1_000_000, 20)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    facts = machine_facts(load)
    res = Results()
    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up like Ctrl-C
    started = time.time()
    try:
        install(cfg, args.sysg_bin)
        versions = {
            "sysg": subprocess.run(
                [f"{cfg.sysg_bin}/sysg", "--version"], capture_output=True, text=True, check=True
            ).stdout.strip(),
            "supervisord": "supervisord "
            + subprocess.run(
                [f"{cfg.sup_bin}/supervisord", "--version"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip(),
        }
        log(f"{versions} ; {facts}")
        small = bench_cold(cfg, res, cfg.n_small)
        big = bench_cold(cfg, res, cfg.n_big, steady_metrics(cfg))
        crash = bench_crash(cfg)
        logs_ = bench_logs(cfg, res)
        idle = bench_idle(cfg)
        ver = bench_version(cfg)
        priv = bench_privileged(cfg) if os.geteuid() == 0 else None
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        for peer in list(_LIVE):
            done_with(peer)
        procs.reap()

    def m(d: dict[str, list[float]], key: str) -> float | None:
        return median(d.get(key, []))

    s_big, u_big = big["sysg"], big["supervisord"]
    rows = res.rows
    rows.append(
        Row(
            f"cold start N={cfg.n_small}",
            m(small["sysg"], "cold"),
            m(small["supervisord"], "cold"),
            "ms",
        )
    )
    rows.append(
        Row(
            f"cold start N={cfg.n_big}",
            m(s_big, "cold"),
            m(u_big, "cold"),
            "ms",
            "≤ 0.25x",
            le_ratio(0.25),
        )
    )
    cs, cu = crash["sysg"], crash["supervisord"]
    rows.append(
        Row(
            "crash → running, median",
            median(cs),
            median(cu),
            "ms",
            "≤ 5 ms",
            lambda a, b: None if a is None else a <= 0.005,
        )
    )
    rows.append(Row(f"crash → running, p95 ({len(cs)} kills)", p95(cs), p95(cu), "ms"))
    rows.append(
        Row(
            f"supervisor RSS, N={cfg.n_big}",
            m(s_big, "rss"),
            m(u_big, "rss"),
            "MiB",
            "≤ 0.8x",
            le_ratio(0.8),
        )
    )
    rows.append(Row(f"supervisor PSS, N={cfg.n_big}", m(s_big, "pss"), m(u_big, "pss"), "MiB"))
    rows.append(
        Row("RSS incl. sysg fd holder", m(s_big, "rss_total"), m(u_big, "rss_total"), "MiB")
    )
    rows.append(
        Row("PSS incl. sysg fd holder", m(s_big, "pss_total"), m(u_big, "pss_total"), "MiB")
    )
    isy, isu = idle["sysg"], idle["supervisord"]
    rows.append(
        Row(
            f"idle CPU per 20 s, N={cfg.n_big}",
            m(isy, "cpu"),
            m(isu, "cpu"),
            "ms/20s",
            "≤ 0.3x",
            le_ratio(0.3),
        )
    )
    rows.append(
        Row(
            "idle wake-ups",
            m(isy, "wake"),
            m(isu, "wake"),
            "/s",
            "≤ 0.2/s",
            lambda a, b: None if a is None else a <= 0.2,
        )
    )
    ls, lu = logs_["sysg"], logs_["supervisord"]
    rows.append(Row(f"log {cfg.log_lines:,} lines: time", m(ls, "time"), m(lu, "time"), "ms"))
    rows.append(
        Row(
            "log throughput",
            m(ls, "mbs"),
            m(lu, "mbs"),
            "MB/s",
            "≥ 1.0x",
            lambda a, b: None if a is None or b is None else a >= b,
        )
    )
    rows.append(
        Row(
            "log lost+corrupt+dup (max over runs)",
            max(ls.get("bad", [0])),
            max(lu.get("bad", [0])),
            "count",
            "0",
            lambda a, b: None if a is None else a == 0,
        )
    )
    rows.append(
        Row(
            f"status CLI, N={cfg.n_big}",
            m(s_big, "status"),
            m(u_big, "status"),
            "ms",
            "≤ 0.3x",
            le_ratio(0.3),
        )
    )
    rows.append(Row("--version CLI", median(ver["sysg"]), median(ver["supervisord"]), "ms"))
    rows.append(
        Row(
            f"stop-all N={cfg.n_big} (CLI returned, all exited)",
            m(s_big, "stop_all"),
            m(u_big, "stop_all"),
            "ms",
            "≤ 0.25x",
            le_ratio(0.25),
        )
    )
    rows.append(
        Row(
            f"shutdown N={cfg.n_big} (SIGTERM → all gone)",
            m(s_big, "shutdown"),
            m(u_big, "shutdown"),
            "ms",
            "≤ 0.1x",
            le_ratio(0.1),
        )
    )
    if priv is not None:
        over = None
        if priv["plain"] and priv["priv"]:
            over = (median(priv["priv"]) - median(priv["plain"])) / cfg.n_big  # type: ignore[operator]
        rows.append(
            Row(
                f"privileged spawn overhead (N={cfg.n_big}, per service)",
                over,
                None,
                "ms",
                "≤ 1 ms",
                lambda a, b: None if a is None else a <= 0.001,
            )
        )
        res.notes.append(
            f"privileged vs plain cold start N={cfg.n_big}: "
            f"{fmt(median(priv['priv']), 'ms')} vs {fmt(median(priv['plain']), 'ms')} "
            "(user nobody, group+supplementary nogroup, nofile/nproc/memlock, nice 5, "
            "affinity [0], CAP_NET_BIND_SERVICE, cgroup memory.max under a temp-dir root)"
        )
    res.notes.append(
        f"stop-all CLI alone: sysg {fmt(m(s_big, 'stop_all_cli'), 'ms')}, "
        f"supervisorctl {fmt(m(u_big, 'stop_all_cli'), 'ms')}"
    )
    res.notes.append(f"raw crash samples (ms): sysg {[round(x * 1000, 2) for x in cs]}")
    res.notes.append(f"wall time of this run: {time.time() - started:.0f} s")
    text = table(res, facts, cfg, versions)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
