"""The sandbox keys through the real supervisor, read back from the kernel (docs/security.md).

Each service is a small Python program that tries what its sandbox should allow or refuse
and prints one ``name result`` line per try (``ok`` or the errno name), then stays up, so
the test can also read ``/proc/PID/status`` and ``/proc/PID/mountinfo`` of the running
service: ``Seccomp: 2`` and ``Seccomp_filters``, ``NoNewPrivs``, ``ro`` on every protected
mount.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.privileged.system_helpers import proc_status, read_until
from tests.support.runtime import Runtime, pid_of, wait_for

PY = "/usr/bin/python3.11"

PROBE = """\
import errno, os, socket, sys, time
CHECKS = {
    "mkdir": lambda a: os.mkdir(a),
    "rmdir": lambda a: os.rmdir(a),
    "write": lambda a: open(a, "w").write("x"),
    "read": lambda a: open(a).read(),
    "list": lambda a: os.listdir(a),
    "socket": lambda a: socket.socket(getattr(socket, a), socket.SOCK_DGRAM).close(),
    "chown": lambda a: os.chown(a, os.getuid(), os.getgid()),
    "sethostname": lambda a: socket.sethostname(a),
}
for arg in sys.argv[1:]:
    name, _, target = arg.partition("=")
    try:
        CHECKS[name](target)
        result = "ok"
    except OSError as exc:
        result = errno.errorcode.get(exc.errno, str(exc.errno))
    print(f"{arg} {result}", flush=True)
print("done", flush=True)
time.sleep(3600)
"""


def _manifest(rt: Runtime, body: str, checks: list[str], *, user: str = "") -> Path:
    probe = rt.write("probe.py", PROBE)
    args = ", ".join(f'"{c}"' for c in checks)
    who = f"\n        user: {user}" if user else ""
    return rt.write(
        "sysg.yaml",
        f"""\
