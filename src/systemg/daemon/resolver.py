"""Account lookups off the supervisor's thread: ``getent`` as watched child processes.

``spawn.accounts.CachedAccounts`` raises ``Pending`` for a name it does not know; the
supervisor hands the names here. Each ``(database, key)`` runs one ``getent DB KEY``
(at most one at a time per key, however many units ask), its stdout read on the loop by
a ``watch.Watched``; exit 0 stores the entry, exit 2 stores "not found", anything else
— or no answer within ``timeout_s`` (the process group is then killed) — is an error
reported to every waiter, with nothing cached so the next start asks again.

The loop never waits: NSS over LDAP/SSSD that hangs only delays the units that need
those names, and fails them with a message that says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable

from systemg.daemon.loop import Loop
from systemg.daemon.watch import Exit, Watched
from systemg.spawn.accounts import CachedAccounts, Need
from systemg.spawn.launcher import launch_helper

Done = Callable[[str | None], None]  # None = every name is now cached; else why not


class Resolver:
    def __init__(
        self,
        loop: Loop,
        cache: CachedAccounts,
        *,
        timeout_s: float = 10.0,
        getent: str | None = None,
    ) -> None:
        self.loop = loop
        self.cache = cache
        self.timeout_s = timeout_s
        self._waiting: dict[Need, list[Callable[[str | None], None]]] = {}
        self._getent = getent or shutil.which("getent", path="/usr/bin:/bin:/usr/sbin:/sbin")

    def resolve(self, needs: tuple[Need, ...], done: Done) -> None:
        """Look up every need; call ``done`` once, when all are answered (or one failed)."""
        remaining = set(needs)
        failed: list[str] = []

        def one(need: Need, error: str | None) -> None:
            remaining.discard(need)
            if error:
                failed.append(error)
            if not remaining:
                done("; ".join(failed) if failed else None)

        for need in needs:

            def answer(error: str | None, need: Need = need) -> None:
                one(need, error)

            self._lookup(need, answer)

    def _lookup(self, need: Need, answer: Callable[[str | None], None]) -> None:
        if need in self._waiting:
            self._waiting[need].append(answer)
            return
        db, key = need
        if self._getent is None:
            self.loop.call_later(0, lambda: answer("getent is not installed"))
            return
        self._waiting[need] = [answer]
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            child = launch_helper(self._getent, ["getent", db, key], stdout=out_w)
        except OSError as exc:
            os.close(out_r)
            self._finish(need, f"cannot run getent: {exc}")
            return
        finally:
            os.close(out_w)
        output = bytearray()

        def on_exit(ended: Exit) -> None:
            timer.cancel()
            code = os.waitstatus_to_exitcode(ended.status) if ended.status is not None else -1
            if code == 0:
                self.cache.store(need, bytes(output))
                self._finish(need, None)
            elif code == 2:
                self.cache.store(need, None)  # not found: build_plan says "unknown user"
                self._finish(need, None)
            else:
                self._finish(need, f"looking up {db} '{key}' failed (getent exited {code})")

        # The loop's registrations keep the watcher alive until the helper exits.
        Watched(
            self.loop,
            child.pid,
            child.pidfd,
            is_child=True,
            pipes={"stdout": out_r},
            on_output=lambda _stream, data: output.extend(data[: 1 << 16]),
            on_eof=lambda _stream: None,
            on_exit=on_exit,
        )

        def too_slow() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            # The exit is still reaped by the watcher; the waiters hear now.
            self._finish(
                need,
                f"looking up {db} '{key}' took longer than {self.timeout_s:g}s "
                "(is a network name service (LDAP, SSSD) down?)",
            )

        timer = self.loop.call_later(self.timeout_s, too_slow)

    def _finish(self, need: Need, error: str | None) -> None:
        for answer in self._waiting.pop(need, []):
            answer(error)
