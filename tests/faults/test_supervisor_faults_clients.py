"""Fault cases where the supervisor is hammered by its clients (issue 9): 100 concurrent
CLI clients (and 100 raw connections at once), a manifest replaced while ``restart``
reads it, and a manifest with a NUL byte in an argument. A real supervisor (the installed
``sysg``) runs ticker bystanders; afterwards the harness invariants must hold (same pids,
every line, status answers, ``stop --supervisor`` leaves nothing behind), and the
supervisor is the same process, still one thread, with no fd leaked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.faults import harness
from tests.faults.harness import assert_clean_shutdown, cgroup_dirs, leaders
from tests.support.procscan import new_marker, thread_count
from tests.support.runtime import Runtime, pid_of, wait_for

TARGETS = tuple(f"w{i}" for i in range(5))
VERBS = ("status", "start", "stop", "restart")
WAVE = 25  # CLI processes at once: 100 Pythons booting together would swamp 2 cores
FD_SLACK = 2


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cmdline(pid: int | None) -> str:
    if pid is None:
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- 4. 100 concurrent clients ---------------------------------------------------------


def client_args(k: int) -> list[str]:
    verb, target = VERBS[k % len(VERBS)], TARGETS[(k // len(VERBS)) % len(TARGETS)]
    if verb == "status":
        return ["status", "--format", "json"] if k % 8 == 0 else ["status"]
    if verb == "start":
        return ["start", "-s", target, "--daemonize"]  # (without it, start stays attached)
    return [verb, "-s", target]


def judge(args: list[str], proc: subprocess.CompletedProcess[str]) -> str | None:
    """What is wrong with one client's answer, if anything."""
    if "Traceback" in proc.stderr + proc.stdout:
        return f"traceback: {proc.stderr[-500:]}"
    if proc.returncode == 0:
        return None
    if args[0] == "status" and proc.returncode in (1, 2) and proc.stdout.strip():
        return None  # degraded / failing: a unit is being stopped or restarted
    if re.search(r"error\[SG\d{4}\]", proc.stderr):
        return None
    return f"exit {proc.returncode} without error[SG...]: {proc.stderr[-500:]!r}"


def run_wave(rt: Runtime, ks: range) -> list[str]:
    started = [
        (
            client_args(k),
            rt.popen(*client_args(k)),
        )
        for k in ks
    ]
    problems = []
    for args, popen in started:
        try:
            out, err = popen.communicate(timeout=60)  # a safety net: each must answer
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.communicate()
            problems.append(f"sysg {' '.join(args)}: hung")
            continue
        why = judge(args, subprocess.CompletedProcess(args, popen.returncode, out, err))
        if why:
            problems.append(f"sysg {' '.join(args)}: {why}")
    return problems


def raw_statuses(rt: Runtime, count: int) -> list[str]:
    """``count`` connections open at once, each sending one status request before any
    reply is read: every one gets a whole, ok reply."""
    from systemg.protocol.codec import encode_request
    from systemg.protocol.messages import StatusRequest

    frame = encode_request(StatusRequest())
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # A blocking connect waits while the listen backlog is full (see the backlog
            # test below for what the CLI's timed connect does then).
            s.connect(str(rt.state / "control.sock"))
            s.settimeout(60)  # a safety net
            s.sendall(frame)
            socks.append(s)
        problems = []
        for s in socks:
            with s.makefile("rb") as reader:
                line = reader.readline()
            reply = json.loads(line) if line.endswith(b"\n") else {"ok": False, "raw": line}
            if not reply.get("ok"):
                problems.append(f"raw status: {line[:300]!r}")
        return problems
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_100_concurrent_clients_get_answers_and_the_supervisor_is_unharmed(rt: Runtime) -> None:
    m = new_marker()
    before = cgroup_dirs()
    targets = [
        harness.service(t, command=f"exec sleep 1000.{m}5{i}") for i, t in enumerate(TARGETS)
    ]
    by = harness.start_with_bystanders(rt, "hm", m, *targets, names=("t0", "t1"))
    sup = rt.supervisor_pid()
    assert sup is not None
    for t in TARGETS:
        rt.wait_state(t, "running")
    fds_before = fd_count(sup)

    problems = raw_statuses(rt, 100)
    for first in range(0, 100, WAVE):
        problems += run_wave(rt, range(first, first + WAVE))
    problems += raw_statuses(rt, 100)
    assert not problems, "\n".join(problems)

    assert rt.status()["supervisor_pid"] == sup
    assert thread_count(sup) == 1
    for t in TARGETS:
        rt.sysg("start", "-s", t, "--daemonize", check=True)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert {n: u["phase"] for n, u in units.items()} == dict.fromkeys(units, "running"), units
    for i, t in enumerate(TARGETS):
        mains = [p.pid for p in leaders(f"1000.{m}5{i}")]
        assert mains == [pid_of(units[t])], f"{t}: processes {mains}, status {units[t]}"
    wait_for(
        lambda: fd_count(sup) <= fds_before + FD_SLACK,
        what=f"the supervisor's fds back to {fds_before} (now {fd_count(sup)})",
    )
    by.check()
    assert_clean_shutdown(rt, m, before)


