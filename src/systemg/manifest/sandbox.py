"""The sandbox grammars (docs/security.md): seccomp, address families, protected paths. Pure.

``isolation.seccomp`` is systemd's ``SystemCallFilter=``: group names (``@system-service``,
exactly the groups ``systemd-analyze syscall-filter`` prints, copied into
``syscall_groups``), syscall names, ``~`` for a deny entry. The entries apply in order, as
several ``SystemCallFilter=`` lines do in a unit: the first entry's polarity picks the mode —
an allow list (everything else is denied; ``@default`` is always allowed, as systemd adds it)
or a deny list (everything else is allowed) — and each later entry adds to or takes from that
one set. The upstream value ``baseline-v1`` means ``@system-service``.

``address_families`` is ``RestrictAddressFamilies=``: the families ``socket(2)`` may create
(others fail with EAFNOSUPPORT), or with a leading ``~`` the ones it may not.
"""

from __future__ import annotations

import errno
import posixpath
from dataclasses import dataclass
from functools import cache

from systemg.manifest.syscall_groups import GROUPS
from systemg.manifest.values import GrammarError, did_you_mean

UPSTREAM_ALIASES = {"baseline-v1": "@system-service"}
SECCOMP_ACTIONS = ("errno", "kill")
PROTECT_SYSTEM = ("false", "true", "full", "strict")
PROTECT_HOME = ("false", "true", "read-only", "tmpfs")

# linux/socket.h: the address family numbers are kernel ABI.
ADDRESS_FAMILIES = {
    "AF_UNIX": 1, "AF_INET": 2, "AF_AX25": 3, "AF_IPX": 4, "AF_APPLETALK": 5,
    "AF_NETROM": 6, "AF_BRIDGE": 7, "AF_ATMPVC": 8, "AF_X25": 9, "AF_INET6": 10,
    "AF_ROSE": 11, "AF_DECnet": 12, "AF_NETBEUI": 13, "AF_SECURITY": 14, "AF_KEY": 15,
    "AF_NETLINK": 16, "AF_PACKET": 17, "AF_ASH": 18, "AF_ECONET": 19, "AF_ATMSVC": 20,
    "AF_RDS": 21, "AF_SNA": 22, "AF_IRDA": 23, "AF_PPPOX": 24, "AF_WANPIPE": 25,
    "AF_LLC": 26, "AF_IB": 27, "AF_MPLS": 28, "AF_CAN": 29, "AF_TIPC": 30,
    "AF_BLUETOOTH": 31, "AF_IUCV": 32, "AF_RXRPC": 33, "AF_ISDN": 34, "AF_PHONET": 35,
    "AF_IEEE802154": 36, "AF_CAIF": 37, "AF_ALG": 38, "AF_NFC": 39, "AF_VSOCK": 40,
    "AF_KCM": 41, "AF_QIPCRTR": 42, "AF_SMC": 43, "AF_XDP": 44, "AF_MCTP": 45,
}  # fmt: skip
AF_MAX = 46
AF_ALIASES = {"AF_LOCAL": "AF_UNIX", "AF_FILE": "AF_UNIX", "AF_ROUTE": "AF_NETLINK"}


@dataclass(frozen=True, slots=True)
class SyscallSet:
    """A resolved filter: ``allow`` True = only ``names`` are allowed; False = ``names`` are
    denied and everything else is allowed."""

    allow: bool
    names: frozenset[str]

    def permits(self, syscall: str) -> bool:
        return (syscall in self.names) == self.allow


@cache
def members(group: str) -> frozenset[str]:
    """Every syscall of ``@group``, nested groups expanded."""
    out: set[str] = set()
    for entry in GROUPS[group]:
        out |= members(entry) if entry.startswith("@") else {entry}
    return frozenset(out)


def known_syscalls() -> frozenset[str]:
    return members("@known") | frozenset().union(*(members(g) for g in GROUPS))


