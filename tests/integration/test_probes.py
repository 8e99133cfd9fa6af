"""``daemon.probes`` against real sockets, servers and processes, on the real ``Loop``:

- tcp: a listener (that never accepts) passes with a latency; a closed port is unreachable;
  a listener whose accept queue is full drops the SYN, so the attempt times out; a name that
  only DNS could answer is unreachable at once, without a lookup;
- http (a tiny ``http.server`` in a subprocess): 200 passes, 503 is unhealthy and quoted, a
  handler that sleeps times out while a 50 ms loop timer keeps firing, a 10 MB body passes
  with the server still far from done sending (the body is never read), the request carries
  Host, User-Agent and Connection: close;
- netns (root): a server on 127.0.0.1 inside its own network namespace is unreachable from
  the host and passes with ``netns_pid``; the test process's namespace is the same after;
- command: exit 0 passes with its output, exit 3 is unhealthy, a hung command and the child
  it forked are killed at the timeout, a plan with ``user: nobody`` runs as uid 65534, a
  launch failure is unreachable, and cancel() kills, calls nothing back and leaks no fd;
- cancel() of a tcp or http attempt calls nothing back and closes the socket.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from systemg.daemon.loop import Loop
from systemg.daemon.probes import (
    Attempt,
    Outcome,
    ProbeResult,
    command_attempt,
    http_attempt,
    tcp_attempt,
)
from systemg.manifest.model import Service
from systemg.spawn.plan import SpawnContext, SpawnPlan, build_plan
from tests.support.loops import run_until

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (setns, user switching)")
HUGE = 10 * 1024 * 1024

SERVER = r"""
import http.server, socket, sys, time

report_path = sys.argv[1]
port = int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "--netns":
    from systemg.spawn import linux
    linux.unshare(linux.CLONE_NEWNET)
    linux.loopback_up()

def report(line):
    with open(report_path, "a") as fh:
        fh.write(line + "\n")

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ok":
            self.reply(200, b"fine\n")
        elif self.path == "/bad":
            self.reply(503, b"down for\nmaintenance " + b"x" * 500)
        elif self.path == "/slow":
            report("slow started")
            time.sleep(60)
            self.reply(200, b"late\n")
        elif self.path == "/echo":
            report("headers " + repr(sorted((k.lower(), v) for k, v in self.headers.items())))
            self.reply(200, b"")
        elif self.path == "/huge":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            chunk, sent = b"y" * 65536, 0
            try:
                while sent < HUGE:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                report("huge complete")
            except OSError:
                report(f"huge broken {sent}")
        else:
            self.reply(404, b"")

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
""".replace("HUGE", str(HUGE))


def run_one_more_turn(loop: Loop) -> None:
    """Let the loop run everything already due (a late callback would show up here)."""
    loop.call_later(0.05, loop.stop)
    loop.run()


@pytest.fixture
def loop() -> Iterator[Loop]:
    errors: list[str] = []
    lp = Loop(on_error=errors.append)
    try:
        yield lp
    finally:
        lp.close()
    assert not errors, errors[0]


@dataclass
class Results:
    got: list[ProbeResult]

    def __call__(self, result: ProbeResult) -> None:
        self.got.append(result)

    def wait(self, loop: Loop) -> ProbeResult:
        run_until(loop, lambda: bool(self.got))
        assert len(self.got) == 1
        return self.got[0]


@pytest.fixture
def results() -> Results:
    return Results([])


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def gone(pid: int) -> bool:
    """Not running any more: no /proc entry, or a zombie nobody reaps (not ours)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@dataclass
class HttpServer:
    proc: subprocess.Popen[bytes]
    port: int
    report: Path

    def lines(self) -> list[str]:
        return self.report.read_text().splitlines() if self.report.exists() else []


