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
from dataclasses import dataclass, field

from procs import (
    kill_pids,
    pid_alive,
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

    def helper_pids(self) -> list[int]:
        pid = read_pidfile(os.path.join(self.root, "st", "fdholder.pid"))
        return [pid] if pid else []

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


def stop_quietly(peer: Peer) -> None:
    with contextlib.suppress(Exception):
        peer.cleanup()
