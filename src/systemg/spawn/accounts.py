"""Account lookups for ``build_plan``, with a source that never blocks the supervisor.

``user:``, ``group:`` and ``supplementary_groups:`` name accounts; turning a name into
ids goes through NSS (``getpwnam``), which may be LDAP or SSSD over the network and take
seconds — on the supervisor's one thread that would freeze every service's output, every
timer and every request. So the plan asks an ``AccountSource``:

- ``SystemAccounts`` calls ``pwd``/``grp`` directly (the CLI, tests, one-off tools);
- ``CachedAccounts`` (the supervisor) answers only from its cache, and raises ``Pending``
  naming what it does not know yet. The supervisor then runs ``getent`` for those names
  as child processes on its loop (``daemon/resolver.py``), bounded by a timeout, stores the
  answers (found or not) with ``store``, and plans the spawn again.

Entries expire after ``ttl_s`` so an account created or changed later is seen by the next
start after that; a crash-looping service reuses the cache instead of asking NSS again.
"""

from __future__ import annotations

import grp
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UserEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


# (database, key): ("passwd", "www-data"), ("group", "33"). getent takes names or numbers.
Need = tuple[str, str]


class Pending(Exception):  # noqa: N818 - not an error: "ask again when these are known"
    def __init__(self, needs: tuple[Need, ...]) -> None:
        super().__init__(", ".join(f"{db} {key}" for db, key in needs))
        self.needs = needs


class AccountSource(Protocol):
    def user(self, name: str) -> UserEntry | None: ...
    def group(self, name: str) -> int | None: ...


class SystemAccounts:
    """Direct NSS lookups (may block): for callers that are not the supervisor's loop."""

    def user(self, name: str) -> UserEntry | None:
        try:
            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        except (KeyError, OverflowError):
            return None
        return UserEntry(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell)

    def group(self, name: str) -> int | None:
        try:
            return (grp.getgrgid(int(name)) if name.isdigit() else grp.getgrnam(name)).gr_gid
        except (KeyError, OverflowError):
            return None


SYSTEM = SystemAccounts()


class CachedAccounts:
    """Answers from a cache filled by ``store``; raises ``Pending`` for anything else."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = 60.0):
        self._clock = clock
        self._ttl = ttl_s
        self._users: dict[str, tuple[float, UserEntry | None]] = {}
        self._groups: dict[str, tuple[float, int | None]] = {}

    def _fresh(self, at: float) -> bool:
        return self._clock() - at < self._ttl

    def user(self, name: str) -> UserEntry | None:
        hit = self._users.get(name)
        if hit is None or not self._fresh(hit[0]):
            raise Pending((("passwd", name),))
        return hit[1]

    def group(self, name: str) -> int | None:
        hit = self._groups.get(name)
        if hit is None or not self._fresh(hit[0]):
            raise Pending((("group", name),))
        return hit[1]

    def store(self, need: Need, getent_output: bytes | None) -> None:
        """Record what ``getent DB KEY`` printed (None: it said "not found")."""
        db, key = need
        now = self._clock()
        if db == "passwd":
            self._users[key] = (now, parse_passwd(getent_output) if getent_output else None)
        else:
            self._groups[key] = (now, parse_group(getent_output) if getent_output else None)


def parse_passwd(output: bytes) -> UserEntry | None:
    """``name:x:uid:gid:gecos:home:shell`` (first line) → entry; None if malformed."""
    fields = output.decode("utf-8", "replace").split("\n", 1)[0].split(":")
    if len(fields) < 7 or not fields[2].isdigit() or not fields[3].isdigit():
        return None
    return UserEntry(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6])


def parse_group(output: bytes) -> int | None:
    """``name:x:gid:members`` (first line) → gid; None if malformed."""
    fields = output.decode("utf-8", "replace").split("\n", 1)[0].split(":")
    if len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2])