def start_server(tmp: Path, port: int = 0, *, netns: bool = False) -> HttpServer:
    script = tmp / "server.py"
    script.write_text(SERVER)
    report = tmp / "report.txt"
    argv = [sys.executable, str(script), str(report), str(port)] + (["--netns"] if netns else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        pytest.fail(f"the test server did not start: {line!r}")
    return HttpServer(proc, int(line), report)


def stop_server(server: HttpServer) -> None:
    server.proc.kill()
    server.proc.wait()
    if server.proc.stdout is not None:
        server.proc.stdout.close()


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = start_server(tmp_path_factory.mktemp("http"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


def closed_port() -> tuple[socket.socket, int]:
    """A port bound but not listening: nobody else can take it, and a SYN gets a RST."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs (a blackhole)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(address)
            fillers.append(client)
            if not select.select([], [client], [], 0.5)[1]:
                break  # this SYN was dropped: the queue is full
        else:
            pytest.fail("the accept queue never filled")
        yield address[1]
    finally:
        for client in fillers:
            client.close()
        server.close()


# --- tcp ----------------------------------------------------------------------------------
def test_tcp_listener_passes_even_if_it_never_accepts(
    loop: Loop, results: Results, listener: socket.socket
) -> None:
    tcp_attempt(loop, "127.0.0.1", listener.getsockname()[1], 5.0, results)
    result = results.wait(loop)
    assert result.outcome is Outcome.PASS, result
    assert result.latency_s > 0
    assert abs(result.at - time.time()) < 60
    assert "127.0.0.1" in result.message


def test_tcp_localhost_name_passes(loop: Loop, results: Results, listener: socket.socket) -> None:
    tcp_attempt(loop, "localhost", listener.getsockname()[1], 5.0, results)
    assert results.wait(loop).outcome is Outcome.PASS


def test_tcp_closed_port_is_unreachable(loop: Loop, results: Results) -> None:
    holder, port = closed_port()
    with holder:
        tcp_attempt(loop, "127.0.0.1", port, 5.0, results)
        result = results.wait(loop)
    assert result.outcome is Outcome.UNREACHABLE
    assert "refused" in result.message.lower()


def test_tcp_dropped_syn_times_out(loop: Loop, results: Results, full_listener: int) -> None:
    tcp_attempt(loop, "127.0.0.1", full_listener, 0.5, results)
    result = results.wait(loop)
    assert result.outcome is Outcome.TIMEOUT, result
    assert "0.5s" in result.message


def test_a_name_that_needs_dns_is_unreachable_without_a_lookup(
    loop: Loop, results: Results
) -> None:
    fds = fd_count()
    attempt = tcp_attempt(loop, "probe-target.invalid", 80, 30.0, results)
    assert not results.got, "done ran inside the starting call"
    assert attempt.running
    result = results.wait(loop)
    assert result.outcome is Outcome.UNREACHABLE
    assert "DNS" in result.message
    assert fd_count() == fds  # no socket was even opened


def test_cancel_of_a_tcp_attempt_closes_its_socket(
    loop: Loop, results: Results, full_listener: int
) -> None:
    fds = fd_count()
    attempt = tcp_attempt(loop, "127.0.0.1", full_listener, 0.2, results)
    assert fd_count() == fds + 1
    attempt.cancel()
    assert fd_count() == fds
    assert not attempt.running
    loop.call_later(0.4, loop.stop)  # past the 0.2 s timeout: nothing fires
    loop.run()
    assert not results.got


# --- http ---------------------------------------------------------------------------------
def test_http_200_passes(loop: Loop, results: Results, http_server: HttpServer) -> None:
    http_attempt(loop, "127.0.0.1", http_server.port, "/ok", 5.0, results)
    result = results.wait(loop)
    assert (result.outcome, result.message) == (Outcome.PASS, "HTTP 200")


def test_http_request_headers(loop: Loop, results: Results, http_server: HttpServer) -> None:
    http_attempt(loop, "localhost", http_server.port, "/echo", 5.0, results)
    assert results.wait(loop).outcome is Outcome.PASS
    run_until(loop, lambda: any(line.startswith("headers") for line in http_server.lines()))
    line = next(line for line in http_server.lines() if line.startswith("headers"))
    assert f"('host', 'localhost:{http_server.port}')" in line
    assert "('user-agent', 'sysg-probe')" in line
    assert "('connection', 'close')" in line


def test_http_503_is_unhealthy_and_quotes_the_body(
    loop: Loop, results: Results, http_server: HttpServer
) -> None:
    http_attempt(loop, "127.0.0.1", http_server.port, "/bad", 5.0, results)
    result = results.wait(loop)
    assert result.outcome is Outcome.UNHEALTHY
    assert result.message.startswith("HTTP 503: down for maintenance xxx")
    assert result.message.count("x") <= 100


def test_http_404_is_unhealthy(loop: Loop, results: Results, http_server: HttpServer) -> None:
    http_attempt(loop, "127.0.0.1", http_server.port, "/missing", 5.0, results)
    result = results.wait(loop)
    assert (result.outcome, result.message) == (Outcome.UNHEALTHY, "HTTP 404")


def test_http_refused_is_unreachable(loop: Loop, results: Results) -> None:
    holder, port = closed_port()
    with holder:
        http_attempt(loop, "127.0.0.1", port, "/ok", 5.0, results)
        assert results.wait(loop).outcome is Outcome.UNREACHABLE


def test_http_not_http_is_unhealthy(loop: Loop, results: Results, listener: socket.socket) -> None:
    http_attempt(loop, "127.0.0.1", listener.getsockname()[1], "/", 5.0, results)
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        result = results.wait(loop)
    assert result.outcome is Outcome.UNHEALTHY
    assert "HTTP" in result.message


def test_http_slow_answer_times_out_and_the_loop_keeps_running(
    loop: Loop, results: Results, http_server: HttpServer
) -> None:
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        if not results.got:
            loop.call_later(0.05, tick)

    loop.call_later(0.05, tick)
    http_attempt(loop, "127.0.0.1", http_server.port, "/slow", 1.0, results)
    result = results.wait(loop)
    assert result.outcome is Outcome.TIMEOUT, result
    assert "no HTTP answer" in result.message
    # A blocked loop would have fired the 50 ms timer once or twice in that second.
    assert len(ticks) >= 5, ticks


def test_http_huge_body_passes_without_reading_it(
    loop: Loop, results: Results, http_server: HttpServer
) -> None:
    http_attempt(loop, "127.0.0.1", http_server.port, "/huge", 10.0, results)
    result = results.wait(loop)
    assert (result.outcome, result.message) == (Outcome.PASS, "HTTP 200")
    run_until(loop, lambda: any(line.startswith("huge") for line in http_server.lines()))
    line = next(line for line in http_server.lines() if line.startswith("huge"))
    # The probe closed after the headers: the server could not send the 10 MB.
    assert line.startswith("huge broken"), line
    assert int(line.split()[-1]) < HUGE // 2


def test_cancel_of_an_http_attempt_closes_its_socket(
    loop: Loop, results: Results, http_server: HttpServer
) -> None:
    fds = fd_count()
    before = http_server.lines().count("slow started")
    attempt = http_attempt(loop, "127.0.0.1", http_server.port, "/slow", 30.0, results)
    run_until(loop, lambda: http_server.lines().count("slow started") > before)
    assert fd_count() == fds + 1
    attempt.cancel()
    assert fd_count() == fds
    assert not attempt.running
    run_one_more_turn(loop)
    assert not results.got


# --- network namespace ------------------------------------------------------------------------
@needs_root
def test_probe_inside_a_service_network_namespace(
    loop: Loop, results: Results, tmp_path: Path
) -> None:
    own = os.readlink("/proc/self/ns/net")
    holder, port = closed_port()  # the host's 127.0.0.1:port refuses
    server = start_server(tmp_path, port, netns=True)
    try:
        assert os.readlink(f"/proc/{server.proc.pid}/ns/net") != own
        http_attempt(loop, "127.0.0.1", port, "/ok", 5.0, results)
        assert results.wait(loop).outcome is Outcome.UNREACHABLE
        results.got.clear()

        tcp_attempt(loop, "127.0.0.1", port, 5.0, results, netns_pid=server.proc.pid)
        assert results.wait(loop).outcome is Outcome.PASS
        assert os.readlink("/proc/self/ns/net") == own
        results.got.clear()

        http_attempt(loop, "127.0.0.1", port, "/ok", 5.0, results, netns_pid=server.proc.pid)
        result = results.wait(loop)
        assert (result.outcome, result.message) == (Outcome.PASS, "HTTP 200")
        assert os.readlink("/proc/self/ns/net") == own
        results.got.clear()

        # Our own namespace (pid 1 may be elsewhere): the host's refusing port again.
        tcp_attempt(loop, "127.0.0.1", port, 5.0, results, netns_pid=os.getpid())
        assert results.wait(loop).outcome is Outcome.UNREACHABLE
    finally:
        stop_server(server)
        holder.close()
    assert os.readlink("/proc/self/ns/net") == own


def test_netns_of_a_gone_process_is_unreachable(loop: Loop, results: Results) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    tcp_attempt(loop, "127.0.0.1", 9, 5.0, results, netns_pid=proc.pid)
    result = results.wait(loop)
    assert result.outcome is Outcome.UNREACHABLE
    assert "namespace" in result.message


def test_netns_needs_root(loop: Loop, results: Results, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    tcp_attempt(loop, "127.0.0.1", 9, 5.0, results, netns_pid=os.getpid())
    result = results.wait(loop)
    assert result == ProbeResult(
        Outcome.UNREACHABLE,
        "cannot enter the service's network namespace: not root",
        result.latency_s,
        result.at,
    )


# --- command ------------------------------------------------------------------------------
def plan_of(script: str, user: str | None = None) -> SpawnPlan:
    """The plan a caller builds: the service's, with the probe command as argv."""
    svc = Service(name="web", argv=("sh", "-c", script), user=user)
    return build_plan(svc, "p", SpawnContext.current()).plan


@dataclass
class Output:
    chunks: list[tuple[str, bytes]]

    def __call__(self, stream: str, data: bytes) -> None:
        self.chunks.append((stream, data))

    def text(self, stream: str = "stdout") -> str:
        return b"".join(d for s, d in self.chunks if s == stream).decode()


@pytest.fixture
def output() -> Output:
    return Output([])


def test_command_exit_0_passes_with_its_output(
    loop: Loop, results: Results, output: Output
) -> None:
    fds = fd_count()
    command_attempt(
        loop, plan_of("echo hi; echo oops >&2; exit 0"), 10.0, results, on_output=output
    )
    result = results.wait(loop)
    assert (result.outcome, result.message) == (Outcome.PASS, "exited with code 0")
    assert output.text() == "hi\n"
    assert output.text("stderr") == "oops\n"
    assert fd_count() == fds


def test_command_exit_3_is_unhealthy(loop: Loop, results: Results, output: Output) -> None:
    command_attempt(loop, plan_of("exit 3"), 10.0, results, on_output=output)
    result = results.wait(loop)
    assert (result.outcome, result.message) == (Outcome.UNHEALTHY, "exited with code 3")


def test_command_killed_at_its_timeout_with_its_child(
    loop: Loop, results: Results, output: Output
) -> None:
    fds = fd_count()
    plan = plan_of("echo $$; sleep 1000 & echo $!; wait")
    command_attempt(loop, plan, 0.5, results, on_output=output)
    result = results.wait(loop)
    assert result.outcome is Outcome.TIMEOUT, result
    assert "0.5s" in result.message
    shell, child = (int(x) for x in output.text().split())
    assert not os.path.exists(f"/proc/{shell}"), "the probe command was not reaped"
    run_until(loop, lambda: gone(child))
    assert fd_count() == fds


@needs_root
def test_command_runs_as_the_service_user(loop: Loop, results: Results, output: Output) -> None:
    command_attempt(loop, plan_of("id -u; id -g", user="nobody"), 10.0, results, on_output=output)
    result = results.wait(loop)
    assert result.outcome is Outcome.PASS, (result, output.chunks)
    assert output.text().split() == ["65534", "65534"]


def test_command_that_cannot_launch_is_unreachable(
    loop: Loop, results: Results, output: Output
) -> None:
    fds = fd_count()
    svc = Service(name="web", argv=("/nonexistent/probe",))
    plan = build_plan(svc, "p", SpawnContext.current()).plan
    command_attempt(loop, plan, 10.0, results, on_output=output)
    assert not results.got
    result = results.wait(loop)
    assert result.outcome is Outcome.UNREACHABLE
    assert "/nonexistent/probe" in result.message
    assert fd_count() == fds


def test_cancel_of_a_command_kills_it_and_calls_nothing_back(
    loop: Loop, results: Results, output: Output
) -> None:
    fds = fd_count()
    attempt: Attempt = command_attempt(
        loop,
        plan_of("echo $$; while :; do echo more; sleep 0.01; done"),
        30.0,
        results,
        on_output=output,
    )
    run_until(loop, lambda: "more" in output.text())
    pid = int(output.text().split()[0])
    attempt.cancel()
    seen = len(output.chunks)
    run_until(loop, lambda: not os.path.exists(f"/proc/{pid}") and fd_count() == fds)
    run_one_more_turn(loop)
    assert not results.got
    assert len(output.chunks) == seen, "output arrived after cancel()"


def test_many_attempts_leave_no_fd(loop: Loop, results: Results) -> None:
    fds = fd_count()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)  # never accepted: room for all 20 in the queue
        port = server.getsockname()[1]
        for _ in range(20):
            tcp_attempt(loop, "127.0.0.1", port, 5.0, results)
            command_attempt(loop, plan_of("exit 0"), 5.0, results, on_output=lambda *_: None)
        run_until(loop, lambda: len(results.got) == 40)
    assert {r.outcome for r in results.got} == {Outcome.PASS}
    assert fd_count() == fds