def parse_seccomp_entry(value: object) -> str:
    """One entry: ``@group``, ``~@group``, ``name`` or ``~name`` (``baseline-v1`` → its group)."""
    if not isinstance(value, str) or not value.strip():
        raise GrammarError(
            f"expected a syscall group or name, got {value!r}",
            'e.g. "@system-service" or "~@privileged"',
        )
    text = value.strip()
    text = UPSTREAM_ALIASES.get(text, text)
    negate = text.startswith("~")
    name = text[1:].strip() if negate else text
    if name.startswith("@"):
        if name in GROUPS:
            return ("~" if negate else "") + name
        guess = did_you_mean(name, GROUPS)
        raise GrammarError(
            f"unknown syscall group '{name}'",
            f"did you mean '{guess}'?"
            if guess
            else f"the groups (`systemd-analyze syscall-filter`): {', '.join(sorted(GROUPS))}",
        )
    if name in known_syscalls():
        return ("~" if negate else "") + name
    guess = did_you_mean(name, known_syscalls())
    raise GrammarError(
        f"unknown system call '{name}'",
        f"did you mean '{guess}'?" if guess else "see `systemd-analyze syscall-filter @known`",
    )


def resolve(entries: tuple[str, ...]) -> SyscallSet:
    """The set the entries describe, applied in order (see the module docstring)."""
    if not entries:
        return SyscallSet(False, frozenset())
    allow = not entries[0].startswith("~")
    names: set[str] = set(members("@default")) if allow else set()
    for entry in entries:
        negate = entry.startswith("~")
        name = entry[1:] if negate else entry
        found = members(name) if name.startswith("@") else frozenset({name})
        if negate == allow:  # a deny entry in an allow list, or an allow entry in a deny list
            names -= found
        else:
            names |= found
    return SyscallSet(allow, frozenset(names))


def parse_seccomp_action(value: object) -> tuple[str, str]:
    """``errno`` (EPERM), ``kill``, or an errno name (``EACCES``): (action, errno name)."""
    text = str(value).strip() if isinstance(value, str) else ""
    if text.lower() in SECCOMP_ACTIONS:
        return text.lower(), "EPERM"
    if text.upper() in errno.errorcode.values() and text.upper().startswith("E"):
        return "errno", text.upper()
    raise GrammarError(
        f"unknown seccomp_action {value!r}",
        "write errno (a denied call fails with EPERM), kill (SIGSYS), or an errno name "
        "such as EACCES",
    )


def parse_family(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    name = text.upper() if text.upper() != "AF_DECNET" else "AF_DECnet"
    name = AF_ALIASES.get(name, name)
    if name in ADDRESS_FAMILIES:
        return name
    guess = did_you_mean(name, ADDRESS_FAMILIES)
    raise GrammarError(
        f"unknown address family {value!r}",
        f"did you mean '{guess}'?" if guess else "e.g. AF_UNIX, AF_INET, AF_INET6",
    )


def denied_families(families: tuple[str, ...], deny: bool) -> tuple[int, ...]:
    """The family numbers ``socket(2)`` must refuse, 0..AF_MAX-1 (AF_MAX and above are
    refused too by the filter, as unknown families)."""
    listed = {ADDRESS_FAMILIES[f] for f in families}
    if deny:
        return tuple(sorted(listed))
    return tuple(n for n in range(AF_MAX) if n not in listed)


def parse_protect(value: object, choices: tuple[str, ...], key: str) -> str:
    """``protect_system`` / ``protect_home``: a YAML bool or one of ``choices``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in choices:
        return text
    raise GrammarError(
        f"{key} must be one of {', '.join(choices)}, got {value!r}",
        f"e.g. {key}: {choices[-1]}",
    )


def parse_sandbox_path(value: object) -> str:
    """An absolute path, ``-`` prefixed when a missing one is to be ignored."""
    text = value.strip() if isinstance(value, str) else ""
    body = text[1:] if text.startswith("-") else text
    if not body.startswith("/"):
        raise GrammarError(
            f"expected an absolute path, got {value!r}",
            'write /path, or "-/path" to ignore it when it does not exist',
        )
    if "\n" in body or "\0" in body:
        raise GrammarError("a path cannot contain a newline or NUL", "")
    return ("-" if text.startswith("-") else "") + posixpath.normpath(body)
