"""``sysg security`` reads protections from the process, whoever made them.

The sandbox keys (``protect_system``, ``protect_home``, ``seccomp``) are not enforced on this
branch yet, so these services make the same kernel state themselves before exec'ing ``sleep``:
inside their private mount namespace (``isolation.mount``; the script refuses to run in the
host's) they remount ``/``, ``/usr``, ``/etc``, the homes, ``/proc/sys`` and the cgroup mounts
the way systemd's ``ProtectSystem=``/``ProtectHome=``/``ProtectKernelTunables=``/
``ProtectControlGroups=`` do; another loads an allow-all seccomp filter. The report must score
them as ``systemd-analyze`` scores the matching unit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.privileged.security_helpers import differences, needs_systemd_analyze, systemd_analyze
from tests.support.runtime import Runtime, wait_for

pytestmark = needs_systemd_analyze

GUARD = '[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] || exit 99; '
HOMES = "for d in /home /root /run/user; do [ -d $d ] || continue; "
STRICT = (
    GUARD + HOMES + "mount -t tmpfs -o mode=000 tmpfs $d; done; "
    "mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys; "
    "for m in /sys/fs/cgroup /sys/fs/cgroup/*; do mount -o remount,bind,ro $m; done; "
    "mount -o remount,bind,ro /; exec /bin/sleep 3600"
)
FULL = (
    GUARD + HOMES + "mount --bind $d $d; mount -o remount,bind,ro $d; done; "
    "for d in /usr /etc; do mount --bind $d $d; mount -o remount,bind,ro $d; done; "
    "exec /bin/sleep 3600"
)
# struct sock_filter {u16 code; u8 jt, jf; u32 k}: one BPF_RET|BPF_K of SECCOMP_RET_ALLOW.
SECCOMP = (
    "import ctypes, os, struct\\n"
    "insn = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0x7FFF0000))\\n"
    "prog = struct.pack('HxxxxxxP', 1, ctypes.addressof(insn))\\n"
    "libc = ctypes.CDLL(None, use_errno=True)\\n"
    "assert libc.prctl(22, 2, ctypes.c_char_p(prog), 0, 0) == 0, ctypes.get_errno()\\n"
    "os.execv('/bin/sleep', ['sleep', '3600'])\\n"
)
UNITS = {
    "strict": "ProtectSystem=strict\nProtectHome=yes\nProtectKernelTunables=yes\n"
    "ProtectControlGroups=yes\nPrivateMounts=yes\n",
    "full": "ProtectSystem=full\nProtectHome=read-only\nPrivateMounts=yes\n",
}
MANIFEST = f"""\
version: "2"
projects:
  obs:
    services:
      strict:
        exec: ["/bin/sh", "-c", '{STRICT}']
        working_dir: /
        isolation:
          mount: true
      full:
        exec: ["/bin/sh", "-c", '{FULL}']
        working_dir: /
        isolation:
          mount: true
      filtered:
        exec: ["/usr/bin/python3", "-c", "{SECCOMP}"]
        working_dir: /
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rt = Runtime()
    try:
        rt.sysg("start", "-c", str(rt.write("obs.yaml", MANIFEST)), "--daemonize", check=True)

        def settled() -> dict[str, Any] | None:
            doc = json.loads(rt.sysg("security", "--format", "json", check=True).stdout)
            # the services exec sleep once their mounts (or filter) are in place
            ready = [s for s in doc["services"] if _comm(s["pid"]) == "sleep"]
            return doc if len(ready) == 3 else None

        yield wait_for(settled, timeout=20, what="the services to exec sleep"), tmp_path_factory
    finally:
        rt.close()


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _service(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["services"] if s["service"] == name)


@pytest.mark.parametrize("name", list(UNITS))
def test_mount_protections_score_as_systemds(report: Any, name: str) -> None:
    doc, tmp = report
    ours = _service(doc, name)
    value, theirs = systemd_analyze(tmp.mktemp(name), name, UNITS[name])
    assert set(differences(ours, theirs)) == {"KeyringMode"}
    assert abs(ours["exposure"] - value) <= 1.0
    print(f"{name}: sysg {ours['exposure']} {ours['label']}, systemd {value}")


def test_a_loaded_seccomp_filter_is_seen(report: Any) -> None:
    doc, _ = report
    checks = {c["json_field"]: c for c in _service(doc, "filtered")["checks"]}
    swap = checks["SystemCallFilter_swap"]
    # The kernel shows a filter but not its contents: until the seam reads systemg's own
    # filter, every group counts as still allowed.
    assert swap["badness"] == 10
    assert swap["description"].startswith("System call filter defined for service")
    assert swap["basis"] == "filter"
