"""Namespaces of a real service: network, pid, mount/private_tmp, private_devices, user."""

from __future__ import annotations

import errno
import os
import select
import signal
import uuid

import pytest

from systemg.errors import SpawnError
from systemg.manifest.model import Isolation
from systemg.spawn import linux
from tests.privileged.spawn_helpers import Spawner, py
from tests.support.procscan import processes, zombie_children

SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


def test_network_namespace_has_only_lo_up(spawner: Spawner) -> None:
    code = (
        "import fcntl, socket, struct, time\n"
        "print('ifaces:', sorted(n for _, n in socket.if_nameindex()), flush=True)\n"
        "req = struct.pack('16sH14x', b'lo', 0)\n"
        "flags = struct.unpack('16sH14x', fcntl.ioctl(socket.socket(), 0x8913, req))[1]\n"
        "print('flags:', hex(flags), flush=True)\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('127.0.0.1', 22)); print('reach: yes', flush=True)\n"
        "except OSError as e:\n    print('reach: errno', e.errno, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = spawner.start(py(code, isolation=Isolation(network=True)))
    assert run.line("reach:") == "errno 111"  # refused: the host's port 22 is not there
    assert run.line("ifaces:") == "['lo']"
    assert int(run.line("flags:"), 16) & 1  # IFF_UP
    assert os.readlink(f"/proc/{run.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def test_pid_namespace_service_is_pid1_and_stops(spawner: Spawner) -> None:
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print('me:', os.getpid(), os.environ.get('LISTEN_PID'), 'pids:', pids, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = spawner.start(py(code, isolation=Isolation(pid=True)))
    assert run.line("me:") == "1 None pids: [1]"
    # The launched Child is the service itself: PID 1 of its namespace, our own child (no
    # intermediate between us), the leader of its session and process group.
    assert run.status("NSpid").split() == [str(run.pid), "1"]
    assert _parent(run.pid) == os.getpid()
    assert os.getsid(run.pid) == os.getpgid(run.pid) == run.pid
    # The launcher made this process a subreaper only while it reaped the intermediate.
    assert not linux.child_subreaper()
    os.killpg(run.pid, signal.SIGTERM)
    status = spawner.wait_exit(run)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 7


def test_pid_namespace_sigkill_status_comes_back(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP, isolation=Isolation(pid=True)))
    run.read_until("ready")
    assert run.status("NSpid").split() == [str(run.pid), "1"]
    os.kill(run.pid, signal.SIGKILL)
    status = spawner.wait_exit(run)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL


def test_pid_namespace_status_of_an_early_exit_is_kept(spawner: Spawner) -> None:
    # The service may exit before the launcher has reaped the intermediate: it stays a
    # zombie only we can reap, with its pidfd and status intact.
    run = spawner.start(py("import os; os._exit(5)", isolation=Isolation(pid=True)))
    assert select.select([run.child.pidfd], [], [], 10)[0]  # exited: the pidfd says so
    # Still unreaped, and it is the namespace's init that we hold, not an intermediate.
    assert run.status("State").startswith("Z")
    assert run.status("NSpid").split() == [str(run.pid), "1"]
    status = spawner.wait_exit(run)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 5


def test_pid_namespace_fault_after_the_fork_is_reported(spawner: Spawner) -> None:
    # The chdir fails in the service (after the pid fork): its (step, errno) record still
    # reaches the launcher, and neither process is left behind, not even as a zombie.
    service = py(SLEEP, working_dir="/nonexistent-sg", isolation=Isolation(pid=True))
    before = {p.pid for p in processes() if p.ppid == os.getpid()}
    with pytest.raises(SpawnError) as info:
        spawner.start(service)
    assert info.value.fault is not None
    assert (info.value.fault.step, info.value.fault.errno) == ("chdir", errno.ENOENT)
    assert {p.pid for p in processes() if p.ppid == os.getpid()} <= before
    assert zombie_children(os.getpid()) == []


def test_private_tmp_is_invisible_to_the_host(spawner: Spawner) -> None:
    name = f"sg-{uuid.uuid4().hex}"
    host_file = f"/tmp/{name}-host"
    with open(host_file, "w") as fh:
        fh.write("x")
    try:
        code = (
            "import os, time\n"
            f"open('/tmp/{name}', 'w').write('inside')\n"
            f"print('sees host file:', os.path.exists('{host_file}'), flush=True)\n"
            "time.sleep(60)\n"
        )
        run = spawner.start(py(code, isolation=Isolation(private_tmp=True)))
        assert run.line("sees host file:") == "False"
        assert not os.path.exists(f"/tmp/{name}")
        assert os.readlink(f"/proc/{run.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    finally:
        os.unlink(host_file)


def test_private_devices_minimal_dev(spawner: Spawner) -> None:
    code = (
        "import os, stat, time\n"
        "open('/dev/null', 'w').write('gone')\n"
        "blocks = [n for n in os.listdir('/dev') if stat.S_ISBLK(os.lstat('/dev/' + n).st_mode)]\n"
        "print('dev:', sorted(os.listdir('/dev')), 'blocks:', blocks, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = spawner.start(py(code, isolation=Isolation(private_devices=True)))
    line = run.line("dev:")
    assert line.endswith("blocks: []")
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm"):
        assert f"'{dev}'" in line


def test_user_namespace_maps_ids_one_to_one(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP, user="nobody", isolation=Isolation(user=True)))
    run.read_until("ready")
    assert run.proc("uid_map").split() == ["65534", "65534", "1"]
    assert run.proc("gid_map").split() == ["65534", "65534", "1"]
    assert run.status("Uid").split()[0] == "65534"
    assert os.readlink(f"/proc/{run.pid}/ns/user") != os.readlink("/proc/self/ns/user")
