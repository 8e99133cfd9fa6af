"""A service reopens its own stdout/stderr whatever user it runs as (issue 9, item 6).

A daemon that logs to ``/dev/stdout`` does not write to fd 1: it *opens* ``/dev/stdout``
(a symlink to ``/proc/self/fd/1``), and that open goes through the permission check of the
pipe inode behind fd 1. The supervisor creates the output pipes, so they must belong to the
uid/gid the service runs as, or the open fails with ``EACCES`` (nginx:
``open() "/dev/stdout" failed (13: Permission denied)``).

- nginx from Debian, unmodified, as ``www-data`` under ``sysg --sys``: once on a privileged
  port with ``CAP_NET_BIND_SERVICE`` and once on a high port with no capability. It serves a
  request, and the access-log line of that request arrives in ``sysg logs`` as ``stdout``.
- ``/bin/sh`` reopening ``/dev/stdout``, ``/dev/stderr`` and ``/proc/self/fd/1`` as ``nobody``
  under every isolation key (alone and all together), and under ``--drop-privileges``.

Every test stops its supervisor and checks, by pid, that nothing it started is left.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.privileged.system_helpers import (
    CAP_SETS,
    cap_masks,
    cgroup_dirs,
    chown_tree,
    free_port,
    http_get,
    port_free,
    privileged_port,
    proc_status,
    remove_cgroup_dirs,
    sys_status,
    units,
    wait_unit,
)
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

NGINX = "/usr/sbin/nginx"
CAP_NET_BIND_SERVICE = 1 << 10
WWW_DATA = 33
NOBODY = 65534

needs_nginx = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason=f"{NGINX} is not installed (Debian package 'nginx'; .ci/run installs it)",
)


# --- reading what the user sees ---------------------------------------------------------------
def _log_lines(rt: Runtime, service: str) -> list[dict[str, Any]]:
    proc = rt.sysg("--sys", "logs", "-s", service, "-n", "1000", "--format", "json")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _wait_lines(rt: Runtime, service: str, wanted: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Poll ``sysg logs`` until every ``(stream, text)`` is there; fail with the whole log."""

    def has_all() -> list[dict[str, Any]]:
        lines = _log_lines(rt, service)
        got = {(entry["stream"], entry["line"]) for entry in lines}
        if all(any(s == stream and text in line for s, line in got) for stream, text in wanted):
            return lines
        return []

    try:
        return wait_for(has_all, timeout=20, what=f"{wanted} in the log of {service}")
    except AssertionError:
        dump = "\n".join(f"{e['stream']} {e['line']}" for e in _log_lines(rt, service))
        raise AssertionError(f"{service}: expected {wanted} in `sysg logs`, got:\n{dump}") from None


def _pipe_owner(pid: int, fd: int) -> tuple[int, int]:
    """Owner of the inode behind ``/proc/PID/fd/FD`` (stat follows the magic link)."""
    st = os.stat(f"/proc/{pid}/fd/{fd}")
    return st.st_uid, st.st_gid


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _stop_all(rt: Runtime, pids: list[int]) -> None:
    stopped = rt.sysg("--sys", "stop", "--supervisor", check=True)
    assert "Supervisor stopped" in stopped.stdout
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15, what=f"{pids} to exit")
    assert rt.supervisor_pid() is None


# --- nginx ------------------------------------------------------------------------------------


