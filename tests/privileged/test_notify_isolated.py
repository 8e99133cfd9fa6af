"""sd_notify in privileged mode: a service as ``nobody`` with every namespace on reaches
its notify socket, is up on READY=1, and its STATUS= shows in ``status --format json``.

The state root is not under /tmp: ``private_tmp`` gives the service its own /tmp, so a
socket there would be out of its sight (the real system root is /var/lib/systemg).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.privileged.system_helpers import proc_status, sys_status, units
from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

PY_NOTIFY = (
    "import os, socket, time\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "wd = os.environ.get('WATCHDOG_PID')\n"
    "s.sendto(f'READY=1\\nSTATUS=isolated and ready, pid {os.getpid()} wd {wd}'.encode(),"
    " os.environ['NOTIFY_SOCKET'])\n"
    "time.sleep(1000)\n"
)


@pytest.fixture
def srt() -> Iterator[Runtime]:
    runtime = Runtime(base=Path("/srv"))
    try:
        yield runtime
    finally:
        runtime.close()


def test_notify_as_nobody_in_every_namespace(srt: Runtime) -> None:
    m = new_marker()
    script = srt.write("notify.py", PY_NOTIFY)
    cfg = srt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  iso:
    services:
      api:
        exec: [/usr/bin/python3, "{script}", "{m}"]
        working_dir: /
        user: nobody
        notify: true
        watchdog: 5m
        start_timeout: 20s
        isolation: {{network: true, mount: true, pid: true, user: true, private_tmp: true}}
""",
    )
    proc = srt.sysg("--sys", "start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    api = units(sys_status(srt))["api"]
    assert api["phase"] == "running"
    assert api["readiness"] == "healthy"
    # WATCHDOG_PID is the service's pid as it sees itself: 1, the init of its pid namespace.
    assert api["notify_status"] == "isolated and ready, pid 1 wd 1"
    assert api["not_applied"] == []
    pid = int(pid_of(api))
    # The kernel's view: nobody, and in namespaces of its own.
    service = wait_for(lambda: [p.pid for p in with_marker(m)], what="the service process")
    status = proc_status(service[-1])
    assert status["Uid"].split()[0] == "65534"
    for ns in ("net", "mnt", "pid", "user"):
        assert os.readlink(f"/proc/{service[-1]}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    assert pid > 0
    srt.sysg("--sys", "stop", "--supervisor", check=True)
    wait_for(lambda: not with_marker(m), what="the service to be gone")


def test_http_health_check_of_a_service_in_its_own_network_namespace(srt: Runtime) -> None:
    """Its 127.0.0.1 is not the host's: the probe must connect from inside its namespace."""
    m = new_marker()
    cfg = srt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  ns:
    services:
      web:
        command: "ip link set lo up 2>/dev/null; exec python3 -m http.server 18089 \\
          --bind 127.0.0.1 # {m}"
        working_dir: /
        isolation: {{network: true}}
        deployment:
          health_check: {{url: "http://127.0.0.1:18089/", interval: 100ms, retries: 100}}
""",
    )
    proc = srt.sysg("--sys", "start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    web = units(sys_status(srt))["web"]
    assert web["phase"] == "running"
    assert web["readiness"] == "healthy"
    assert web["last_probe"]["result"] == "pass"
    assert web["last_probe"]["message"] == "HTTP 200"
    inspect = srt.sysg("--sys", "inspect", "-s", "ns/web", "--format", "json")
    assert '"probes"' in inspect.stdout
    assert "HTTP 200" in inspect.stdout
    # The host's 127.0.0.1:18089 is not that server.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 18089)) != 0
    srt.sysg("--sys", "stop", "--supervisor", check=True)
    wait_for(lambda: not with_marker(m), what="the service to be gone")


@HOST_GLOBAL  # a cgroup
def test_side_commands_share_the_services_network_and_cgroup(srt: Runtime) -> None:
    """A command probe and ``onstart`` run inside the service's network namespace and
    cgroup (they see its 127.0.0.1 and count against its limits); ``onstop``, after the
    service is gone, gets an empty namespace of its own — never the host's network."""
    m = new_marker()
    out = srt.root / "side"
    out.mkdir()
    out.chmod(0o777)
    record = srt.write(
        "record.sh",
        f"#!/bin/sh\nreadlink /proc/self/ns/net > {out}/$1.net\n"
        f"cat /proc/self/cgroup > {out}/$1.cg\n",
        0o755,
    )
    probe = srt.write(
        "probe.py",
        "import socket, subprocess, sys\n"
        "socket.create_connection(('127.0.0.1', 18091), 1).close()\n"
        f"subprocess.run(['{record}', 'probe'], check=True)\n",
    )
    cfg = srt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  side:
    services:
      web:
        exec: [python3, -m, http.server, "18091", --bind, 127.0.0.1, --directory, "/{m}/.."]
        working_dir: /
        user: nobody
        isolation: {{network: true}}
        limits: {{cgroup: {{pids_max: 64}}}}
        deployment:
          health_check: {{command: "python3 {probe}", interval: 100ms, retries: 100}}
        hooks:
          onstart: {{command: "{record} onstart"}}
          onstop: {{command: "{record} onstop"}}
""",
    )
    proc = srt.sysg("--sys", "start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    web = units(sys_status(srt))["web"]
    assert web["readiness"] == "healthy", web
    service = wait_for(lambda: [p.pid for p in with_marker(m)], what="the service process")[-1]
    service_net = os.readlink(f"/proc/{service}/ns/net")
    host_net = os.readlink("/proc/self/ns/net")
    assert service_net != host_net
    with open(f"/proc/{service}/cgroup") as fh:
        service_pids = next(line for line in fh if ":pids:" in line).strip()
    assert "systemg" in service_pids
    onstart = wait_for((out / "onstart.cg").exists, what="the onstart hook")
    assert onstart
    for which in ("probe", "onstart"):
        assert (out / f"{which}.net").read_text().strip() == service_net, which
        assert service_pids in (out / f"{which}.cg").read_text().splitlines(), which
    srt.sysg("--sys", "stop", "--supervisor", check=True)
    wait_for(lambda: not with_marker(m), what="the service to be gone")
    wait_for((out / "onstop.cg").exists, what="the onstop hook")
    onstop_net = (out / "onstop.net").read_text().strip()
    assert onstop_net not in (host_net, service_net)
    assert "systemg" not in (out / "onstop.cg").read_text()
