"""Seccomp needs no root: a supervisor run by an ordinary user filters its services too.

CI runs this file as root and again as ``nobody``: either way the service gets the filter
(``Seccomp: 2``) and a denied call fails with the configured errno. Without root the filter
is loaded under NoNewPrivs, which it implies (docs/security.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.runtime import Runtime, pid_of, wait_for

CODE = (
    "import errno, os, socket, time\\n"
    "def t(f):\\n"
    "    try:\\n"
    "        f()\\n"
    "        return 'ok'\\n"
    "    except OSError as e:\\n"
    "        return errno.errorcode[e.errno]\\n"
    "print('mkdir', t(lambda: os.mkdir(os.environ['TARGET'])), flush=True)\\n"
    "print('packet', t(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)), flush=True)\\n"
    "print('inet', t(lambda: socket.socket(socket.AF_INET).close()), flush=True)\\n"
    "time.sleep(3600)"
)


def test_seccomp_and_address_families_without_root(rt: Runtime) -> None:
    target = rt.work / "made"
    cfg = rt.write(
        "sysg.yaml",
        f"""\
version: "2"
projects:
  unpriv:
    services:
      box:
        exec: ["{sys.executable}", "-c", "{CODE}"]
        env:
          vars:
            TARGET: "{target}"
        isolation:
          seccomp: ["@system-service", "~mkdir"]
          seccomp_action: EROFS
          address_families: [AF_UNIX, AF_INET, AF_INET6]
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pid = int(pid_of(rt.wait_state("box", "running")))
    log = rt.logs / "unpriv" / "box.log"

    def lines() -> str | None:
        text = log.read_text() if log.exists() else ""
        return text if "inet" in text else None

    text = wait_for(lines, timeout=15, what="the probe's output")
    assert "mkdir EROFS" in text
    assert not target.exists()
    assert "packet EAFNOSUPPORT" in text
    assert "inet ok" in text
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Seccomp"].strip() == "2"
    assert status["Seccomp_filters"].strip() == "2"
    if os.geteuid() != 0:
        assert status["NoNewPrivs"].strip() == "1"