def _nginx_site(rt: Runtime, port: int, marker: str) -> Path:
    """A world-readable config and document root; a ``www-data`` directory for pid and temp."""
    var = rt.work / "nginx-var"
    var.mkdir()
    html = rt.work / "html"
    html.mkdir()
    (html / f"{marker}.txt").write_text(f"{marker}\n")
    for path in (html, *html.iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    chown_tree(var, "www-data")
    temps = "\n".join(
        f"  {kind}_temp_path {var}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return rt.write(
        "nginx.conf",
        f"""\
daemon off;
master_process on;
worker_processes 1;
error_log /dev/stderr notice;
pid {var}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log /dev/stdout;
{temps}
  server {{
    listen 127.0.0.1:{port};
    root {html};
  }}
}}
""",
    )


def _nginx_manifest(rt: Runtime, conf: Path, capability: bool) -> Path:
    caps = "        capabilities: [CAP_NET_BIND_SERVICE]\n" if capability else ""
    # -e: the error log before the config is read (the built-in /var/log/nginx path is
    # root's); -p: the prefix, so nothing defaults under /var/lib/nginx.
    return rt.write(
        "ngx.yaml",
        f"""\
version: "2"
projects:
  ngxout:
    services:
      web:
        exec: ["{NGINX}", "-c", "{conf}", "-e", "/dev/stderr", "-p", "{conf.parent}/nginx-var/"]
        user: www-data
{caps}        stop_timeout: 10s
""",
    )


def _answer(rt: Runtime, port: int, path: str) -> tuple[int, bytes]:
    answers: list[tuple[int, bytes]] = []

    def get() -> bool:
        try:
            answers.append(http_get(port, path, timeout=5))
        except OSError:
            return False
        return True

    try:
        wait_for(get, timeout=20, what=f"nginx to answer on 127.0.0.1:{port}")
        return answers[-1]
    except AssertionError:
        dump = "\n".join(f"{e['stream']} {e['line']}" for e in _log_lines(rt, "web"))
        state = units(sys_status(rt)).get("web")
        raise AssertionError(f"nginx never answered; unit {state}; its log:\n{dump}") from None


@needs_nginx
@pytest.mark.parametrize(
    "privileged",
    [
        pytest.param(True, id="port-below-1024", marks=HOST_GLOBAL),
        pytest.param(False, id="high-port"),
    ],
)
def test_nginx_as_www_data_logs_to_dev_stdout(rt: Runtime, privileged: bool) -> None:
    port = privileged_port() if privileged else free_port()
    marker = f"sg-{uuid.uuid4().hex}"
    conf = _nginx_site(rt, port, marker)
    manifest = _nginx_manifest(rt, conf, capability=privileged)
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        master = int(pid_of(wait_unit(rt, "web", "running")))
        status, body = _answer(rt, port, f"/{marker}.txt")
        assert (status, body) == (200, f"{marker}\n".encode())

        # The access line of that very request, on the service's stdout: nginx opened
        # /dev/stdout as www-data. Its error log (/dev/stderr) arrived as stderr.
        lines = _wait_lines(
            rt,
            "web",
            [("stdout", f'"GET /{marker}.txt HTTP/1.1" 200'), ("stderr", "start worker process")],
        )
        assert not [e for e in lines if "Permission denied" in e["line"]], lines

        workers = wait_for(lambda: _children(master), what="nginx to fork its worker")
        rt.seen_pids.update(workers)
        for pid in (master, *workers):
            st = proc_status(pid)
            assert st["Uid"].split() == [str(WWW_DATA)] * 4, (pid, st["Name"])
            assert st["Gid"].split() == [str(WWW_DATA)] * 4, (pid, st["Name"])
            want = CAP_NET_BIND_SERVICE if privileged else 0
            assert cap_masks(pid) == dict.fromkeys(CAP_SETS, want)
            # What the kernel shows: both output pipes belong to the service's user.
            assert _pipe_owner(pid, 1) == _pipe_owner(pid, 2) == (WWW_DATA, WWW_DATA)
        assert "worker process" in Path(f"/proc/{workers[0]}/cmdline").read_text()

        _stop_all(rt, [master, *workers])
        assert port_free(port), f"127.0.0.1:{port} still bound after stop"
        assert cgroup_dirs("ngxout") == []
    finally:
        remove_cgroup_dirs("ngxout")


# --- a plain program under each isolation key -------------------------------------------------
ISOLATION_KEYS = ("network", "mount", "pid", "user", "private_tmp", "private_devices")
ISOLATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    **{key: (key,) for key in ISOLATION_KEYS},
    "no_new_privileges": ("no_new_privileges",),
    "all": (*ISOLATION_KEYS, "no_new_privileges"),
}


