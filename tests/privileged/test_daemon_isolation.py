"""Namespaces and the placeholder keys through the real supervisor (docs/security.md §8).

The spawn tests prove each namespace on a bare ``launch``; here the same keys go through
``sysg --sys start``: the supervisor's status, ``inspect``, ``stop`` and exit reporting must
work with them (a pid-namespaced service is PID 1 behind an intermediate process), and the
keys that are accepted but not enforced are announced at start (``SG0721``) and in ``status``.
"""

from __future__ import annotations

import json
import os
import uuid

from tests.privileged.system_helpers import read_until, sys_status, units, wait_unit
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

PIDNS = (
    "import os, signal, sys, time\\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\\n"
    "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\\n"
    "print('me:', os.getpid(), 'pids:', pids, flush=True)\\n"
    "time.sleep(3600)"
)


def _probe(marker: str) -> str:
    return (
        "import os, socket, stat, time\\n"
        f"open('/tmp/{marker}', 'w').write('inside')\\n"
        "blocks = [n for n in os.listdir('/dev') if stat.S_ISBLK(os.lstat('/dev/' + n).st_mode)]\\n"
        "print('ifaces:', sorted(n for _, n in socket.if_nameindex()), flush=True)\\n"
        "print('blocks:', blocks, flush=True)\\n"
        "time.sleep(3600)"
    )


def test_daemon_namespaces_status_inspect_and_stop(rt: Runtime) -> None:
    marker = f"sg-{uuid.uuid4().hex}"
    manifest = rt.write(
        "iso.yaml",
        f"""\
version: "2"
projects:
  iso:
    services:
      pidns:
        exec: ["/usr/bin/python3", "-c", "{PIDNS}"]
        isolation:
          pid: true
      boxed:
        exec: ["/usr/bin/python3", "-c", "{_probe(marker)}"]
        user: nobody
        working_dir: "/"  # the test's work dir is under the host /tmp, hidden by private_tmp
        isolation:
          network: true
          mount: true
          private_tmp: true
          private_devices: true
          user: true
      marked:
        exec: ["/usr/bin/python3", "-c", "import time\\ntime.sleep(3600)"]
        isolation:
          apparmor_profile: "-sysg-test"
          selinux_context: "-system_u:system_r:sysg_t:s0"
""",
    )
    proc = rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize")
    # LSM keys marked "-" on a host without the LSM are loud: one SG0721 warning each.
    assert "warning[SG0721]" in proc.stderr, proc.stderr
    assert "isolation.apparmor_profile" in proc.stderr
    assert "isolation.selinux_context" in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = units(sys_status(rt))
    assert data["marked"]["enforcement"] == "partial"
    assert data["pidns"]["enforcement"] == data["boxed"]["enforcement"] == "full"

    # pid: PID 1 of its own namespace, seeing only itself; the very pid status reports.
    logs = rt.logs / "iso"
    assert "me: 1 pids: [1]" in read_until(logs / "pidns.log", "me:")
    inspect = json.loads(rt.sysg("--sys", "inspect", "-s", "pidns", "--format", "json").stdout)
    obs = inspect["observed"]
    assert obs["nspid"][-1] == "1"
    assert obs["namespaces"]["pid"]["own"] is True
    assert obs["namespaces"]["mnt"]["own"] is True  # a private /proc needs its own mount ns
    assert inspect["mismatch"] == []
    service_pid = obs["service_pid"]
    assert service_pid == pid_of(data["pidns"])

    # boxed: own net/mnt/user namespaces, only lo, a private /tmp, no block devices.
    text = read_until(logs / "boxed.log", "blocks:")
    assert "ifaces: ['lo']" in text
    assert "blocks: []" in text
    assert not os.path.exists(f"/tmp/{marker}")
    boxed = json.loads(rt.sysg("--sys", "inspect", "-s", "boxed", "--format", "json").stdout)
    assert boxed["mismatch"] == [], boxed["mismatch"]
    for ns in ("net", "mnt", "user"):
        assert boxed["observed"]["namespaces"][ns]["own"] is True, ns
    bpid = boxed["observed"]["service_pid"]
    with open(f"/proc/{bpid}/uid_map") as fh:
        assert fh.read().split() == ["65534", "65534", "1"]

    # stop still stops a PID 1 (it handles SIGTERM) and its own exit status is reported.
    stop = rt.sysg("--sys", "stop", "-s", "pidns", check=True)
    assert "Service 'pidns' stopped" in stop.stdout
    wait_for(lambda: not pid_alive(service_pid), what="the pid-namespaced service to exit")
    unit = wait_unit(rt, "pidns", "stopped")
    assert unit["last_exit"]["exit_code"] == 7, unit["last_exit"]
