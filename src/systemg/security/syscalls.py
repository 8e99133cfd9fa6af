"""The syscall groups ``systemd-analyze security`` checks (``SystemCallFilter=~@group``).

A view of ``manifest.syscall_groups`` (generated from systemd's own ``systemd-analyze
syscall-filter``), nested groups expanded. ``exposure`` asks whether any member is still
allowed.
"""

from __future__ import annotations

from systemg.manifest.sandbox import known_syscalls, members
from systemg.manifest.syscall_groups import GROUPS as _ALL

GROUPS: dict[str, frozenset[str]] = {name: members(name) for name in _ALL}

ALL_SYSCALLS: frozenset[str] = known_syscalls()
