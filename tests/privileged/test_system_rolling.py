"""A rolling restart in system mode drops no request (docs/manifest.md, "Rolling restarts";
docs/security.md §8).

``sysg --sys``: the service runs as ``www-data`` with ``capabilities: [NET_BIND_SERVICE]`` and
serves port 80 (or another free port below 1024) on the socket the supervisor binds as root
and holds (``listen:``). An HTTP load from 127.0.0.1 runs through three ``sysg --sys restart
-s web``; every request is answered, each restart gives a new pid running as www-data, and
the old pid is gone after it. A blue/green service runs each slot, and its switch, as
its user.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.privileged.system_helpers import (
    chown_tree,
    listener_pid,
    privileged_port,
    proc_status,
    sys_status,
)
from tests.support.bluegreen import SWITCH, VERIFY, calls, environ_of, free_ports, manifest
from tests.support.httpload import Load
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # a port below 1024

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rolling" / "server.py"


@pytest.fixture
def srt() -> Iterator[Runtime]:
    runtime = Runtime(base=Path("/srv"))  # www-data must reach server.py
    try:
        yield runtime
    finally:
        runtime.close()


def _web(rt: Runtime) -> dict[str, object]:
    """The unit's own row (the first; a draining generation comes after it)."""
    return next(u for u in sys_status(rt)["units"] if u["name"] == "web")


def test_system_rolling_restart_under_load_drops_nothing(srt: Runtime) -> None:
    try:
        uid = pwd.getpwnam("www-data").pw_uid
    except KeyError:
        pytest.skip("no www-data account")
    port = privileged_port()
    shutil.copy(EXAMPLE, srt.work / "server.py")
    manifest = srt.write(
        "web.yaml",
        f"""version: "2"
projects:
  roll:
    services:
      web:
        exec: ["/usr/bin/python3", "server.py"]
        user: www-data
        capabilities: [NET_BIND_SERVICE]
        listen: ["127.0.0.1:{port}"]
        notify: true
        start_timeout: 20s
        deployment:
          strategy: rolling
          grace_period: 300ms
""",
    )
    srt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True, timeout=60)
    first = wait_for(lambda: (u := _web(srt))["phase"] == "running" and u, what="web running")
    pids = [int(pid_of(first))]  # type: ignore[call-overload]
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = srt.sysg("--sys", "restart", "-s", "web", timeout=90)
            assert done.returncode == 0, (done.stdout, done.stderr)
            unit = _web(srt)
            pid = int(pid_of(unit))  # type: ignore[call-overload]
            assert unit["phase"] == "running"
            assert pid != pids[-1]
            assert not pid_alive(pids[-1])
            assert proc_status(pid)["Uid"].split() == [str(uid)] * 4
            pids.append(pid)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert load.ok >= 800
    assert set(pids) <= load.pids | {pids[0]}


def test_system_blue_green_runs_each_slot_and_the_switch_as_the_service(srt: Runtime) -> None:
    """``sysg --sys`` with ``user: www-data``: each generation runs as www-data with its slot
    in ``PORT``, and the switch command runs as www-data too (never as root)."""
    try:
        uid = pwd.getpwnam("www-data").pw_uid
    except KeyError:
        pytest.skip("no www-data account")
    a, b = free_ports(2)
    out = srt.work / "out"  # the service's directory, www-data's (the manifest stays root's)
    out.mkdir()
    shutil.copy(EXAMPLE, out / "server.py")
    for name, text in (("switch.sh", SWITCH), ("verify.sh", VERIFY)):
        (out / name).write_text(text)
    chown_tree(out, "www-data")
    text = manifest(a, b).replace(
        "    restart_policy: on-failure\n",
        "    restart_policy: on-failure\n    user: www-data\n    working_dir: out\n",
    )
    path = srt.write("web.yaml", text)
    srt.sysg("--sys", "start", "-c", str(path), "--daemonize", check=True, timeout=60)
    first = wait_for(lambda: (u := _web(srt))["phase"] == "running" and u, what="web running")
    old = int(pid_of(first))  # type: ignore[call-overload]
    assert first["slot"] == str(a)
    assert environ_of(old)["PORT"] == str(a)
    done = srt.sysg("--sys", "restart", "-s", "web", timeout=90)
    assert done.returncode == 0, (done.stdout, done.stderr)
    unit = _web(srt)
    pid = int(pid_of(unit))  # type: ignore[call-overload]
    assert (unit["slot"], environ_of(pid)["PORT"]) == (str(b), str(b))
    assert proc_status(pid)["Uid"].split() == [str(uid)] * 4
    assert not pid_alive(old)
    assert calls(out) == [(str(a), str(b), str(uid))]
    assert (out / "upstream").read_text().strip() == str(b)
    slot_file = srt.state / "projects" / str(unit["project"]["id"]) / "web.slot"  # type: ignore[index]
    assert slot_file.read_text() == f"{b}\n"


