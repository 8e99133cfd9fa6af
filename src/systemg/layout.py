"""Where a supervisor's state lives, as plain strings: the one rule ``paths.Paths`` and the
CLI's fast path (``cli/quick.py``, which must not import pathlib or dataclasses) share; and the
stream labels of a service's log lines, which the daemon writes and the CLI reads.

User mode: ``$XDG_DATA_HOME/systemg`` (else ``~/.local/share/systemg``); system mode:
``/var/lib/systemg``; ``SYSTEMG_STATE_DIR`` overrides either.
"""

from __future__ import annotations

# `collections.abc` without the `collections` package (~1.3 ms the fast path need not pay):
# os has already loaded this module.
import os
from _collections_abc import Mapping

SYSTEM_STATE_DIR = "/var/lib/systemg"
SOCKET_NAME = "control.sock"
PID_FILE_NAME = "sysg.pid"
# A service log line's label: the service's own output, then what sysg runs on its behalf
# (docs/logs.md: a probe command, pre_start, the hooks, a blue/green switch and its check).
LOG_STREAMS = (
    "stdout",
    "stderr",
    "probe",
    "pre_start",
    "onstart",
    "onerr",
    "onstop",
    "switch",
    "switch_verify",
)


def user_state_dir(environ: Mapping[str, str]) -> str:
    """The user-mode default, before ``SYSTEMG_STATE_DIR``."""
    home = environ.get("HOME") or os.path.expanduser("~")
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data_home, "systemg")


def state_dir(system: bool, environ: Mapping[str, str]) -> str:
    """The state root of a mode, ``SYSTEMG_STATE_DIR`` applied."""
    default = SYSTEM_STATE_DIR if system else user_state_dir(environ)
    return environ.get("SYSTEMG_STATE_DIR") or default
