"""Listening sockets handed to services (docs/security.md §8), and socket activation.

``bind_listen`` binds a service's ``listen`` entries in the supervisor — as root, before any
privilege drop, so a ``nobody`` service can serve port 80 without capabilities — and returns
close-on-exec fds the daemon keeps across restarts of that service (clients never see a refused
connection). ``child.run`` places them at 3.. and clears close-on-exec there; the environment
carries ``LISTEN_FDS``, ``LISTEN_FDNAMES`` (colon-joined) and ``LISTEN_PID``.

``capture_activation`` takes the fds a socket-activating parent (systemd,
``systemd-socket-activate``) gave the supervisor: ``LISTEN_PID`` must be our pid and
``LISTEN_FDS`` = n > 0; fds 3..3+n-1 are marked close-on-exec so they never leak by accident,
and ``LISTEN_*`` leave the environment. A service adopts one with ``fd:NAME`` or ``fd:N``; it gets
its own duplicate, so closing a service's fds never closes the supervisor's copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass

from systemg.errors import Code, Diagnostic, SpawnError
from systemg.manifest.model import ListenKind, ListenSpec, Service

BACKLOG = 128
LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(frozen=True, slots=True)
class Activation:
    """Fds the supervisor itself received by socket activation, with their names."""

    fds: tuple[int, ...]
    names: tuple[str, ...]

    def find(self, name: str) -> int | None:
        if name in self.names:
            return self.fds[self.names.index(name)]
        if name.isdigit() and int(name) < len(self.fds):
            return self.fds[int(name)]
        return None


def capture_activation(environ: MutableMapping[str, str], pid: int) -> Activation:
    """Take over ``LISTEN_*`` fds meant for ``pid``; ``LISTEN_*`` are removed either way."""
    listen_pid = environ.get("LISTEN_PID", "")
    listen_fds = environ.get("LISTEN_FDS", "")
    raw_names = environ.get("LISTEN_FDNAMES", "")
    for name in LISTEN_VARS:
        environ.pop(name, None)
        if environ is not os.environ:
            os.environ.pop(name, None)
    if listen_pid != str(pid) or not listen_fds.isdigit() or int(listen_fds) <= 0:
        return Activation((), ())
    count = int(listen_fds)
    fds = tuple(range(3, 3 + count))
    for fd in fds:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
    given = raw_names.split(":") if raw_names else []
    names = tuple(given[i] if i < len(given) and given[i] else "unknown" for i in range(count))
    return Activation(fds, names)


def _error(service: Service, index: int, spec: ListenSpec, reason: str) -> SpawnError:
    return SpawnError(
        Diagnostic(
            Code.LISTEN,
            f"service '{service.name}': cannot listen on {spec.raw}: {reason}",
            path=f"services.{service.name}.listen[{index}]",
        )
    )


def host_address(host: str, hosts_file: str = "/etc/hosts") -> str | None:
    """``host`` as an IP address without asking DNS: a literal, ``localhost``, or a name
    in ``/etc/hosts``. None when only a network lookup could answer.

    The supervisor binds on its one thread; ``getaddrinfo`` of a name may wait on DNS for
    seconds, so a name that needs one is refused (systemd's ``ListenStream=`` takes only
    addresses, too)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host == "localhost":
        return "127.0.0.1"
    try:
        with open(hosts_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read(1 << 20).splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and host in fields[1:]:
            try:
                return str(ipaddress.ip_address(fields[0]))
            except ValueError:
                continue
    return None


def _bind_tcp(spec: ListenSpec) -> socket.socket:
    name = spec.host.strip("[]") or "0.0.0.0"
    host = host_address(name)
    if host is None:
        raise OSError(
            errno.EADDRNOTAVAIL,
            f"'{name}' is neither an IP address nor a name in /etc/hosts "
            "(listen sockets are bound without DNS): use an address such as 127.0.0.1",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    flags = socket.AI_PASSIVE | socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    infos = socket.getaddrinfo(host, spec.port, family, socket.SOCK_STREAM, 0, flags)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(spec: ListenSpec, uid: int | None, gid: int | None) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        # Only a stale socket is removed; any other file at the path is an error.
        if stat.S_ISSOCK(os.lstat(spec.path).st_mode):
            os.unlink(spec.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(spec.path)
        os.chmod(spec.path, 0o660)
        if uid is not None or gid is not None:
            os.chown(spec.path, -1 if uid is None else uid, -1 if gid is None else gid)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_listen(
    service: Service, uid: int | None, gid: int | None, activation: Activation
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Bind every ``listen`` entry; return (close-on-exec fds, names) in manifest order."""
    fds: list[int] = []
    names: list[str] = []
    try:
        for index, spec in enumerate(service.listen):
            match spec.kind:
                case ListenKind.FD:
                    found = activation.find(spec.fd_name)
                    if found is None:
                        have = ", ".join(activation.names) or "none"
                        raise _error(
                            service, index, spec, f"no inherited socket named it (have: {have})"
                        )
                    fds.append(fcntl.fcntl(found, fcntl.F_DUPFD_CLOEXEC, 3))
                    names.append(
                        spec.fd_name
                        if not spec.fd_name.isdigit()
                        else activation.names[int(spec.fd_name)]
                    )
                case ListenKind.TCP:
                    fds.append(_bind_tcp(spec).detach())
                    names.append(service.name)
                case ListenKind.UNIX:
                    fds.append(_bind_unix(spec, uid, gid).detach())
                    names.append(service.name)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        spec = service.listen[len(fds)]
        raise _error(service, len(fds), spec, exc.strerror or str(exc)) from None
    except SpawnError:
        for fd in fds:
            os.close(fd)
        raise
    return tuple(fds), tuple(names)