version: "2"
projects:
  sbx:
    services:
      box:
        exec: ["{PY}", "{probe}", {args}]{who}
        working_dir: /
        isolation:
{body}
""",
    )


def _results(rt: Runtime) -> dict[str, str]:
    text = read_until(rt.logs / "sbx" / "box.log", "done")
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "=" in parts[-2]:
            out[parts[-2]] = parts[-1]
    return out


def _start(rt: Runtime, manifest: Path) -> int:
    proc = rt.sysg("start", "-c", str(manifest), "--daemonize")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pid = int(pid_of(rt.wait_state("box", "running")))
    rt.seen_pids.add(pid)
    return pid


def _mounts(pid: int) -> dict[str, set[str]]:
    """Mount point -> its per-mount options, the top-most mount where several are stacked."""
    out: dict[str, set[str]] = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out[fields[4]] = set(fields[5].split(","))
    return out


def test_seccomp_denies_with_the_configured_errno_and_the_rest_runs(rt: Runtime) -> None:
    target = rt.work / f"made-{uuid.uuid4().hex[:8]}"
    manifest = _manifest(
        rt,
        '          seccomp: ["@system-service", "~mkdir", "~@clock"]\n'
        "          seccomp_action: EACCES",
        [f"mkdir={target}", f"write={rt.work}/written", "sethostname=x"],
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results[f"mkdir={target}"] == "EACCES"  # denied: the configured errno
    assert not target.exists()
    assert results[f"write={rt.work}/written"] == "ok"  # allowed: open/write still work
    # sethostname is in @privileged, which @system-service does not allow: default errno.
    assert results["sethostname=x"] == "EACCES"
    status = proc_status(pid)
    assert status["Seccomp"] == "2"
    assert status["Seccomp_filters"] == "1"
    # A root service that keeps CAP_SYS_ADMIN can load a filter without NoNewPrivs.
    assert status["NoNewPrivs"] == "0"
    assert rt.unit("box")["phase"] == "running"


def test_seccomp_kill_ends_the_service_with_sigsys(rt: Runtime) -> None:
    target = rt.work / "never"
    manifest = _manifest(
        rt,
        '          seccomp: ["~mkdir"]\n          seccomp_action: kill',
        [f"write={rt.work}/before", f"mkdir={target}"],
    )
    proc = rt.sysg("start", "-c", str(manifest), "--daemonize")
    assert proc.returncode in (0, 1), proc.stderr

    def exited() -> dict[str, object] | None:
        unit = rt.unit("box")
        return unit if unit.get("last_exit") else None

    unit = wait_for(exited, timeout=20, what="box to be killed by SIGSYS")
    last = unit["last_exit"]
    assert isinstance(last, dict)
    assert last.get("signal") in (int(signal.SIGSYS), "SIGSYS"), last
    assert (rt.work / "before").exists()  # it ran until the denied call
    assert not target.exists()


def test_address_families_refuse_packet_sockets(rt: Runtime) -> None:
    manifest = _manifest(
        rt,
        "          address_families: [AF_UNIX, AF_INET]",
        ["socket=AF_PACKET", "socket=AF_INET6", "socket=AF_INET", "socket=AF_UNIX"],
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results["socket=AF_PACKET"] == "EAFNOSUPPORT"
    assert results["socket=AF_INET6"] == "EAFNOSUPPORT"
    assert results["socket=AF_INET"] == "ok"
    assert results["socket=AF_UNIX"] == "ok"
    status = proc_status(pid)
    assert (status["Seccomp"], status["Seccomp_filters"]) == ("2", "1")


def test_deny_listed_family_and_both_filters_stack(rt: Runtime) -> None:
    manifest = _manifest(
        rt,
        '          seccomp: "@system-service"\n          address_families: ["~AF_PACKET"]',
        ["socket=AF_PACKET", "socket=AF_INET6"],
        user="www-data",
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results["socket=AF_PACKET"] == "EAFNOSUPPORT"
    assert results["socket=AF_INET6"] == "ok"
    status = proc_status(pid)
    assert (status["Seccomp"], status["Seccomp_filters"]) == ("2", "2")
    assert status["NoNewPrivs"] == "1"  # implied: www-data keeps no CAP_SYS_ADMIN


def test_protect_system_strict_with_a_read_write_hole(rt: Runtime) -> None:
    hole = rt.work / "data"
    hole.mkdir()
    os.chown(hole, 33, 33)
    manifest = _manifest(
        rt,
        f"          protect_system: strict\n          read_write_paths: [{hole}]",
        [
            f"write={hole}/ok",
            f"write={rt.work}/outside",
            "write=/usr/local/sysg-test",
            "write=/etc/sysg-test",
            "write=/dev/null",
        ],
        user="www-data",
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results[f"write={hole}/ok"] == "ok"
    assert (hole / "ok").exists()
    assert results[f"write={rt.work}/outside"] == "EROFS"
    assert results["write=/usr/local/sysg-test"] == "EROFS"
    assert results["write=/etc/sysg-test"] == "EROFS"
    assert results["write=/dev/null"] == "ok"
    mounts = _mounts(pid)
    assert "ro" in mounts["/"]
    assert "rw" in mounts[str(hole)]
    for api in ("/proc", "/dev"):
        assert "rw" in mounts[api], (api, mounts[api])
    # Every mount below / but the API filesystems and the hole is read-only.
    for point, opts in mounts.items():
        exempt = point.startswith(("/proc", "/dev", "/sys", str(hole)))
        if not exempt:
            assert "ro" in opts, (point, opts)


def test_protect_system_full_and_read_only_paths(rt: Runtime) -> None:
    ro = rt.work / "ro"
    ro.mkdir()
    manifest = _manifest(
        rt,
        f"          protect_system: full\n          read_only_paths: [{ro}]",
        ["write=/etc/sysg-test", f"write={ro}/x", f"write={rt.work}/fine"],
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results["write=/etc/sysg-test"] == "EROFS"
    assert results[f"write={ro}/x"] == "EROFS"
    assert results[f"write={rt.work}/fine"] == "ok"  # root of the tree stays writable
    mounts = _mounts(pid)
    for path in ("/etc", "/usr", str(ro)):
        assert "ro" in mounts[path], path
    assert not Path("/etc/sysg-test").exists()


def test_inaccessible_paths_and_protect_home(rt: Runtime) -> None:
    secret_dir = rt.work / "secret"
    secret_dir.mkdir()
    (secret_dir / "key").write_text("top secret")
    secret_file = rt.work / "token"
    secret_file.write_text("token")
    os.chmod(secret_file, 0o644)
    manifest = _manifest(
        rt,
        f"          inaccessible_paths: [{secret_dir}, {secret_file}, -/no/such/path]\n"
        "          protect_home: true",
        [f"list={secret_dir}", f"read={secret_file}", "list=/root", "list=/home"],
        user="www-data",
    )
    pid = _start(rt, manifest)
    results = _results(rt)
    assert results[f"list={secret_dir}"] == "EACCES"
    assert results[f"read={secret_file}"] == "EACCES"
    assert results["list=/root"] == "EACCES"
    assert results["list=/home"] == "EACCES"
    mounts = _mounts(pid)
    assert "ro" in mounts[str(secret_dir)]
    assert "ro" in mounts[str(secret_file)]


def test_a_missing_protected_path_fails_the_start_naming_it(rt: Runtime) -> None:
    manifest = _manifest(rt, "          read_only_paths: [/no/such/dir]", ["list=/"])
    proc = rt.sysg("start", "-c", str(manifest), "--daemonize")
    assert proc.returncode != 0
    assert "SG0210" in proc.stderr
    assert "isolation.read_only_paths[0]" in proc.stderr
    assert "/no/such/dir" in proc.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [("apparmor_profile", "sysg-test"), ("selinux_context", "system_u:system_r:sysg_t:s0")],
)
def test_lsm_keys_are_refused_where_the_lsm_is_not_active(
    rt: Runtime, key: str, value: str
) -> None:
    manifest = _manifest(rt, f'          {key}: "{value}"', ["list=/"])
    proc = rt.sysg("start", "-c", str(manifest), "--daemonize")
    assert proc.returncode != 0, proc.stdout
    assert "SG0723" in proc.stderr, proc.stderr
    assert f"isolation.{key}" in proc.stderr
    assert "not active" in proc.stderr


def test_lsm_key_with_a_dash_starts_and_is_reported_not_applied(rt: Runtime) -> None:
    manifest = _manifest(rt, '          apparmor_profile: "-sysg-test"', ["list=/"])
    _start(rt, manifest)
    unit = rt.unit("box")
    assert unit["enforcement"] == "partial"
    assert any("isolation.apparmor_profile" in line for line in unit["not_applied"]), unit


def test_sandbox_composes_with_namespaces_listen_and_notify(rt: Runtime) -> None:
    """Every key at once, as nobody: the service still gets its socket, sends READY=1 over
    the notify socket, writes its private /tmp, and the read-back holds."""
    # Inline: private_tmp hides the test's files under the host /tmp.
    server = "\\n".join(
        [
            "import os, socket",
            "s = socket.socket(fileno=3)",
            "open('/tmp/private', 'w').write('x')",
            "try:",
            "    open('/etc/x', 'w')",
            "    print('etc writable', flush=True)",
            "except OSError as exc:",
            "    print('etc', exc.errno, flush=True)",
            "n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
            "n.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])",
            "while True:",
            "    c, _ = s.accept()",
            "    c.recv(4096)",
            "    c.sendall(b'HTTP/1.0 200 OK\\\\r\\\\n\\\\r\\\\nhi')",
            "    c.close()",
        ]
    )
    from tests.privileged.system_helpers import free_port, http_get

    port = free_port()
    manifest = rt.write(
        "sysg.yaml",
        f"""\
version: "2"
projects:
  sbx:
    services:
      box:
        exec: ["{PY}", "-c", "{server}"]
        user: nobody
        working_dir: /
        notify: true
        listen: ["127.0.0.1:{port}"]
        isolation:
          network: false
          mount: true
          pid: true
          user: true
          private_tmp: true
          private_devices: true
          seccomp: ["@system-service"]
          address_families: [AF_UNIX, AF_INET, AF_INET6]
          protect_system: strict
          protect_home: true
""",
    )
    pid = _start(rt, manifest)
    assert http_get(port)[1].endswith(b"hi")
    text = read_until(rt.logs / "sbx" / "box.log", "etc")
    assert "etc 30" in text  # EROFS
    status = proc_status(pid)
    assert (status["Seccomp"], status["Seccomp_filters"], status["NoNewPrivs"]) == ("2", "2", "1")