# The CLI's own connect (every command goes through it), with the runtime's environment.
CLI_CONNECT = """
from systemg.cli.client import connect
from systemg.errors import SysgError
from systemg.paths import Mode, Paths
try:
    connect(Paths.for_mode(Mode.USER), 1.0).close()
except SysgError as exc:
    print(exc.code.value, exc.diagnostics[0].message)
else:
    print("connected")
"""


def test_full_listen_backlog_is_not_reported_as_no_supervisor(rt: Runtime) -> None:
    """More clients at once than the listen backlog holds (a burst before the loop
    accepts): a client must wait for its turn, or at worst say the supervisor is not
    answering (SG0205) — never that there is none. The supervisor is frozen only to keep
    the backlog full for as long as the check takes."""
    m = new_marker()
    before = cgroup_dirs()
    by = harness.start_with_bystanders(rt, "bl", m, names=("t0",))
    sup = rt.supervisor_pid()
    assert sup is not None
    held: list[socket.socket] = []
    os.kill(sup, signal.SIGSTOP)
    try:
        while len(held) < 4096:  # until the kernel says the backlog is full
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(rt.state / "control.sock"))
            except BlockingIOError:
                s.close()
                break
            held.append(s)
        assert len(held) < 4096, "the backlog never filled"
        probe = subprocess.run(
            [sys.executable, "-c", CLI_CONNECT],
            env=rt.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split()[0] in ("connected", "SG0205"), probe.stdout
    finally:
        os.kill(sup, signal.SIGCONT)
        for s in held:
            s.close()
    assert rt.status()["supervisor_pid"] == sup
    by.check()
    assert_clean_shutdown(rt, m, before)


# --- 5. the manifest replaced while `restart` reads it --------------------------------

VERSIONS = (1, 2, 3, 4)
CHANGED = ("s0", "s1", "s2", "s3")


def versioned(marker: str, version: int, broken: str = "") -> str:
    """Four services whose command names ``version``: ``exec sleep 1000.<m>6<i><version>``
    (the tickers are in a project of their own, ``mxby``, as ``restart`` bounces an unchanged
    project). ``broken`` makes it invalid."""
    services = [
        harness.service(name, command=f"exec sleep 1000.{marker}6{i}{version}")
        for i, name in enumerate(CHANGED)
    ]
    match broken:
        case "unknown-key":
            services[1] = services[1].replace("command:", "comand:")
        case "dangling-dependency":
            services[2] += '    depends_on: ["nowhere"]\n'
        case "bad-policy":
            services[3] += '    restart_policy: "sometimes"\n'
    return harness.manifest("mx", *services)


def applied_version(rt: Runtime, marker: str) -> dict[str, tuple[str, str]]:
    """``service -> (version digit status shows, version digit its process runs)``."""
    out = {}
    for unit in rt.status()["units"]:
        name = unit["name"]
        if name not in CHANGED:
            continue
        i = CHANGED.index(name)
        pattern = re.compile(rf"1000\.{marker}6{i}(\d)")
        said = pattern.search(unit["command"])
        ran = pattern.search(cmdline(pid_of(unit)))
        out[name] = (said.group(1) if said else "?", ran.group(1) if ran else "?")
    return out


class Replacer(threading.Thread):
    """Replaces the manifest over and over with valid and invalid variants, by rename
    (atomic) and, every other time, by truncate + two writes (a reader may see it empty
    or cut in the middle of a quoted command, which is never valid YAML)."""

    def __init__(self, path: Path, variants: list[str]) -> None:
        super().__init__(daemon=True)
        self.path, self.variants = path, variants
        self.done = threading.Event()
        self.writes = 0

    def run(self) -> None:
        while not self.done.is_set():
            text = self.variants[self.writes % len(self.variants)]
            if self.writes % 2:
                tmp = self.path.with_name(self.path.name + ".new")
                tmp.write_text(text)
                os.replace(tmp, self.path)
            else:
                cut = text.rindex("exec sleep") + 5
                with open(self.path, "r+") as fh:
                    fh.truncate(0)
                    fh.write(text[:cut])
                    fh.flush()
                    time.sleep(0.005)  # the fault: a half-written file on disk
                    fh.write(text[cut:])
            self.writes += 1
            time.sleep(0.01)  # pacing, so the supervisor gets the CPU too


@pytest.mark.slow
def test_manifest_replaced_mid_restart_is_applied_whole_or_refused(rt: Runtime) -> None:
    m = new_marker()
    before = cgroup_dirs()
    cfg = rt.write("mx.yaml", versioned(m, 1))
    tickers = harness.manifest("mxby", harness.ticker("t0", m), harness.ticker("t1", m))
    rt.sysg("start", "-c", str(rt.write("by.yaml", tickers)), "--daemonize", check=True)
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    by = harness.Bystanders(rt, "mxby", ("t0", "t1"))
    by.record()
    variants = [versioned(m, 2), versioned(m, 1, "unknown-key"), versioned(m, 3)]
    variants += [versioned(m, 2, "dangling-dependency"), versioned(m, 4)]
    variants += [versioned(m, 3, "bad-policy")]
    replacer = Replacer(cfg, variants)
    outcomes = {"applied": 0, "refused": 0}
    replacer.start()
    try:
        for _ in range(20):
            if min(outcomes.values()) >= 2:
                break
            pids = {u["name"]: pid_of(u) for u in rt.status()["units"]}
            proc = rt.sysg("restart", "-p", "mx", timeout=120)
            seen = applied_version(rt, m)
            versions = {v for pair in seen.values() for v in pair}
            assert len(versions) == 1, f"half-applied: {seen}\n{proc.stdout}{proc.stderr}"
            if proc.returncode == 0:
                outcomes["applied"] += 1
            else:
                harness.assert_clean_error(proc, "SG0301")
                assert "nothing was changed" in proc.stderr, proc.stderr
                now = {u["name"]: pid_of(u) for u in rt.status()["units"]}
                assert now == pids, "a refused restart changed something"
                outcomes["refused"] += 1
    finally:
        replacer.done.set()
        replacer.join(timeout=30)
    assert min(outcomes.values()) >= 2, outcomes
    rt.write("mx.yaml", versioned(m, 4))
    rt.sysg("restart", "-p", "mx", check=True)
    assert set(applied_version(rt, m).values()) == {("4", "4")}
    for i in range(len(CHANGED)):
        assert len(leaders(f"1000.{m}6{i}")) == 1
    by.check()
    assert_clean_shutdown(rt, m, before)


# --- 6. a NUL byte in an argument ------------------------------------------------------


def test_nul_byte_in_exec_is_refused_and_the_running_supervisor_is_unaffected(
    rt: Runtime,
) -> None:
    m, f = new_marker(), new_marker()
    before = cgroup_dirs()
    by = harness.start_with_bystanders(rt, "nb", m, names=("t0", "t1"))
    sup = rt.supervisor_pid()
    # YAML's "\0" escape is a NUL; the other service of the project must not start either.
    bad = rt.write(
        "nul.yaml",
        'version: "2"\nprojects:\n  nul:\n    services:\n'
        f'      good:\n        command: "exec sleep 1000.{f}"\n'
        '      bad:\n        exec: ["sleep", "10\\0x"]\n',
    )
    assert "\\0" in bad.read_text()
    where = "services.bad.exec[1]"
    checked = rt.sysg("validate", "-c", str(bad))
    harness.assert_clean_error(checked, "SG0210")
    assert where in checked.stderr
    started = rt.sysg("start", "-c", str(bad), "--daemonize")
    harness.assert_clean_error(started, "SG0210")
    assert where in started.stderr
    assert "NUL" in started.stderr
    assert rt.status()["supervisor_pid"] == sup
    assert {u["project"]["id"] for u in rt.status()["units"]} == {"nb"}
    assert not leaders(f)
    by.check()
    assert_clean_shutdown(rt, m, before)
