"""Identity, environment, capabilities and fds of a real service, read back from /proc."""

from __future__ import annotations

import os

import pytest

from systemg.errors import Code, SpawnError
from systemg.manifest.model import EnvSpec, Service
from systemg.spawn.plan import SpawnContext, build_plan
from tests.privileged.spawn_helpers import Spawner, py, root_ctx
from tests.privileged.system_helpers import privileged_port
from tests.support.serial import HOST_GLOBAL

SLEEP = "import sys,time; print('ready', flush=True); time.sleep(60)"
NET_BIND = 1 << 10

# Binds a port below 1024 (80 unless another process holds it: ``privileged_port``).
BIND_LOW = """
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('127.0.0.1', {port}))
    print('bind: ok', flush=True)
except OSError as e:
    print('bind: errno', e.errno, flush=True)
time.sleep(60)
"""


def caps(run, pid=None) -> dict[str, int]:
    return {
        k: int(run.status(k, pid), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    }


def test_switch_sets_exact_uid_gid_and_groups(spawner: Spawner) -> None:
    svc = py(SLEEP, user="nobody", group="nogroup", supplementary_groups=("www-data", "1"))
    run = spawner.start(svc)
    run.read_until("ready")
    assert run.status("Uid").split() == ["65534"] * 4
    assert run.status("Gid").split() == ["65534"] * 4
    assert sorted(map(int, run.status("Groups").split())) == [1, 33, 65534]
    # NoNewPrivs is opt-in (isolation.no_new_privileges), unlike the upstream, which set it
    # for every service and broke setuid helpers inside them.
    assert run.status("NoNewPrivs") == "0"


def test_switch_rebuilds_environment(spawner: Spawner) -> None:
    ctx = root_ctx(env={"SG_CANARY": "secret", "LD_PRELOAD": "", "SSH_AUTH_SOCK": "/x"})
    run = spawner.start(py(SLEEP, user="nobody", env=EnvSpec(vars=(("A", "1"),))), ctx)
    run.read_until("ready")
    env = run.environ()
    assert env["HOME"] == "/nonexistent"
    assert env["USER"] == env["LOGNAME"] == "nobody"
    assert env["SHELL"] == "/usr/sbin/nologin"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["A"] == "1"
    assert "SG_CANARY" not in env


def test_inherit_env_keeps_canary_but_no_loader_vars(spawner: Spawner) -> None:
    ctx = root_ctx(env={"SG_CANARY": "secret", "LD_PRELOAD": ""})
    run = spawner.start(py(SLEEP, user="nobody", env=EnvSpec(inherit_env=True)), ctx)
    run.read_until("ready")
    env = run.environ()
    assert env["SG_CANARY"] == "secret"
    assert "LD_PRELOAD" not in env
    assert env["USER"] == "nobody"


def test_unswitched_service_inherits_minus_strip(spawner: Spawner) -> None:
    ctx = root_ctx(env={"SG_CANARY": "1", "DROP_ME": "x", "LISTEN_FDS": "4"})
    run = spawner.start(py(SLEEP, env=EnvSpec(strip=("DROP_ME",))), ctx)
    run.read_until("ready")
    env = run.environ()
    assert env["SG_CANARY"] == "1"
    assert "DROP_ME" not in env
    assert "LISTEN_FDS" not in env


@HOST_GLOBAL  # binds port 80 (or another below 1024)
def test_nobody_with_net_bind_service_has_exact_mask_and_binds_80(spawner: Spawner) -> None:
    run = spawner.start(
        py(
            BIND_LOW.format(port=privileged_port()),
            user="nobody",
            capabilities=("CAP_NET_BIND_SERVICE",),
        )
    )
    assert run.line("bind: ") == "ok"
    assert caps(run) == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), NET_BIND)


@HOST_GLOBAL  # binds port 80 (or another below 1024)
def test_nobody_without_caps_cannot_bind_and_has_none(spawner: Spawner) -> None:
    run = spawner.start(py(BIND_LOW.format(port=privileged_port()), user="nobody"))
    assert run.line("bind: ") == "errno 13"
    assert set(caps(run).values()) == {0}


@HOST_GLOBAL  # binds port 80 (or another below 1024)
def test_root_service_listing_caps_is_confined(spawner: Spawner) -> None:
    run = spawner.start(
        py(
            BIND_LOW.format(port=privileged_port()),
            capabilities=("CAP_NET_BIND_SERVICE", "CAP_CHOWN"),
        )
    )
    assert run.line("bind: ") == "ok"
    assert run.status("Uid").split()[0] == "0"
    assert set(caps(run).values()) == {NET_BIND | 1}


def test_root_service_without_caps_key_keeps_root_caps(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP))
    run.read_until("ready")
    mine = {k: int(v, 16) for k, v in _own_caps().items()}
    assert caps(run)["CapEff"] == mine["CapEff"] != 0


def _own_caps() -> dict[str, str]:
    with open("/proc/self/status") as fh:
        return dict(
            line.split(":\t", 1) for line in fh.read().splitlines() if line.startswith("Cap")
        )


def test_only_stdio_and_listen_fds_are_open(spawner: Spawner) -> None:
    leak = os.open("/dev/null", os.O_RDONLY)  # inheritable on purpose: must still be closed
    os.set_inheritable(leak, True)
    r, w = os.pipe()
    try:
        run = spawner.start(py(SLEEP), fds=(r,), names=("extra",))
        run.read_until("ready")
        assert sorted(map(int, os.listdir(f"/proc/{run.pid}/fd"))) == [0, 1, 2, 3]
        assert os.readlink(f"/proc/{run.pid}/fd/0") == "/dev/null"
        env = run.environ()
        assert env["LISTEN_FDS"] == "1"
        assert env["LISTEN_FDNAMES"] == "extra"
        assert env["LISTEN_PID"] == str(run.pid)
        assert os.stat(f"/proc/{run.pid}/fd/3").st_ino == os.fstat(r).st_ino
        assert os.getsid(run.pid) == run.pid
    finally:
        for fd in (leak, r, w):
            os.close(fd)


def test_missing_program_is_a_spawn_error_with_exact_message(spawner: Spawner) -> None:
    with pytest.raises(SpawnError) as info:
        spawner.start(Service("web", ("./server",), working_dir="/tmp"))
    assert str(info.value) == "service 'web': cannot execute './server': No such file or directory"
    assert info.value.code is Code.SPAWN_FAILED
    assert info.value.fault is not None
    assert info.value.fault.errno == 2


def test_not_root_refuses_user_switch() -> None:
    ctx = SpawnContext(is_root=False, supervisor_env=())
    with pytest.raises(SpawnError) as info:
        build_plan(py(SLEEP, user="nobody"), "p", ctx)
    assert str(info.value) == (
        "PermissionDenied: service 'web' requests user/group switching "
        "but sysg is not running as root"
    )
    assert info.value.code is Code.PERMISSION_DENIED


def test_drop_privileges_runs_as_nobody(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP), root_ctx(drop_privileges=True))
    run.read_until("ready")
    assert run.status("Uid").split()[0] == "65534"
    assert run.status("Gid").split()[0] == "65534"
    assert int(run.status("CapEff"), 16) == 0
