"""The environment a service is exec'd with (docs/security.md §4), built in the parent.

Two regimes:

* **switched** (the service runs as another account, or ``--drop-privileges`` made it ``nobody``):
  start empty — or, with ``inherit_env: true``, from the supervisor's environment minus every
  ``LD_*`` and ``LISTEN_*`` variable (loader variables never cross a user switch) — set
  ``PATH=/usr/local/bin:/usr/bin:/bin`` (an inherited ``PATH`` is kept), then ``HOME``, ``USER``,
  ``LOGNAME``, ``SHELL`` from the account;
* **not switched**: the supervisor's environment minus ``LISTEN_*``.

In both, the supervisor's own service-manager variables never pass down: ``LISTEN_*``,
``NOTIFY_SOCKET``, ``WATCHDOG_USEC``/``WATCHDOG_PID`` (a supervisor run by systemd with
``Type=notify`` would otherwise hand its socket to every service); a ``notify: true`` service
gets its own (``daemon/readiness.py``).

Then, in both: the env file's variables, then ``vars`` (explicit values win), then the session
variables are removed (``SSH_*``, ``DISPLAY``, ``XDG_SESSION_*``, ``DBUS_SESSION_BUS_ADDRESS``)
unless ``clear_session_vars: false``, then the ``strip`` list — except names set in ``vars``.
Finally ``LISTEN_FDS``/``LISTEN_FDNAMES``/``LISTEN_PID`` are added when fds are passed; the value
of ``LISTEN_PID`` is a placeholder the child replaces with its own pid (only it knows it, and
under a pid namespace it is 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from systemg.manifest.model import EnvSpec

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The entry the child completes with ``str(os.getpid())``."""

_MANAGER_NAMES = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
_SESSION_PREFIXES = ("SSH_", "XDG_SESSION_")
_SESSION_NAMES = frozenset({"DISPLAY", "DBUS_SESSION_BUS_ADDRESS"})


@dataclass(frozen=True, slots=True)
class Account:
    """What passwd says about the account a service runs as (resolved in the parent)."""

    name: str
    home: str
    shell: str


def _manager_var(name: str) -> bool:
    return name.startswith("LISTEN_") or name in _MANAGER_NAMES


def _is_session_var(name: str) -> bool:
    return name in _SESSION_NAMES or name.startswith(_SESSION_PREFIXES)


def build_environment(
    spec: EnvSpec,
    supervisor_env: tuple[tuple[str, str], ...],
    account: Account | None,
    *,
    switched: bool,
    listen_names: tuple[str, ...] = (),
) -> tuple[tuple[str, str], ...]:
    """The service's environment as ordered pairs; ``LISTEN_PID`` (if any) has value ``""``."""
    env: dict[str, str] = {}
    if not switched or spec.inherit_env:
        for key, value in supervisor_env:
            if _manager_var(key) or (switched and key.startswith("LD_")):
                continue
            env[key] = value
    if switched:
        env.setdefault("PATH", DEFAULT_PATH)
        if account is not None:
            env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
            env["SHELL"] = account.shell
    env.update(spec.file_vars)
    explicit = dict(spec.vars)
    env.update(explicit)
    if spec.clear_session_vars:
        for key in [k for k in env if _is_session_var(k) and k not in explicit]:
            del env[key]
    for key in spec.strip:
        if key not in explicit:
            env.pop(key, None)
    for key in [k for k in env if k.startswith("LISTEN_")]:
        if key not in explicit:
            del env[key]
    if listen_names:
        env["LISTEN_FDS"] = str(len(listen_names))
        env["LISTEN_FDNAMES"] = ":".join(listen_names)
        env["LISTEN_PID"] = ""
    return tuple(env.items())


def encode_environment(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, ...], int]:
    """``K=V`` byte strings for ``execve`` and the index of the ``LISTEN_PID`` entry (or -1)."""
    out: list[bytes] = []
    index = -1
    for key, value in pairs:
        if key == "LISTEN_PID":
            index = len(out)
        out.append(f"{key}={value}".encode("utf-8", "surrogateescape"))
    return tuple(out), index