NGINX_CONF = """\
pid RUN/nginx.pid;
error_log /dev/stderr notice;
worker_processes 1;
events {}
http {
  access_log off;
  client_body_temp_path RUN/tmp/body;
  proxy_temp_path RUN/tmp/proxy;
  fastcgi_temp_path RUN/tmp/fastcgi;
  uwsgi_temp_path RUN/tmp/uwsgi;
  scgi_temp_path RUN/tmp/scgi;
  upstream app { include RUN/upstream.conf; }
  server { listen 127.0.0.1:PROXY; location / { proxy_pass http://app; } }
}
"""
NGINX_SWITCH = """\
#!/bin/sh
# traffic to port $1: nginx's upstream rewritten, nginx reloaded (it runs as this same user)
set -eu
echo "server 127.0.0.1:$1;" > RUN/upstream.conf.tmp
mv RUN/upstream.conf.tmp RUN/upstream.conf
kill -HUP "$(cat RUN/nginx.pid)"
echo "switched to $1 as $(id -un)"
"""
NGINX_VERIFY = """\
#!/bin/sh
set -eu
get() {
  python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())' "$1"
}
via=$(get http://127.0.0.1:PROXY/)
direct=$(get "http://127.0.0.1:$1/")
[ "${via%% *}" = "${direct%% *}" ]
"""


def test_system_blue_green_behind_nginx_drops_nothing(srt: Runtime) -> None:
    """Real nginx as the proxy, both it and the blue/green service as www-data in system
    mode; the switch rewrites nginx's upstream and reloads it (SIGHUP, as the same user).
    Three restarts under load: every request answered, each slot's process serves."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.skip("nginx is not installed")
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data account")
    proxy, a, b = free_ports(3)
    run = srt.work / "run"
    (run / "tmp").mkdir(parents=True)
    shutil.copy(EXAMPLE, srt.work / "server.py")

    def fill(text: str) -> str:
        return text.replace("RUN", str(run)).replace("PROXY", str(proxy))

    (run / "nginx.conf").write_text(fill(NGINX_CONF))
    (run / "upstream.conf").write_text(f"server 127.0.0.1:{a};\n")
    srt.write("switch.sh", fill(NGINX_SWITCH))
    srt.write("verify.sh", fill(NGINX_VERIFY))
    chown_tree(run, "www-data")
    path = srt.write(
        "web.yaml",
        f"""version: "2"
projects:
  bgx:
    services:
      nginx:
        exec: [{nginx}, -c, {run}/nginx.conf, -g, "daemon off;"]
        user: www-data
        restart_policy: always
      web:
        exec: [/usr/bin/python3, server.py]
        user: www-data
        restart_policy: on-failure
        deployment:
          strategy: rolling
          grace_period: 1s
          blue_green:
            slots: ["{a}", "{b}"]
            switch_command: sh switch.sh {{candidate_slot}}
            candidate_health_check:
              {{url: "http://127.0.0.1:{{slot}}/", interval: 100ms, retries: 100}}
            switch_verify:
              {{command: "sh verify.sh {{candidate_slot}}", interval: 200ms, retries: 25}}
""",
    )
    srt.sysg("--sys", "start", "-c", str(path), "--daemonize", check=True, timeout=60)
    first = wait_for(lambda: (u := _web(srt))["phase"] == "running" and u, what="web running")
    wait_for(lambda: listener_pid(proxy) is not None, what="nginx listening")
    pids = [int(pid_of(first))]  # type: ignore[call-overload]
    with Load("127.0.0.1", proxy) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = srt.sysg("--sys", "restart", "-s", "web", timeout=90)
            assert done.returncode == 0, (done.stdout, done.stderr)
            pid = int(pid_of(_web(srt)))  # type: ignore[call-overload]
            assert pid != pids[-1]
            assert not pid_alive(pids[-1])
            pids.append(pid)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert set(pids) <= load.pids | {pids[0]}
    log = (srt.logs / "bgx" / "web.log").read_text()
    assert log.count(" as www-data\n") == 3  # the switch's own output: it ran as the service
