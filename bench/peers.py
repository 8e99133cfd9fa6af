"""The supervisors under test, each driven through its own CLI with a generated config.

``Sysg`` and ``Supervisord`` expose the same small surface (launch, status, stop-all,
start-all, shutdown, log file, cleanup) so every metric runs the same code for both. Each
instance lives in its own short temp directory under /tmp (unix socket paths < 108 bytes)
and ``cleanup`` stops everything it started by pid and removes that directory.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from procs import (
    children_map,
    cmdline,
    comm,
    kill_pids,
    pid_alive,
    pids_in_dir,
    pids_mentioning,
    read_pidfile,
    reap,
    scan_sleeps,
    wait_gone,
)


@dataclass(frozen=True)
class Svc:
    name: str
    argv: tuple[str, ...]
    restart: bool = True
    big_log: bool = False  # no rotation (log throughput)
    privileged: bool = False  # the full privileged plan (sysg only)
    sandbox: bool = False  # and the sandbox: seccomp @system-service + address families
    tcp_check: str = ""  # HOST:PORT of a deployment.health_check tcp probe (sysg only)
    notify: bool = False  # `notify: true`: up on READY=1 (sysg only)
    probe_retries: int = 0  # health_check retries (0: the default, 3)
    liveness_tcp: str = ""  # HOST:PORT of a `liveness` tcp probe every 1 s (sysg only)
    cron: str = ""  # a cron job with this expression, UTC (sysg only)


@dataclass
class Peer:
    name: str
    bindir: str
    prefix: str  # sleep argument prefix of this instance's services
    root: str = field(init=False)
    # How a log line is stored: ``log_skip`` space-separated fields before the payload,
    # the last of which must equal ``log_tag`` when set (sysg: ``<ts> stdout <line>``).
    log_skip = 0
    log_tag = b""
    # Pause between two kills of the crash row (see S6/Runit: both wait 1 s before
    # restarting a service that ran less than 1 s).
    crash_gap = 0.05

    def __post_init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="sgb", dir="/tmp")
        os.chmod(self.root, 0o755)  # privileged services (nobody) chdir here

    # -- overridden -------------------------------------------------------------------
    def configure(self, services: list[Svc]) -> None:
        raise NotImplementedError

    def launch_argv(self) -> list[str]:
        raise NotImplementedError

    def daemon_pid(self) -> int | None:
        raise NotImplementedError

    def helper_pids(self) -> list[int]:
        return []

    def fixed_helper_pids(self) -> list[int]:
        """Helpers a supervisor has once, whatever N (not per service)."""
        return []

    def status_argv(self) -> list[str]:
        raise NotImplementedError

    def stop_all_argv(self) -> list[str]:
        raise NotImplementedError

    def start_all_argv(self) -> list[str]:
        raise NotImplementedError

    def log_file(self, name: str) -> str:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- shared -----------------------------------------------------------------------
    def launch(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.launch_argv(),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    def run(self, argv: list[str], check: bool = False) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            argv, env=self.env(), capture_output=True, cwd=self.root, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv} -> {done.returncode}: {done.stderr.decode()[-2000:]}")
        return done

    def signal_shutdown(self) -> int:
        pid = self.daemon_pid()
        if pid is None:
            raise RuntimeError(f"{self.name}: no daemon pid")
        os.kill(pid, signal.SIGTERM)
        return pid

    def cleanup(self) -> None:
        """Stop the daemon, its helpers and every service of this instance, by pid."""
        pids = [p for p in (self.daemon_pid(), *self.helper_pids()) if p]
        pids += [p for p in pids_mentioning(self.root) if p not in pids]
        kill_pids(pids, signal.SIGKILL)
        kill_pids(scan_sleeps(self.prefix).values(), signal.SIGKILL)
        wait_gone(pids, 5)
        reap()
        self.extra_cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    def extra_cleanup(self) -> None:
        pass


class Sysg(Peer):
    log_skip = 2
    log_tag = b"stdout"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.manifest = os.path.join(self.root, "sysg.yaml")
        self.cgroot = os.path.join(self.root, "cg")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SYSTEMG_STATE_DIR"] = os.path.join(self.root, "st")
        env["SYSTEMG_LOG_DIR"] = os.path.join(self.root, "lg")
        env["NO_COLOR"] = "1"
        return env

    def configure(self, services: list[Svc]) -> None:
        lines = ['version: "2"', "projects:", "  b:", "    services:"]
        for s in services:
            argv = ", ".join(f'"{a}"' for a in s.argv)
            lines.append(f"      {s.name}:")
            lines.append(f"        exec: [{argv}]")
            if s.cron:
                lines.append(f'        cron: {{expression: "{s.cron}", timezone: UTC}}')
                continue
            lines.append(f"        restart_policy: {'always' if s.restart else 'never'}")
            lines.append("        backoff: 0ms")
            if s.big_log:
                lines.append("        logs: {max_bytes: 4G, max_files: 1}")
            if s.tcp_check:
                lines += [
                    "        deployment:",
                    f'          health_check: {{tcp: "{s.tcp_check}", interval: 1s'
                    + (f", retries: {s.probe_retries}}}" if s.probe_retries else "}"),
                ]
            if s.liveness_tcp:
                lines.append(f'        liveness: {{tcp: "{s.liveness_tcp}", interval: 1s}}')
            if s.notify:
                lines.append("        notify: true")
            if s.privileged:
                lines += [
                    "        user: nobody",
                    "        group: nogroup",
                    "        supplementary_groups: [nogroup]",
                    "        capabilities: [NET_BIND_SERVICE]",
                    "        limits:",
                    "          nofile: 4096",
                    "          nproc: 4096",
                    "          memlock: 8M",
                    "          nice: 5",
                    "          cpu_affinity: [0]",
                    f"          cgroup: {{root: {self.cgroot}, memory_max: 256M}}",
                ]
            if s.sandbox:
                lines += [
                    "        isolation:",
                    '          seccomp: ["@system-service", "~@privileged"]',
                    "          address_families: [AF_UNIX, AF_INET, AF_INET6]",
                ]
        with open(self.manifest, "w") as f:
            f.write("\n".join(lines) + "\n")

    def launch_argv(self) -> list[str]:
        return [os.path.join(self.bindir, "sysg"), "start", "--daemonize", "-c", self.manifest]

    def daemon_pid(self) -> int | None:
        return read_pidfile(os.path.join(self.root, "st", "sysg.pid"))

    def fixed_helper_pids(self) -> list[int]:
        return self.helper_pids()  # one of each per supervisor, whatever N

    def helper_pids(self) -> list[int]:
        """The fd holder, and the spawn helper once a privileged spawn started it."""
        pid = read_pidfile(os.path.join(self.root, "st", "fdholder.pid"))
        daemon = self.daemon_pid()
        spawners = [
            c for c in children_map().get(daemon or 0, []) if b"forkserver.serve" in cmdline(c)
        ]
        return [pid, *spawners] if pid else spawners

    def status_argv(self) -> list[str]:
        return [os.path.join(self.bindir, "sysg"), "status"]

    def stop_all_argv(self) -> list[str]:
        return [os.path.join(self.bindir, "sysg"), "stop"]

    def start_all_argv(self) -> list[str]:
        return self.launch_argv()

    def log_file(self, name: str) -> str:
        return os.path.join(self.root, "lg", "b", f"{name}.log")

    def extra_cleanup(self) -> None:
        # A held fd holder or a late helper: anything still using this state root by pid.
        for pid in self.helper_pids():
            if pid_alive(pid):
                kill_pids([pid])


class Supervisord(Peer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.conf = os.path.join(self.root, "supervisord.conf")

    def configure(self, services: list[Svc]) -> None:
        r = self.root
        os.makedirs(os.path.join(r, "logs"), exist_ok=True)
        parts = [
            f"[unix_http_server]\nfile={r}/s.sock\n",
            f"[supervisord]\nlogfile={r}/supervisord.log\npidfile={r}/supervisord.pid\n"
            f"childlogdir={r}/logs\nloglevel=info\n",
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            f"[supervisorctl]\nserverurl=unix://{r}/s.sock\n",
        ]
        for s in services:
            parts.append(
                f"[program:{s.name}]\ncommand={shlex.join(s.argv).replace('%', '%%')}\n"
                f"autorestart={'true' if s.restart else 'false'}\nstartsecs=0\nstartretries=3\n"
                f"stdout_logfile={r}/logs/{s.name}.log\nstdout_logfile_maxbytes=0\n"
                f"stderr_logfile={r}/logs/{s.name}.err\nstderr_logfile_maxbytes=0\n"
            )
        with open(self.conf, "w") as f:
            f.write("\n".join(parts))

    def launch_argv(self) -> list[str]:
        return [os.path.join(self.bindir, "supervisord"), "-c", self.conf]

    def daemon_pid(self) -> int | None:
        return read_pidfile(os.path.join(self.root, "supervisord.pid"))

    def ctl(self, *args: str) -> list[str]:
        return [os.path.join(self.bindir, "supervisorctl"), "-c", self.conf, *args]

    def status_argv(self) -> list[str]:
        return self.ctl("status")

    def stop_all_argv(self) -> list[str]:
        return self.ctl("stop", "all")

    def start_all_argv(self) -> list[str]:
        return self.ctl("start", "all")

    def log_file(self, name: str) -> str:
        return os.path.join(self.root, "logs", f"{name}.log")


class _Started:
    """Stands for the launcher of a daemon that does not daemonize itself (s6-svscan,
    runsvdir run in the foreground): it has "returned" as soon as the daemon was spawned."""

    returncode = 0

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        return b"", b""

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


class ScanDir(Peer):
    """s6 and runit: a scan directory with one service directory per service, its
    scanner (s6-svscan / runsvdir) in the foreground, detached, its pid kept by the bench.

    Each service is ``DIR/scan/NAME/run``: ``#!/bin/sh`` + ``exec ARGV`` (so the service pid
    is the program's, as with sysg and supervisord). A service that must not restart (the
    log row's ``cat``) first writes the run-once command to its own supervisor's control
    fifo (a shell builtin, before the clock starts). A ``big_log`` service gets a logger,
    ``NAME/log/run`` (s6-log / svlogd with timestamps, no rotation), which the scanner
    connects to the service by a pipe; its file is ``DIR/logs/NAME/current``.
    """

    scanner = ""
    supervisor_comm = ""  # the per-service supervisor process: helper_pids
    once_cmd = ""  # control-fifo command: do not restart when it exits
    shutdown_signal = signal.SIGTERM

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scan = os.path.join(self.root, "scan")
        self.proc: subprocess.Popen[bytes] | None = None
        self.names: list[str] = []

    def logger_run(self, logdir: str) -> str:
        raise NotImplementedError

    def configure(self, services: list[Svc]) -> None:
        os.makedirs(self.scan, exist_ok=True)
        self.names = []
        for s in services:
            d = os.path.join(self.scan, s.name)
            os.makedirs(d)
            once = "" if s.restart else f"printf {self.once_cmd} > supervise/control\n"
            _script(os.path.join(d, "run"), f"{once}exec {shlex.join(s.argv)}\n")
            if s.big_log:
                logdir = os.path.join(self.root, "logs", s.name)
                os.makedirs(logdir)
                os.makedirs(os.path.join(d, "log"))
                _script(os.path.join(d, "log", "run"), self.logger_run(logdir))
            self.names.append(s.name)
        # runsvdir does not scan a directory modified in the current second (it could miss
        # a second change within it) and retries a second later; an operator's scan dir is
        # older than that, so date it back rather than time that wait.
        old = time.time() - 10
        os.utime(self.scan, (old, old))

    def dirs(self) -> list[str]:
        return [os.path.join(self.scan, n) for n in self.names]

    def launch_argv(self) -> list[str]:
        return [self.scanner, self.scan]

    def launch(self) -> subprocess.Popen[bytes]:  # type: ignore[override]
        self.proc = subprocess.Popen(
            self.launch_argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
        )
        return _Started()  # type: ignore[return-value]

    def daemon_pid(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        return self.proc.pid

    def helper_pids(self) -> list[int]:
        return [p for p in pids_in_dir(self.scan) if comm(p) == self.supervisor_comm]

    def signal_shutdown(self) -> int:
        pid = self.daemon_pid()
        if pid is None:
            raise RuntimeError(f"{self.name}: no daemon pid")
        os.kill(pid, self.shutdown_signal)
        return pid

    def log_file(self, name: str) -> str:
        return os.path.join(self.root, "logs", name, "current")

    def cleanup(self) -> None:
        """The scanner first (so it respawns nothing), then every process whose cwd or
        cmdline is in this instance's root (supervisors, services, loggers), twice."""
        pid = self.daemon_pid()
        if pid:
            kill_pids([pid], signal.SIGKILL)
            wait_gone([pid], 5)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
        for _ in range(2):
            pids = set(pids_in_dir(self.root)) | set(pids_mentioning(self.root))
            pids |= set(scan_sleeps(self.prefix).values())
            kill_pids(pids, signal.SIGKILL)
            wait_gone(pids, 5)
        reap()
        shutil.rmtree(self.root, ignore_errors=True)


