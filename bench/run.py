#!/usr/bin/env python3
"""sysg against supervisord, s6 and runit on the same workloads, in the same run, as ratios.

    python3 bench/run.py [--quick] [--out bench/results.md] [--sysg-bin DIR]

Installs supervisord into /tmp/sysg-bench-peers, s6 and runit from apt when missing (root),
and the checkout (non-editable, from a copy) into /tmp/sysg-bench-sysg, then measures them
all and prints a Markdown table of medians (ratios to supervisord, the issue's reference).
Every process it starts is stopped by pid and every temp dir removed, also on Ctrl-C.
See bench/README.md for what each metric means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import procs
from peers import S6, Peer, Runit, Supervisord, Svc, Sysg, stop_quietly

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_VENV = "/tmp/sysg-bench-peers"
SYSG_VENV = "/tmp/sysg-bench-sysg"
LINE_PAD = 51  # "%07d " + 51 x + "\n" = 60 bytes
PEERS = ("sysg", "supervisord", "s6", "runit")
C_PEERS = ("s6", "runit")


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
    peers: tuple[str, ...] = PEERS
    scale_ns: tuple[int, ...] = (10, 100, 1000)
    scale_peers: tuple[str, ...] = PEERS  # peers measured at the largest N
    scale_timeout: float = 60.0  # a cold start at N=1000 slower than this is noted, not waited


@dataclass
class Row:
    metric: str
    sysg: float | None
    sup: float | None
    unit: str
    target: str = ""
    check: Callable[[float | None, float | None], bool | None] | None = None
    note: str = ""
    sysg_only: bool = False  # supervisord has no such feature: its columns read "n/a"
    # s6 / runit values; a peer missing here has no such feature (or the row is not run
    # for it) and reads "n/a"
    others: dict[str, float | None] = field(default_factory=dict)
    le_peers: tuple[str, ...] = ()  # the target also wants sysg <= these peers


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
    wanted = [k for k in C_PEERS if k in cfg.peers]
    if wanted and not (shutil.which("s6-svscan") and shutil.which("runsvdir")):
        if os.geteuid() != 0:
            raise RuntimeError("s6/runit missing and not root: install them or pass --peers")
        log("installing s6 and runit (apt-get)")
        apt = ["apt-get", "install", "-y", "--no-install-recommends", "s6", "runit"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL, check=False).returncode:
            subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=True)
            subprocess.run(apt, env=env, stdout=subprocess.DEVNULL, check=True)
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
    # The runtime dependencies the checkout declares (a no-op once satisfied; a new one,
    # e.g. h11 for HTTP probes, is picked up), then the checkout itself without them.
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    subprocess.run([f"{SYSG_VENV}/bin/pip", "install", "-q", *deps], check=True)
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
    elif kind == "s6":
        peer = S6("s6", "", prefix)
    elif kind == "runit":
        peer = Runit("runit", "", prefix)
    else:
        peer = Supervisord("supervisord", cfg.sup_bin, prefix)
    _LIVE.append(peer)
    return peer


def rotation(kinds: tuple[str, ...], rep: int) -> tuple[str, ...]:
    """The peers in a different order each repeat (no one always runs first)."""
    k = rep % len(kinds)
    return kinds[k:] + kinds[:k]


def extra_procs(peer: Peer, n: int) -> float:
    """Processes per service beyond the service: everything descending from the supervisor
    and its helpers (sysg's fd holder and spawn helper; s6-supervise / runsv), minus the N
    service sleeps, the supervisor itself and the helpers it has once whatever N is (sysg's
    two; none for the others), divided by N."""
    daemon = peer.daemon_pid()
    everything = procs.tree([daemon or 0, *peer.helper_pids()])
    services = set(procs.scan_sleeps(peer.prefix).values())
    return len(everything - services - {daemon} - set(peer.fixed_helper_pids())) / n


def done_with(peer: Peer) -> None:
    stop_quietly(peer)
    if peer in _LIVE:
        _LIVE.remove(peer)


def sleepers(peer: Peer, n: int) -> list[Svc]:
    return [Svc(f"s{i}", ("sleep", f"{peer.prefix}{i:04d}")) for i in range(n)]


# A notify service as light as `sleep`: python3 -S sends READY=1 from the main pid, then
# execs the `sleep` the scans look for (no resident interpreter for 100 services).
NOTIFY_PY = (
    "import os,socket;"
    "socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM).sendto(b'READY=1',os.environ['NOTIFY_SOCKET']);"
    "os.execvp('sleep',['sleep','{arg}'])"
)


def notifiers(peer: Peer, n: int) -> list[Svc]:
    return [
        Svc(s.name, ("python3", "-S", "-c", NOTIFY_PY.format(arg=s.argv[1])), notify=True)
        for s in sleepers(peer, n)
    ]


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
    out: dict[str, dict[str, list[float]]] = {k: {} for k in cfg.peers}
    for rep in range(cfg.reps):
        for kind in rotation(cfg.peers, rep):
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
        acc.setdefault("procs", []).append(extra_procs(peer, n))
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


def bench_scale(cfg: Cfg, res: Results) -> dict[int, dict[str, dict[str, list[float]]]]:
    """N = 10, 100, 1000 (``cfg.scale_ns``): cold start, supervisor CPU per service until
    all N run, RSS/PSS with helpers, processes per service, ``status`` and stop-all.

    CPU: schedstat (ns) of the supervisor and its helpers (sysg's fd holder, every
    s6-supervise / runsv) read as soon as all N run, plus the launcher CLI's own CPU
    (``getrusage(RUSAGE_CHILDREN)`` across its wait: sysg's and supervisord's CLIs
    daemonize), divided by N. At the largest N only ``cfg.scale_peers`` run, once in
    quick mode; a start slower than ``cfg.scale_timeout`` (sysg: 3 times that) is noted
    and skipped.
    """
    out: dict[int, dict[str, dict[str, list[float]]]] = {}
    big = max(cfg.scale_ns)
    for n in cfg.scale_ns:
        kinds = tuple(k for k in cfg.peers if n < big or k in cfg.scale_peers)
        out[n] = {k: {} for k in kinds}
        reps = 1 if (n == big and cfg.quick) else cfg.reps
        calls = cfg.status_calls if n < big else 3
        for rep in range(reps):
            for kind in rotation(kinds, rep):
                peer = new_peer(kind, cfg)
                try:
                    acc = out[n][kind]
                    peer.configure(sleepers(peer, n))
                    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    proc = peer.launch()
                    # sysg, the one under test, gets longer before its sample is dropped
                    limit = cfg.scale_timeout * (3 if kind == "sysg" else 1)
                    t1 = procs.wait_sleeps(peer.prefix, n, limit, poll=0.004)
                    if t1 is None:
                        res.notes.append(
                            f"scale N={n}: {kind} had not started all {n} services after "
                            f"{limit:.0f} s (run {rep + 1}): not counted"
                        )
                        log(f"scale N={n} {kind}: not all running after {limit:.0f} s")
                        continue
                    pid = peer.daemon_pid()
                    cpu = sum(
                        procs.cpu_and_switches(p)[0]
                        for p in (pid, *peer.helper_pids())
                        if p and procs.pid_alive(p)
                    )
                    wait_launcher(proc, peer)
                    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu += (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                    acc.setdefault("cold", []).append(t1 - t0)
                    acc.setdefault("cpu_per", []).append(cpu / n)
                    settle(peer, n)
                    pid = peer.daemon_pid()
                    assert pid is not None
                    rss, pss = procs.memory(pid)
                    for helper in peer.helper_pids():
                        r, q = procs.memory(helper)
                        rss += r
                        pss += q
                    acc.setdefault("rss_total", []).append(rss)
                    acc.setdefault("pss_total", []).append(pss)
                    acc.setdefault("procs", []).append(extra_procs(peer, n))
                    times = []
                    for _ in range(calls):
                        ts = time.perf_counter()
                        done = peer.run(peer.status_argv())
                        times.append(time.perf_counter() - ts)
                        if done.returncode not in (0, 3):
                            raise RuntimeError(f"{kind} status: {done.returncode}")
                    acc.setdefault("status", []).append(median(times) or 0)
                    ts = time.perf_counter()
                    peer.run(peer.stop_all_argv(), check=True)
                    t_cli = time.perf_counter()
                    t_gone = procs.wait_no_sleeps(peer.prefix, 120)
                    if t_gone is None:
                        raise RuntimeError(f"{kind}: services still running after stop-all")
                    acc.setdefault("stop_all", []).append(max(t_cli, t_gone) - ts)
                    log(
                        f"scale N={n} {kind}: cold {(t1 - t0) * 1000:.0f} ms, "
                        f"{cpu / n * 1e6:.0f} µs CPU/service, PSS {pss:.1f} MiB, status "
                        f"{acc['status'][-1] * 1000:.0f} ms, stop-all "
                        f"{acc['stop_all'][-1] * 1000:.0f} ms"
                    )
                finally:
                    done_with(peer)
    return out


def bench_crash(cfg: Cfg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for kind in cfg.peers:
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
                time.sleep(peer.crash_gap)
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


def verify_log(path: str, count: int, skip: int = 0, tag: bytes = b"") -> tuple[int, int, int]:
    """(lost, corrupt, duplicate) lines; out-of-order lines count as corrupt. Each stored
    line has ``skip`` space-separated prefix fields (timestamps; the last one must be
    ``tag`` if given: sysg's ``<ts> stdout <line>``) before the payload."""
    pad = b"x" * LINE_PAD
    seen = bytearray(count)
    corrupt = dup = 0
    expect = 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if skip:
                parts = line.split(b" ", skip)
                if len(parts) != skip + 1 or (tag and parts[skip - 1] != tag):
                    corrupt += 1
                    continue
                line = parts[skip]
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
    out: dict[str, dict[str, list[float]]] = {k: {} for k in cfg.peers}
    data_dir = tempfile.mkdtemp(prefix="sgblog", dir="/tmp")
    try:
        data = os.path.join(data_dir, "lines")
        size = write_lines(data, cfg.log_lines)
        last = b"%07d %s\n" % (cfg.log_lines - 1, b"x" * LINE_PAD)
        reps = max(3, cfg.reps)
        for rep in range(reps):
            for kind in rotation(cfg.peers, rep):
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
                    lost, corrupt, dup = verify_log(
                        logfile, cfg.log_lines, peer.log_skip, peer.log_tag
                    )
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
    """N=100 instances idle side by side; CPU and wake-ups over the same windows.

    A third instance, sysg with 100 ``notify: true`` services that all sent READY=1, shows
    that readiness leaves nothing armed once everything is up (0 wake-ups/s). A fourth,
    sysg with the 100 sleeps and 100 cron jobs not due in the window (each due at New Year,
    UTC), that scheduled jobs cost no wake-up until one is due (docs/manifest.md, "Scheduled jobs").
    """
    out: dict[str, dict[str, list[float]]] = {
        **{k: {} for k in cfg.peers},
        "sysg-notify": {},
        "sysg-cron": {},
    }
    notify = new_peer("sysg", cfg)
    notify.name = "sysg-notify"
    cron = new_peer("sysg", cfg)
    cron.name = "sysg-cron"
    peers = [*(new_peer(k, cfg) for k in cfg.peers), notify, cron]
    jobs = [Svc(f"job{i}", ("/bin/true",), cron="0 0 0 1 1 *") for i in range(cfg.n_big)]
    try:
        for peer in peers:
            peer.configure(
                notifiers(peer, cfg.n_big)
                if peer is notify
                else sleepers(peer, cfg.n_big) + (jobs if peer is cron else [])
            )
            proc = peer.launch()
            wait_launcher(proc, peer)
            if procs.wait_sleeps(peer.prefix, cfg.n_big, 60) is None:
                raise RuntimeError(f"{peer.name}: services did not start")
        check_health(notify, cfg.n_big, "healthy")
        time.sleep(1.0)
        for peer in peers:
            settle(peer, cfg.n_big)
        check_queued(cron, cfg.n_big)
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


def check_queued(peer: Peer, n: int) -> None:
    """``n`` cron jobs of ``peer`` are scheduled (state queued, a next run)."""
    done = peer.run([*peer.status_argv(), "--format", "json"])
    jobs = [u for u in json.loads(done.stdout)["units"] if u.get("cron")]
    queued = [u for u in jobs if u["state"] == "queued" and u["cron"]["next_run"]]
    if len(queued) != n:
        raise RuntimeError(f"{peer.name}: {len(queued)} of {len(jobs)} cron jobs queued, not {n}")


def check_health(peer: Peer, n: int, want: str) -> None:
    """Every unit of ``peer`` is running with health ``want`` (via `sysg status --format json`)."""
    done = peer.run([*peer.status_argv(), "--format", "json"])
    units = json.loads(done.stdout)["units"]
    bad = [u["name"] for u in units if u["state"] != "running" or u["health"] != want]
    if len(units) != n or bad:
        raise RuntimeError(f"{peer.name}: {len(units)} units, not running+{want}: {bad[:5]}")


def watch_threads(proc: subprocess.Popen[bytes], peer: Peer) -> int:
    """Until the `sysg start` CLI returns (all up): the most tasks the supervisor had."""
    most = 0
    while proc.poll() is None:
        pid = peer.daemon_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                most = max(most, len(os.listdir(f"/proc/{pid}/task")))
        time.sleep(0.01)
    return most


def drain(lsock: socket.socket) -> int:
    """Accept (and close) every connection queued on the bench's listener: probe attempts."""
    count = 0
    while True:
        try:
            conn, _ = lsock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def probe_window(cfg: Cfg, pid: int) -> tuple[float, int, int]:
    """One window of ``idle_s`` on the supervisor ``pid``: its CPU seconds and context
    switches over it, and the most tasks it had (sampled every 250 ms)."""
    threads = 0
    cpu0, sw0 = procs.cpu_and_switches(pid)
    deadline = time.perf_counter() + cfg.idle_s
    while time.perf_counter() < deadline:
        time.sleep(0.25)
        threads = max(threads, len(os.listdir(f"/proc/{pid}/task")))
    cpu1, sw1 = procs.cpu_and_switches(pid)
    return cpu1 - cpu0, sw1 - sw0, threads


def liveness_window(
    cfg: Cfg, peer: Peer, n: int, lsock: socket.socket, acc: dict[str, list[float]]
) -> int:
    """One window over N services up with a passing liveness probe each; the most threads."""
    if len(procs.scan_sleeps(peer.prefix)) < n:
        raise RuntimeError(f"probes liveness: not all {n} services running")
    time.sleep(1.5)
    pid = peer.daemon_pid()
    assert pid is not None
    drain(lsock)
    cpu, switches, threads = probe_window(cfg, pid)
    attempts = drain(lsock)
    if attempts < n:
        raise RuntimeError(f"probes liveness: {attempts} attempts in the window, expected ~{n}/s")
    acc.setdefault("cpu_per", []).append(cpu / attempts)
    acc.setdefault("wake", []).append(switches / cfg.idle_s)
    acc.setdefault("attempts", []).append(attempts)
    return threads


def bench_probes(cfg: Cfg) -> dict[str, dict[str, list[float]]]:
    """sysg only: N=100 sleeps with a tcp health check each (docs/manifest.md, "Readiness").

    - ``plain`` / ``tcp``: cold start to all up (the `sysg start` CLI returned) without a
      check and with one passing on the first attempt. Every probe targets one listener of
      the bench (backlog 4096, not accepted during the start: the kernel completes the
      connect); its accept queue afterwards counts the attempts.
    - ``steady``: the same listener is bound but does not listen yet, so every attempt is
      refused and retried (``retries: 1000``) ``interval: 1s`` later: 100 probes/s, the load
      of issue 10, which only a failing readiness check gives until liveness probes exist.
      After the services run and 1.5 s passed, one window of ``idle_s`` measures the
      supervisor's CPU (schedstat, ns) and context switches; attempts = N x window / 1 s
      (an upper bound: the next attempt is due 1 s after one ended). Then ``listen()``:
      every check passes, `sysg start` returns and every unit must be healthy.
    - ``liveness``: the load as users run it: 100 services up, each with a ``liveness`` tcp
      probe every 1 s that passes. After all are up and 1.5 s passed, one window of
      ``idle_s``: supervisor CPU and context switches, and the exact attempt count (the
      listener's accept queue drained before and after the window).
    The supervisor must have exactly one task (/proc/PID/task) throughout; else it fails.
    """
    out: dict[str, dict[str, list[float]]] = {"plain": {}, "tcp": {}, "steady": {}, "liveness": {}}
    n = cfg.n_big
    order = ("plain", "tcp", "steady", "liveness")
    for rep in range(cfg.reps):
        for kind in order if rep % 2 == 0 else order[::-1]:
            peer = new_peer("sysg", cfg)
            lsock = socket.socket()
            try:
                lsock.bind(("127.0.0.1", 0))
                if kind != "steady":
                    lsock.listen(4096)
                lsock.setblocking(False)
                addr = f"127.0.0.1:{lsock.getsockname()[1]}"
                peer.configure(
                    [
                        Svc(
                            s.name,
                            s.argv,
                            tcp_check="" if kind in ("plain", "liveness") else addr,
                            probe_retries=1000 if kind == "steady" else 0,
                            liveness_tcp=addr if kind == "liveness" else "",
                        )
                        for s in sleepers(peer, n)
                    ]
                )
                acc = out[kind]
                threads = 0
                t0 = time.perf_counter()
                proc = peer.launch()
                if kind == "steady":
                    if procs.wait_sleeps(peer.prefix, n, 120) is None:
                        raise RuntimeError("probes steady: services not running")
                    time.sleep(1.5)
                    pid = peer.daemon_pid()
                    assert pid is not None
                    cpu, switches, threads = probe_window(cfg, pid)
                    attempts = n * cfg.idle_s / 1.0
                    acc.setdefault("cpu_per", []).append(cpu / attempts)
                    acc.setdefault("wake", []).append(switches / cfg.idle_s)
                    lsock.listen(4096)  # now every next attempt passes
                threads = max(threads, watch_threads(proc, peer))
                t_up = time.perf_counter()
                wait_launcher(proc, peer)
                if kind == "liveness":
                    threads = max(threads, liveness_window(cfg, peer, n, lsock, out[kind]))
                if len(procs.scan_sleeps(peer.prefix)) < n:
                    raise RuntimeError(f"probes {kind}: not all {n} services running")
                settle(peer, n)
                pid = peer.daemon_pid()
                assert pid is not None
                threads = max(threads, len(os.listdir(f"/proc/{pid}/task")))
                if threads != 1:
                    raise RuntimeError(f"probes {kind}: supervisor has {threads} threads, not 1")
                cpu, _ = procs.cpu_and_switches(pid)
                passed = drain(lsock)
                # status.v1 (docs/commands.md): a running unit past its start is healthy,
                # with a check (its last probe passed) or without one.
                check_health(peer, n, "healthy")
                acc.setdefault("threads", []).append(threads)
                if kind == "liveness":
                    log(
                        f"probes liveness N={n}: {acc['cpu_per'][-1] * 1e6:.0f} µs CPU per "
                        f"attempt over {acc['attempts'][-1]:.0f} attempts, "
                        f"{acc['wake'][-1]:.1f} wake-ups/s, {threads} thread(s)"
                    )
                    continue
                if kind == "steady":
                    log(
                        f"probes steady N={n}: {acc['cpu_per'][-1] * 1e6:.0f} µs CPU per "
                        f"attempt, {acc['wake'][-1]:.1f} wake-ups/s, {threads} thread(s); "
                        f"then {passed} passed"
                    )
                    continue
                acc.setdefault("up", []).append(t_up - t0)
                acc.setdefault("cpu", []).append(cpu)
                acc.setdefault("attempts", []).append(passed)
                log(
                    f"probes {kind} N={n}: all up {(t_up - t0) * 1000:.0f} ms, supervisor CPU "
                    f"{cpu * 1000:.0f} ms, {passed} probe attempts, {threads} thread(s)"
                )
            finally:
                lsock.close()
                done_with(peer)
    return out


def bench_rolling(cfg: Cfg) -> dict[str, list[float]]:
    """Failed requests per run of 3 restarts under an HTTP load (``rolling.py``)."""
    from rolling import restart_under_load

    out: dict[str, list[float]] = {"sysg": [], "supervisord": [], "total": []}
    for rep in range(cfg.reps):
        for kind in ("sysg", "supervisord") if rep % 2 == 0 else ("supervisord", "sysg"):
            peer = new_peer(kind, cfg)
            try:
                failed, total, ok = restart_under_load(peer, 3)
                if ok != 3:
                    raise RuntimeError(f"{kind}: {3 - ok} of 3 restarts failed")
                out[kind].append(failed)
                out["total"].append(total)
                log(f"restart under load {kind}: {failed} of {total} requests failed")
            finally:
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
    out: dict[str, list[float]] = {"plain": [], "priv": [], "seccomp": []}
    n = cfg.n_big
    kinds = ("plain", "priv", "seccomp")
    for rep in range(cfg.reps):
        for kind in kinds if rep % 2 == 0 else kinds[::-1]:
            peer = new_peer("sysg", cfg)
            try:
                services = [
                    Svc(s.name, s.argv, privileged=kind != "plain", sandbox=kind == "seccomp")
                    for s in sleepers(peer, n)
                ]
                peer.configure(services)
                t0 = time.perf_counter()
                proc = peer.launch()
                t1 = procs.wait_sleeps(peer.prefix, n, 120, poll=0.004)
                wait_launcher(proc, peer)
                if t1 is None:
                    raise RuntimeError(f"{kind}: services did not start")
                if kind != "plain":
                    check_privileged(peer, seccomp=kind == "seccomp")
                out[kind].append(t1 - t0)
                log(f"spawn {kind} N={n}: {(t1 - t0) * 1000:.0f} ms")
            finally:
                done_with(peer)
    return out


def check_privileged(peer: Peer, *, seccomp: bool = False) -> None:
    """The plan really applied (one service checked through /proc)."""
    pid = next(iter(procs.scan_sleeps(peer.prefix).values()))
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    if "\nUid:\t65534" not in status or "Cpus_allowed_list:\t0\n" not in status:
        raise RuntimeError(f"privileged plan not applied to pid {pid}:\n{status}")
    if seccomp and "\nSeccomp_filters:\t2\n" not in status:
        raise RuntimeError(f"seccomp filters not loaded in pid {pid}:\n{status}")


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
    if unit == "per":
        return f"{v:.2f}"
    if unit == "us":
        return f"{v * 1e6:.0f} µs"
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
        f"{cfg.reps} repeats, medians): "
        + " vs ".join(versions[k] for k in PEERS if k in versions)
        + ".",
        "",
        *[f"- {f}" for f in facts],
        "",
        "s6 and runit cells: value (ratio to supervisord). `n/a`: the peer has no such "
        "feature or the row is not run for it.",
        "",
        "| metric | sysg | supervisord | s6 | runit | ratio (sysg/supervisord) | target | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met_all = True
    for row in res.rows:
        r = ratio(row.sysg, row.sup)
        ok = row.check(row.sysg, row.sup) if row.check else None
        for peer in row.le_peers:
            other = row.others.get(peer)
            if ok is not False and row.sysg is not None and other is not None:
                ok = row.sysg <= other
        if ok is False:
            met_all = False
        mark = "" if ok is None else ("yes" if ok else "**no**")
        rtxt = "n/a" if row.sysg_only else "-" if r is None else f"{r:.2f}x"
        sup = "n/a" if row.sysg_only else fmt(row.sup, row.unit)
        cells = []
        for peer in C_PEERS:
            if row.sysg_only or peer not in row.others:
                cells.append("n/a")
                continue
            v = row.others[peer]
            rr = ratio(v, row.sup)
            cells.append(fmt(v, row.unit) + ("" if rr is None else f" ({rr:.2f}x)"))
        lines.append(
            f"| {row.metric} | {fmt(row.sysg, row.unit)} | {sup} | {cells[0]} | {cells[1]} "
            f"| {rtxt} | {row.target} | {mark} |"
        )
    lines.append("")
    lines += [f"- {n}" for n in res.notes]
    lines.append(f"\nAll targets met: {'yes' if met_all else 'no'}.")
    return "\n".join(lines) + "\n"


def scale_rows(cfg: Cfg, res: Results, scale: dict[int, dict[str, dict[str, list[float]]]]) -> None:
    """One row per metric and N; cold start at the largest N against 10 x N=100's."""

    def med(n: int, kind: str, key: str) -> float | None:
        return median(scale[n].get(kind, {}).get(key, []))

    metrics = (
        ("cold", "cold start", "ms"),
        ("cpu_per", "supervisor + helpers CPU per service, launch → all running", "us"),
        ("pss_total", "supervisor + helpers PSS", "MiB"),
        ("rss_total", "supervisor + helpers RSS", "MiB"),
        ("procs", "processes per service beyond the service", "per"),
        ("status", "status CLI", "ms"),
        ("stop_all", "stop-all (CLI returned, all exited)", "ms"),
    )
    ns = sorted(scale)
    for key, label, unit in metrics:
        for n in ns:
            target: str = ""
            check: Callable[[float | None, float | None], bool | None] | None = None
            if key == "cold" and n == 1000 and 100 in scale:
                target = "≤ 10x (N=100 time)"
                check = within(10, med(100, "sysg", "cold"))
            if key == "cpu_per" and n == 1000 and 100 in scale:
                # "cost per service flat": read as at most 10 % above N=100's
                target = "flat: ≤ 1.1x (N=100)"
                check = within(1.1, med(100, "sysg", "cpu_per"))
            if key == "procs":
                target, check = "0", (lambda a, b: None if a is None else a == 0)
            res.rows.append(
                Row(
                    f"scale: {label}, N={n}",
                    med(n, "sysg", key),
                    med(n, "supervisord", key),
                    unit,
                    target,
                    check,
                    others={k: med(n, k, key) for k in C_PEERS if k in scale[n]},
                )
            )
    per = {
        k: [round((med(n, k, "cpu_per") or 0) * 1e6) for n in ns]
        for k in PEERS
        if any(k in scale[n] for n in ns)
    }
    res.notes.append(
        f"scale: CPU per service (µs) at N={ns}: {per}; flat means the cost per service "
        "does not grow with N"
    )


def within(factor: float, ref: float | None) -> Callable[[float | None, float | None], bool | None]:
    """sysg's value at most ``factor`` times its own ``ref`` (another row's)."""
    return lambda a, b: None if a is None or ref is None else a <= factor * ref


def le_ratio(limit: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda a, b: None if a is None or b is None else a <= limit * b


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


METRICS = (
    "cold10",
    "cold100",
    "scale",
    "crash",
    "logs",
    "idle",
    "version",
    "privileged",
    "probes",
    "rolling",
)


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
    ap.add_argument(
        "--only",
        action="append",
        choices=METRICS,
        help="run only this group of rows (repeatable); cold100 includes RSS, status, "
        "stop-all and shutdown; idle includes the notify instance; scale is N=10/100/1000",
    )
    ap.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers to run (default: all: sysg,supervisord,s6,runit); "
        "sysg and supervisord are always run",
    )
    ap.add_argument(
        "--scale-peers",
        help="comma-separated peers run at the largest scale N (default: every peer run)",
    )
    ap.add_argument(
        "--scale-ns",
        default="10,100,1000",
        help="the N of the scale rows (default 10,100,1000)",
    )
    args = ap.parse_args()
    only = set(args.only or METRICS)
    if args.quick:
        cfg = Cfg(True, 3, 10, 100, 10, 3.0, 3, 200_000, 10)
    else:
        cfg = Cfg(False, 3, 10, 100, 20, 20.0, 3, 1_000_000, 20)
    chosen = {k.strip() for k in args.peers.split(",") if k.strip()} | {"sysg", "supervisord"}
    if chosen - set(PEERS):
        ap.error(f"unknown peers: {sorted(chosen - set(PEERS))}")
    cfg.peers = tuple(k for k in PEERS if k in chosen)
    cfg.scale_peers = cfg.peers
    if args.scale_peers:
        cfg.scale_peers = tuple(k.strip() for k in args.scale_peers.split(",") if k.strip())
    cfg.scale_ns = tuple(sorted(int(x) for x in args.scale_ns.split(",")))
    # N=1000: each peer needs fds (sysg ~2 per service + its holder; s6-svscan a pipe per
    # logger); everyone inherits the bench's limit, raised to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    facts = machine_facts(load)
    if args.only:
        facts.append(f"only: {', '.join(m for m in METRICS if m in only)}")
    res = Results()
    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up like Ctrl-C
    started = time.time()
    small = big = logs_ = idle = probes = scale = None
    crash = ver = priv = rolling = None
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
        for kind, pkg in (("s6", "s6"), ("runit", "runit")):
            if kind in cfg.peers:
                pkg_ver = subprocess.run(
                    ["dpkg-query", "-W", "-f", "${Version}", pkg],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                versions[kind] = f"{pkg} {pkg_ver or '?'}"
        log(f"{versions} ; {facts}")
        if "cold10" in only:
            small = bench_cold(cfg, res, cfg.n_small)
        if "cold100" in only:
            big = bench_cold(cfg, res, cfg.n_big, steady_metrics(cfg))
        if "scale" in only:
            scale = bench_scale(cfg, res)
        if "crash" in only:
            crash = bench_crash(cfg)
        if "logs" in only:
            logs_ = bench_logs(cfg, res)
        if "idle" in only:
            idle = bench_idle(cfg)
        if "version" in only:
            ver = bench_version(cfg)
        if "privileged" in only:
            priv = bench_privileged(cfg) if os.geteuid() == 0 else None
        if "probes" in only:
            probes = bench_probes(cfg)
        if "rolling" in only:
            rolling = bench_rolling(cfg)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        for peer in list(_LIVE):
            done_with(peer)
        procs.reap()

    def m(d: dict[str, list[float]], key: str) -> float | None:
        return median(d.get(key, []))

    def oth(d: dict[str, dict[str, list[float]]], key: str) -> dict[str, float | None]:
        """The s6 / runit medians of ``key`` (the peers that were run)."""
        return {k: m(d[k], key) for k in C_PEERS if k in d}

    def zero(a: float | None, b: float | None) -> bool | None:
        return None if a is None else a == 0

    rows = res.rows
    if small is not None:
        rows.append(
            Row(
                f"cold start N={cfg.n_small}",
                m(small["sysg"], "cold"),
                m(small["supervisord"], "cold"),
                "ms",
                others=oth(small, "cold"),
            )
        )
    if big is not None:
        rows.append(
            Row(
                f"cold start N={cfg.n_big}",
                m(big["sysg"], "cold"),
                m(big["supervisord"], "cold"),
                "ms",
                "≤ 0.15x and ≤ s6",
                le_ratio(0.15),
                others=oth(big, "cold"),
                le_peers=("s6",),
            )
        )
    if crash is not None:
        cs, cu = crash["sysg"], crash["supervisord"]
        rows.append(
            Row(
                "crash → running, median",
                median(cs),
                median(cu),
                "ms",
                "≤ 2 ms and ≤ runit",
                lambda a, b: None if a is None else a <= 0.002,
                others={k: median(crash[k]) for k in C_PEERS if k in crash},
                le_peers=("runit",),
            )
        )
        rows.append(
            Row(
                f"crash → running, p95 ({len(cs)} kills)",
                p95(cs),
                p95(cu),
                "ms",
                others={k: p95(crash[k]) for k in C_PEERS if k in crash},
            )
        )
    if big is not None:
        s_big, u_big = big["sysg"], big["supervisord"]
        rows.append(
            Row(
                f"supervisor RSS, N={cfg.n_big}",
                m(s_big, "rss"),
                m(u_big, "rss"),
                "MiB",
                others=oth(big, "rss"),
            )
        )
        rows.append(
            Row(
                f"supervisor PSS, N={cfg.n_big}",
                m(s_big, "pss"),
                m(u_big, "pss"),
                "MiB",
                others=oth(big, "pss"),
            )
        )
        rows.append(
            Row(
                "RSS incl. helpers (sysg fd holder; every s6-supervise / runsv)",
                m(s_big, "rss_total"),
                m(u_big, "rss_total"),
                "MiB",
                others=oth(big, "rss_total"),
            )
        )
        rows.append(
            Row(
                f"supervisor + helper processes PSS, N={cfg.n_big}",
                m(s_big, "pss_total"),
                m(u_big, "pss_total"),
                "MiB",
                "≤ 0.8x",
                le_ratio(0.8),
                others=oth(big, "pss_total"),
            )
        )
        rows.append(
            Row(
                f"processes per service beyond the service itself, N={cfg.n_big}",
                m(s_big, "procs"),
                m(u_big, "procs"),
                "per",
                "0",
                zero,
                others=oth(big, "procs"),
            )
        )
    if idle is not None:
        isy, isu, isn = idle["sysg"], idle["supervisord"], idle["sysg-notify"]
        isc = idle["sysg-cron"]
        rows.append(
            Row(
                f"idle CPU per 20 s, N={cfg.n_big} (supervisor + helpers)",
                m(isy, "cpu"),
                m(isu, "cpu"),
                "ms/20s",
                "0 (keep)",
                zero,
                others=oth(idle, "cpu"),
            )
        )
        rows.append(
            Row(
                "idle wake-ups",
                m(isy, "wake"),
                m(isu, "wake"),
                "/s",
                "0 (keep)",
                zero,
                others=oth(idle, "wake"),
            )
        )
        rows.append(
            Row(
                f"idle CPU per 20 s, N={cfg.n_big} notify services up",
                m(isn, "cpu"),
                None,
                "ms/20s",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"idle wake-ups, N={cfg.n_big} notify services up",
                m(isn, "wake"),
                None,
                "/s",
                "≤ 0.2/s",
                lambda a, b: None if a is None else a <= 0.2,
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"idle wake-ups, N={cfg.n_big} services + {cfg.n_big} cron jobs not due",
                m(isc, "wake"),
                None,
                "/s",
                "≤ 0.2/s",
                lambda a, b: None if a is None else a <= 0.2,
                sysg_only=True,
            )
        )
    if logs_ is not None:
        ls, lu = logs_["sysg"], logs_["supervisord"]
        rows.append(
            Row(
                f"log {cfg.log_lines:,} lines: time",
                m(ls, "time"),
                m(lu, "time"),
                "ms",
                others=oth(logs_, "time"),
            )
        )
        rows.append(
            Row(
                "log throughput, with timestamps (supervisord: raw lines)",
                m(ls, "mbs"),
                m(lu, "mbs"),
                "MB/s",
                "≥ 1.0x",
                lambda a, b: None if a is None or b is None else a >= b,
                others=oth(logs_, "mbs"),
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
                others={k: max(logs_[k].get("bad", [0])) for k in C_PEERS if k in logs_},
            )
        )
    if big is not None:
        s_big, u_big = big["sysg"], big["supervisord"]
        rows.append(
            Row(
                f"status CLI, N={cfg.n_big}",
                m(s_big, "status"),
                m(u_big, "status"),
                "ms",
                "≤ 0.25x",
                le_ratio(0.25),
                others=oth(big, "status"),
            )
        )
    if ver is not None:
        rows.append(Row("--version CLI", median(ver["sysg"]), median(ver["supervisord"]), "ms"))
    if big is not None:
        s_big, u_big = big["sysg"], big["supervisord"]
        rows.append(
            Row(
                f"stop-all N={cfg.n_big} (CLI returned, all exited)",
                m(s_big, "stop_all"),
                m(u_big, "stop_all"),
                "ms",
                "≤ 0.25x",
                le_ratio(0.25),
                others=oth(big, "stop_all"),
            )
        )
        rows.append(
            Row(
                f"shutdown N={cfg.n_big} (SIGTERM; runit: SIGHUP → all gone)",
                m(s_big, "shutdown"),
                m(u_big, "shutdown"),
                "ms",
                "≤ runit",
                None,
                others=oth(big, "shutdown"),
                le_peers=("runit",),
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
                sysg_only=True,
            )
        )
        sec = None
        if priv["priv"] and priv["seccomp"]:
            sec = (median(priv["seccomp"]) - median(priv["priv"])) / cfg.n_big  # type: ignore[operator]
        rows.append(
            Row(
                f"seccomp filter overhead over privileged (N={cfg.n_big}, per service)",
                sec,
                None,
                "ms",
                "",
                None,
                sysg_only=True,
            )
        )
        res.notes.append(
            f"privileged + seccomp cold start N={cfg.n_big}: {fmt(median(priv['seccomp']), 'ms')}"
            " (the privileged plan plus seccomp [@system-service, ~@privileged] and"
            " address_families [AF_UNIX, AF_INET, AF_INET6]: two BPF programs per service,"
            " built once by libseccomp and loaded by each child)"
        )
        res.notes.append(
            f"privileged vs plain cold start N={cfg.n_big}: "
            f"{fmt(median(priv['priv']), 'ms')} vs {fmt(median(priv['plain']), 'ms')} "
            "(user nobody, group+supplementary nogroup, nofile/nproc/memlock, nice 5, "
            "affinity [0], CAP_NET_BIND_SERVICE, cgroup memory.max under a temp-dir root)"
        )
    if probes is not None:
        pp, pt, ps, pl = probes["plain"], probes["tcp"], probes["steady"], probes["liveness"]
        cpu_t, cpu_p, attempts = m(pt, "cpu"), m(pp, "cpu"), m(pt, "attempts")
        rows.append(
            Row(
                f"cold start N={cfg.n_big} to all up, no check (up after 250 ms)",
                m(pp, "up"),
                None,
                "ms",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"cold start N={cfg.n_big} to all up, a tcp health check each",
                m(pt, "up"),
                None,
                "ms",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"supervisor CPU per tcp probe attempt, failing readiness check "
                f"({cfg.n_big} probed every 1 s)",
                m(ps, "cpu_per"),
                None,
                "us",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"wake-ups while probing {cfg.n_big} services every 1 s (readiness retries)",
                m(ps, "wake"),
                None,
                "/s",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"supervisor CPU per passing liveness probe ({cfg.n_big} up, probed every 1 s)",
                m(pl, "cpu_per"),
                None,
                "us",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                f"wake-ups, {cfg.n_big} services up with a liveness probe every 1 s",
                m(pl, "wake"),
                None,
                "/s",
                sysg_only=True,
            )
        )
        rows.append(
            Row(
                "supervisor threads during probes (max)",
                max(
                    pt.get("threads", [0])
                    + pp.get("threads", [0])
                    + ps.get("threads", [0])
                    + pl.get("threads", [0])
                ),
                None,
                "count",
                "1",
                lambda a, b: None if a is None else a == 1,
                sysg_only=True,
            )
        )
        diff = None
        if cpu_t is not None and cpu_p is not None and attempts:
            diff = (cpu_t - cpu_p) / attempts
        res.notes.append(
            f"probe rows: supervisor CPU from exec to quiet, N={cfg.n_big} with a tcp check "
            f"each vs none: {fmt(cpu_t, 'ms')} vs {fmt(cpu_p, 'ms')} "
            f"(samples tcp {[round(x * 1000) for x in pt.get('cpu', [])]}, "
            f"none {[round(x * 1000) for x in pp.get('cpu', [])]} ms), difference per "
            f"attempt {fmt(diff, 'us')} over {attempts} attempts/run (connections the "
            "bench's listener accepted): within the run-to-run noise of 100 spawns, hence "
            "the steady-window row; steady samples (µs/attempt) "
            f"{[round(x * 1e6) for x in ps.get('cpu_per', [])]}"
        )
    if scale is not None:
        scale_rows(cfg, res, scale)
    if rolling is not None:
        rows.append(
            Row(
                "requests failed during a restart under load (3 restarts; sysg rolling + "
                "listen vs supervisorctl restart)",
                median(rolling["sysg"]),
                median(rolling["supervisord"]),
                "count",
                "0",
                lambda a, b: None if a is None else a == 0,
            )
        )
        res.notes.append(
            f"restart under load: failed requests per run sysg {rolling['sysg']}, "
            f"supervisord {rolling['supervisord']}, of {rolling['total']} requests per run"
        )
    if big is not None:
        res.notes.append(
            f"stop-all CLI alone: sysg {fmt(m(big['sysg'], 'stop_all_cli'), 'ms')}, "
            f"supervisorctl {fmt(m(big['supervisord'], 'stop_all_cli'), 'ms')}"
        )
    if crash is not None:
        res.notes.append(
            f"raw crash samples (ms): sysg {[round(x * 1000, 2) for x in crash['sysg']]}"
        )
    res.notes.append(f"wall time of this run: {time.time() - started:.0f} s")
    text = table(res, facts, cfg, versions)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
