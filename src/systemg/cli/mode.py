"""Which supervisor a command talks to: user or system mode, and the privilege checks.

``decide`` is pure (uid, flags, environment and one fact about the disk in; a decision or
a ``SysgError`` out) so every rule of ``spec/privileged.md`` section 1 is unit-tested:

- ``--sys`` as non-root: ``SG0704``, exit 1. ``--sys`` is never guessed.
- root without ``--sys``: if system state exists (``sysg.pid`` or ``control.sock`` in the
  system state root) refuse with ``SG0702`` (``purge`` excepted); otherwise one ``SG0701``
  warning. The whole cross-mode check is skipped when ``SYSTEMG_STATE_DIR`` is set: whoever
  sets it (tests, side-by-side installs) has chosen the runtime root explicitly.
- ``--drop-privileges`` as non-root: one warning, and the flag is not sent.

``resolve`` adds the one impure rule, the operator fallback (section 2): for ``status``,
``logs``, ``inspect`` and ``stop`` only, a non-root caller with no live user-mode supervisor
whose system supervisor accepts a connection talks to that one, with one stderr note.
``SYSTEMG_SYSTEM_STATE_DIR`` / ``SYSTEMG_SYSTEM_LOG_DIR`` relocate the system root used by
these checks (for tests); ``--sys`` itself follows ``Paths.for_mode``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import SYSTEM_LOG_DIR, SYSTEM_STATE_DIR, Mode, Paths

FALLBACK_COMMANDS = frozenset({"status", "logs", "inspect", "stop"})
CROSS_MODE_EXEMPT = frozenset({"purge"})

FALLBACK_NOTE = "note: no user supervisor running; using the system supervisor\n"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the flag checks: a mode, whether to forward the drop, warnings."""

    mode: Mode
    drop_privileges: bool
    warnings: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command's requests go."""

    paths: Paths
    drop_privileges: bool
    fallback: bool = False  # an operator talking to the system supervisor

    @property
    def mode(self) -> Mode:
        return self.paths.mode


def system_paths(environ: Mapping[str, str]) -> Paths:
    """The real system-mode root (or its test override), ignoring ``SYSTEMG_STATE_DIR``."""
    state = environ.get("SYSTEMG_SYSTEM_STATE_DIR") or str(SYSTEM_STATE_DIR)
    logs = environ.get("SYSTEMG_SYSTEM_LOG_DIR") or str(SYSTEM_LOG_DIR)
    return Paths(Mode.SYSTEM, Path(state), Path(logs))


def system_state_exists(environ: Mapping[str, str]) -> bool:
    sysp = system_paths(environ)
    return sysp.pid_file.exists() or sysp.socket.exists()


def decide(
    *,
    command: str,
    sys_flag: bool,
    drop_privileges: bool,
    euid: int,
    environ: Mapping[str, str],
    system_state: Callable[[], bool],
) -> Decision:
    """Apply the mode rules. ``system_state`` is only called when the answer matters."""
    root = euid == 0
    warnings: list[Diagnostic] = []
    if sys_flag and not root:
        raise SysgError.of(
            Code.SYS_REQUIRES_ROOT,
            "--sys requires root",
            hint="run it as root: `sudo sysg --sys ...`",
        )
    if drop_privileges and not root:
        warnings.append(
            Diagnostic(
                Code.REQUIRES_ROOT,
                "--drop-privileges has no effect when sysg is not running as root; ignored",
                severity="warning",
            )
        )
        # Still sent: the supervisor that would spawn logs the same warning in
        # supervisor.log (spec section 4) and ignores it there too.
    explicit_root = bool(environ.get("SYSTEMG_STATE_DIR"))
    if root and not sys_flag and not explicit_root and command not in CROSS_MODE_EXEMPT:
        if system_state():
            where = system_paths(environ).state_dir
            raise SysgError.of(
                Code.SYSTEM_STATE_EXISTS,
                f"running as root without --sys while system state exists in {where}",
                hint=f"use `sudo sysg --sys {command} ...` for the system supervisor, "
                "or `sudo sysg purge` to remove the system state",
            )
        warnings.append(
            Diagnostic(
                Code.ROOT_WITHOUT_SYS,
                "running as root without --sys; state goes to "
                f"{Paths.for_mode(Mode.USER, environ).state_dir}",
                hint="use `sudo sysg --sys ...` for the system supervisor",
                severity="warning",
            )
        )
    return Decision(Mode.SYSTEM if sys_flag else Mode.USER, drop_privileges, tuple(warnings))


def resolve(
    args: argparse.Namespace, command: str, *, environ: Mapping[str, str] | None = None
) -> Target:
    """Decide the mode for ``args`` (printing any warning once) and find the supervisor."""
    env = os.environ if environ is None else environ
    decision = decide(
        command=command,
        sys_flag=bool(getattr(args, "sys_mode", False)),
        drop_privileges=bool(getattr(args, "drop_privileges", False)),
        euid=os.geteuid(),
        environ=env,
        system_state=lambda: system_state_exists(env),
    )
    if decision.warnings:
        from systemg.cli.console import emit

        emit(decision.warnings, args)
    paths = Paths.for_mode(decision.mode, env)
    if decision.mode is Mode.USER and command in FALLBACK_COMMANDS and os.geteuid() != 0:
        fallback = _operator_fallback(paths, env)
        if fallback is not None:
            sys.stderr.write(FALLBACK_NOTE)
            return Target(fallback, decision.drop_privileges, fallback=True)
    return Target(paths, decision.drop_privileges)


def _operator_fallback(user: Paths, environ: Mapping[str, str]) -> Paths | None:
    """The system runtime, if the fallback applies.

    Cheapest checks first: the user supervisor is probed with a connection only when a
    system socket exists at all. Such a probe is a real connection that the supervisor
    must accept and serve (or, frozen, queue in its backlog); every non-root ``sysg``
    command used to make one, so a ``logs -f`` was its second connection, and a
    one-connection peer (a test's stand-in supervisor) answered the probe instead.
    """
    from systemg.cli.client import accepts, connect, permission_denied
    from systemg.cli.liveness import identify

    system = system_paths(environ)
    if system.socket == user.socket or identify(user) is not None:
        return None
    try:
        present: bool | None = system.socket.exists()
    except PermissionError:
        # A state root we may not search (0750 root:OPERATORS): a system supervisor's
        # runtime we are not allowed into — unless our own supervisor answers.
        present = None
    if present is False or (user.socket.exists() and accepts(user)):
        return None
    if present is None:
        # Say so (section 2) instead of a traceback.
        raise permission_denied(system)
    try:
        connect(system, 1.0).close()
    except SysgError as exc:
        if exc.code is Code.PERMISSION_DENIED:
            raise  # the only supervisor around refuses us: that is the answer
        return None
    return system