def _script(path: str, body: str) -> None:
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


class S6(ScanDir):
    """s6 2.11: ``s6-svscan DIR``. SIGTERM to s6-svscan is ``s6-svscanctl -t``: it sends
    SIGTERM to every s6-supervise, which brings its service down and exits (measured: all
    services gone). ``s6-svstat`` reads one service dir per call: ``status`` is a shell
    loop over all N, what an operator runs to see them all."""

    scanner = "s6-svscan"
    supervisor_comm = "s6-supervise"
    once_cmd = "O"
    crash_gap = 1.1  # as runit; measured: s6-supervise 2.11 restarts 1 s after any death
    log_skip = 3  # s6-log T: "YYYY-MM-DD HH:MM:SS.nnnnnnnnn  <line>" (two spaces)

    def launch_argv(self) -> list[str]:
        # -c: room for 1000 services and their loggers (the default maximum is 1000).
        return [self.scanner, "-c", "4000", self.scan]

    def logger_run(self, logdir: str) -> str:
        # T: ISO 8601 timestamp; s: the largest current file (256 MiB), no rotation here.
        return f"exec s6-log T s268435455 n1 {logdir}\n"

    def status_argv(self) -> list[str]:
        return ["sh", "-c", 'for d in "$0"/*; do s6-svstat "$d"; done', self.scan]

    # s6-svc 2.11 takes one service dir ("ignoring extra arguments"): a loop, as status.
    def stop_all_argv(self) -> list[str]:
        return ["sh", "-c", 'for d in "$0"/*; do s6-svc -d "$d"; done', self.scan]

    def start_all_argv(self) -> list[str]:
        return ["sh", "-c", 'for d in "$0"/*; do s6-svc -u "$d"; done', self.scan]