def _reopen_script(marker: str) -> str:
    # Each line goes through open(2) of a path, never through the inherited fd itself.
    return (
        f"echo out-{marker} > /dev/stdout; "
        f"echo err-{marker} > /dev/stderr; "
        f"echo fd1-{marker} > /proc/self/fd/1; "
        f"echo fd2-{marker} > /proc/self/fd/2; "
        "exec sleep 1000"
    )


def _reopen_manifest(rt: Runtime, marker: str, keys: tuple[str, ...], user: str | None) -> Path:
    lines = [
        'version: "2"',
        "projects:",
        "  reopen:",
        "    services:",
        "      echo:",
        f'        exec: ["/bin/sh", "-c", "{_reopen_script(marker)}"]',
        # The test's work dir is under the host /tmp, which private_tmp hides.
        '        working_dir: "/"',
    ]
    if user is not None:
        lines.append(f"        user: {user}")
    if keys:
        lines.append("        isolation:")
        lines.extend(f"          {key}: true" for key in keys)
    return rt.write("reopen.yaml", "\n".join(lines) + "\n")


def _check_reopen(
    rt: Runtime, marker: str, keys: tuple[str, ...], start_args: tuple[str, ...]
) -> None:
    started = rt.sysg("--sys", *start_args, "-c", str(rt.work / "reopen.yaml"), "--daemonize")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "SG0721" not in started.stderr, "every isolation key here must really apply"
    try:
        unit = wait_unit(rt, "echo", "running")
        _wait_lines(
            rt,
            "echo",
            [("stdout", f"out-{marker}"), ("stderr", f"err-{marker}"),
             ("stdout", f"fd1-{marker}"), ("stderr", f"fd2-{marker}")],
        )  # fmt: skip
        lines = _log_lines(rt, "echo")
        assert not [e for e in lines if "cannot create" in e["line"]], lines
        # Nothing landed on the wrong stream.
        by_text = {e["line"]: e["stream"] for e in lines}
        assert by_text[f"out-{marker}"] == by_text[f"fd1-{marker}"] == "stdout"
        assert by_text[f"err-{marker}"] == by_text[f"fd2-{marker}"] == "stderr"

        inspect = json.loads(rt.sysg("--sys", "inspect", "-s", "echo", "--format", "json").stdout)
        service = int(inspect["observed"]["service_pid"])  # PID 1 of its namespace with pid
        assert proc_status(service)["Uid"].split() == [str(NOBODY)] * 4
        assert _pipe_owner(service, 1) == _pipe_owner(service, 2) == (NOBODY, NOBODY)
        rt.seen_pids.add(service)
        # The reopen went through the isolated view: the private /dev's own symlink, and
        # /proc/self of the new pid namespace.
        if "private_devices" in keys:
            dev = f"/proc/{service}/root/dev"
            assert os.readlink(f"{dev}/stdout") == "/proc/self/fd/1"
            assert "kmsg" not in os.listdir(dev), "a private /dev has no host devices"
        if "pid" in keys:
            assert proc_status(service)["NSpid"].split()[-1] == "1"
        _stop_all(rt, sorted({int(pid_of(unit)), service}))
        assert cgroup_dirs("reopen") == []
    finally:
        remove_cgroup_dirs("reopen")


@pytest.mark.parametrize("isolation", list(ISOLATIONS), ids=list(ISOLATIONS))
def test_nobody_reopens_stdout_and_stderr_under_isolation(rt: Runtime, isolation: str) -> None:
    marker = f"sg-{uuid.uuid4().hex}"
    _reopen_manifest(rt, marker, ISOLATIONS[isolation], user="nobody")
    _check_reopen(rt, marker, ISOLATIONS[isolation], ("start",))


def test_drop_privileges_service_reopens_stdout_and_stderr(rt: Runtime) -> None:
    """No ``user:`` key; ``--drop-privileges`` makes it ``nobody``, and its pipes follow."""
    marker = f"sg-{uuid.uuid4().hex}"
    keys = ("pid", "private_devices")
    _reopen_manifest(rt, marker, keys, user=None)
    _check_reopen(rt, marker, keys, ("--drop-privileges", "start"))
