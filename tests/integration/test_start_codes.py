"""The code `sysg start` gives a service that exits before it is up: SG0105 when this run's
output says its address is taken, SG0102 otherwise, even if an earlier run's log lines said
"address already in use" (docs/commands.md, SG0105). Real sockets and processes."""

from __future__ import annotations

import socket

import pytest

from tests.support.runtime import Runtime

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: >-
          {command}
        notify: true
        restart_policy: never
"""
BIND = "python3 -c \"import socket; socket.socket().bind(('127.0.0.1', {port}))\""


@pytest.mark.timeout(120)
def test_port_in_use_is_sg0105_and_only_for_the_run_that_said_so(rt: Runtime) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        rt.write("systemg.yaml", MANIFEST.format(command=BIND.format(port=port)))
        first = rt.sysg("start", "--daemonize")
        assert first.returncode == 1
        assert "error[SG0105]" in first.stderr
        assert "already in use" in first.stderr
        assert not any(w in first.stderr for w in ("lsof", "netstat", "kill -9"))
    finally:
        squatter.close()
    # The log still holds that run's "Address already in use"; this run fails otherwise.
    rt.write("systemg.yaml", MANIFEST.format(command="echo bad config >&2; exit 3"))
    second = rt.sysg("restart")
    assert second.returncode == 1
    assert "SG0102" in second.stderr, second.stderr
    assert "SG0105" not in second.stderr