class Runit(ScanDir):
    """runit 2.1.2: ``runsvdir DIR``, one ``runsv`` per service. On SIGHUP runsvdir sends
    TERM to every runsv and exits 111; runsv on TERM acts as ``x`` (exit): TERM+CONT to its
    service, no restart, then exits. ``sv status|down|up DIR/*`` takes all N at once."""

    scanner = "runsvdir"
    supervisor_comm = "runsv"
    once_cmd = "o"
    shutdown_signal = signal.SIGHUP
    # runsv: "If ./run or ./finish exit immediately, runsv waits a second"; 1.5 s keeps
    # every kill clear of that second on a loaded machine.
    crash_gap = 1.5
    log_skip = 1  # svlogd -tt: "YYYY-MM-DD_HH:MM:SS.nnnnn <line>"

    def logger_run(self, logdir: str) -> str:
        with open(os.path.join(logdir, "config"), "w") as f:
            f.write("s0\n")  # size 0: never rotate
        return f"exec svlogd -tt {logdir}\n"

    def status_argv(self) -> list[str]:
        return ["sv", "status", *self.dirs()]

    def stop_all_argv(self) -> list[str]:
        return ["sv", "down", *self.dirs()]

    def start_all_argv(self) -> list[str]:
        return ["sv", "up", *self.dirs()]


def stop_quietly(peer: Peer) -> None:
    with contextlib.suppress(Exception):
        peer.cleanup()
