"""Scalar grammars of the manifest: durations, sizes, CPU lists, capabilities, cpu.max, listen,
names, ``${VAR}`` expansion and env files. Pure functions, no I/O.

Each ``parse_*`` takes what YAML produced (``str``/``int``/...) and returns the canonical value,
or raises ``GrammarError(message, hint)``; the caller adds the field path and location. The
``format_*`` functions give the canonical text, and ``parse(format(x)) == x`` holds (tested with
hypothesis), so messages can echo a value the way the manifest should have written it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from systemg.manifest.kernel import Kind, problem
from systemg.manifest.model import UNLIMITED, CpuMax, ListenKind, ListenSpec


class GrammarError(ValueError):
    """A value does not fit its grammar. ``hint`` says how to write it instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The one choice ``word`` is a prefix of (``NET_BIND`` -> ``NET_BIND_SERVICE``), else the
    closest by difflib, else None."""
    import difflib  # performance: only on this path, not at import

    options = list(choices)
    lowered = word.lower()
    starts = [o for o in options if lowered and o.lower().startswith(lowered)]
    if len(starts) == 1:
        return starts[0]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or the empty string."""
    guess = did_you_mean(word, choices)
    return f" (did you mean '{guess}'?)" if guess else ""


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python; YAML `true` must never pass as 1.
    return isinstance(value, int) and not isinstance(value, bool)


# --- durations ------------------------------------------------------------------------------

_DURATION = re.compile(r"^\+?(\d+)(ms|s|m|h)?$")
_DURATION_FRACTION = re.compile(r"^\+?(\d*\.\d+)\s*(ms|s|m|h)?$")
_MS_PER_UNIT = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION_HINT = "write an integer with a unit: 500ms, 30s, 5m, 1h (a bare number is seconds)"


def parse_duration(value: object) -> int:
    """``30s`` / ``500ms`` / ``5m`` / ``1h`` / ``10`` (seconds) -> milliseconds."""
    if _is_int(value):
        assert isinstance(value, int)
        if value < 0:
            raise GrammarError(f"duration {value} is negative", _DURATION_HINT)
        return value * 1000
    if isinstance(value, float):
        raise GrammarError(
            f"duration {value} has a fraction", f"use milliseconds: {round(value * 1000)}ms"
        )
    if not isinstance(value, str):
        raise GrammarError(f"expected a duration, got {_kind(value)}", _DURATION_HINT)
    text = value.strip()
    m = _DURATION.match(text)
    if m:
        return int(m.group(1)) * _MS_PER_UNIT[m.group(2) or "s"]
    if text.startswith("-"):
        raise GrammarError(f"duration '{value}' is negative", _DURATION_HINT)
    f = _DURATION_FRACTION.match(text)
    if f:
        ms = float(f.group(1)) * _MS_PER_UNIT[f.group(2) or "s"]
        hint = (
            f"fractions are not accepted; use milliseconds: {round(ms)}ms"
            if ms == round(ms)
            else "fractions are not accepted; use a smaller unit (ms)"
        )
        raise GrammarError(f"duration '{value}' has a fraction", hint)
    raise GrammarError(f"'{value}' is not a duration", _DURATION_HINT)


def format_duration(ms: int) -> str:
    """Canonical text: the largest unit that divides ``ms`` exactly."""
    for unit in ("h", "m", "s"):
        size = _MS_PER_UNIT[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- sizes ----------------------------------------------------------------------------------

_SIZE = re.compile(r"^(\d+(?:_\d+)*)\s*([kmgt])?(?:i?b)?$", re.IGNORECASE)
_SIZE_FRACTION = re.compile(r"^(\d*\.\d+)\s*([kmgt])?(?:i?b)?$", re.IGNORECASE)
_UNITS = "KMGT"
_SIZE_HINT = "write an integer, optionally with K, M, G or T (powers of 1024): 65536, 64K, 512M"
MAX_RLIMIT = 2**63 - 1  # RLIM_INFINITY is -1 (all ones) in Python; stay below it


def _unit_factor(unit: str | None) -> int:
    return 1 if not unit else 1024 ** (_UNITS.index(unit.upper()) + 1)


def parse_size(value: object, *, allow_unlimited: bool = False) -> int:
    """``65536`` / ``64K`` / ``1_000`` / ``2GiB`` -> bytes (or a count, for nofile/nproc).

    ``unlimited`` (any case) returns ``model.UNLIMITED`` when ``allow_unlimited``.
    (cgroup ``memory_max: max`` is handled by its caller before this.)
    """
    if _is_int(value):
        assert isinstance(value, int)
        if value < 0:
            raise GrammarError(f"size {value} is negative", _SIZE_HINT)
        return value
    if isinstance(value, float):
        raise GrammarError(f"size {value} has a fraction", _SIZE_HINT)
    if not isinstance(value, str):
        raise GrammarError(f"expected a size, got {_kind(value)}", _SIZE_HINT)
    text = value.strip()
    if text.lower() in ("unlimited", "infinity"):
        if allow_unlimited:
            return UNLIMITED
        raise GrammarError(f"'{value}' is not accepted here", _SIZE_HINT)
    m = _SIZE.match(text)
    if m:
        return int(m.group(1).replace("_", "")) * _unit_factor(m.group(2))
    if text.startswith("-"):
        raise GrammarError(f"size '{value}' is negative", _SIZE_HINT)
    f = _SIZE_FRACTION.match(text)
    if f:
        unit = f.group(2)
        hint = "fractions are not accepted; write it in a smaller unit"
        if unit and unit.upper() != "K":
            lower = _UNITS[_UNITS.index(unit.upper()) - 1]
            amount = float(f.group(1)) * 1024
            if amount == int(amount):
                hint = f"fractions are not accepted; write {int(amount)}{lower}"
        raise GrammarError(f"size '{value}' has a fraction", hint)
    raise GrammarError(f"'{value}' is not a size", _SIZE_HINT)


def format_size(n: int) -> str:
    """Canonical text: the largest K/M/G/T unit that divides ``n`` exactly."""
    for i in range(len(_UNITS), 0, -1):
        factor = 1024**i
        if n and n % factor == 0:
            return f"{n // factor}{_UNITS[i - 1]}"
    return str(n)


# --- CPU lists, nice --------------------------------------------------------------------------

MAX_CPU = 8191  # the largest CONFIG_NR_CPUS the kernel allows, minus one
_CPU_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_cpu_list(value: object) -> tuple[int, ...]:
    """A YAML list of distinct CPU indices, or the kernel's cpulist text ``0-3,8``."""
    hint = 'list distinct CPU indices, e.g. [0, 1] or "0-3,8"'
    items: list[int] = []
    if isinstance(value, str):
        for part in value.replace(" ", "").split(","):
            m = _CPU_RANGE.match(part)
            if not m:
                raise GrammarError(f"'{value}' is not a CPU list", hint)
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise GrammarError(f"CPU range '{part}' is backwards", hint)
            items.extend(range(lo, min(hi, MAX_CPU + 1) + 1))
    elif isinstance(value, list):
        for item in value:
            if not _is_int(item):
                raise GrammarError(f"CPU index {item!r} is not an integer", hint)
            items.append(item)
    else:
        raise GrammarError(f"expected a list of CPU indices, got {_kind(value)}", hint)
    if not items:
        raise GrammarError("the CPU list is empty", hint + "; omit the key to allow every CPU")
    seen: set[int] = set()
    for cpu in items:
        if cpu < 0 or cpu > MAX_CPU:
            raise GrammarError(f"CPU index {cpu} is out of range 0..{MAX_CPU}", hint)
        if cpu in seen:
            raise GrammarError(f"CPU {cpu} is listed twice", hint)
        seen.add(cpu)
    return tuple(items)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """Kernel cpulist text, ranges collapsed: ``0-3,8``."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_nice(value: object) -> int:
    hint = "nice is an integer from -20 (highest priority) to 19 (lowest)"
    if not _is_int(value):
        raise GrammarError(f"nice must be an integer, got {_kind(value)}", hint)
    assert isinstance(value, int)
    if not -20 <= value <= 19:
        raise GrammarError(f"nice {value} is out of range -20..19", hint)
    return value


# --- cgroup cpu.max ---------------------------------------------------------------------------

_CPU_MAX_HINT = (
    'write "max", "QUOTA" or "QUOTA PERIOD" in microseconds, e.g. "200000 100000" for 2 CPUs'
)


def parse_cpu_max(value: object) -> CpuMax:
    """``max`` / ``QUOTA`` / ``QUOTA PERIOD`` (µs) -> ``CpuMax``; the kernel's bounds apply."""
    if _is_int(value):
        value = str(value)
    if not isinstance(value, str):
        raise GrammarError(f"expected cpu.max text, got {_kind(value)}", _CPU_MAX_HINT)
    parts = value.split()
    if not 1 <= len(parts) <= 2:
        raise GrammarError(f"'{value}' is not a cpu.max value", _CPU_MAX_HINT)
    quota: int | None
    if parts[0] == "max":
        quota = None
    elif parts[0].isdigit():
        quota = int(parts[0])
        if quota < 1000:
            raise GrammarError(f"quota {quota}µs is below the kernel minimum 1000", _CPU_MAX_HINT)
    else:
        raise GrammarError(f"'{value}' is not a cpu.max value", _CPU_MAX_HINT)
    if len(parts) == 1:
        return CpuMax(quota)
    if not parts[1].isdigit():
        raise GrammarError(f"period '{parts[1]}' is not an integer", _CPU_MAX_HINT)
    period = int(parts[1])
    if not 1000 <= period <= 1_000_000:
        raise GrammarError(f"period {period}µs is out of range 1000..1000000", _CPU_MAX_HINT)
    return CpuMax(quota, period)


# --- capabilities -----------------------------------------------------------------------------

# Index = capability number (linux/capability.h); keep the order.
# fmt: off
_CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# fmt: on
CAPABILITIES: dict[str, int] = {f"CAP_{name}": number for number, name in enumerate(_CAP_NAMES)}
"""Every Linux capability name (``CAP_X``) and its number, 0..40 (``linux/capability.h``)."""


def parse_capability(value: object) -> str:
    """``net_bind_service`` / ``CAP_NET_BIND_SERVICE`` -> ``CAP_NET_BIND_SERVICE``."""
    if not isinstance(value, str) or not value.strip():
        raise GrammarError(
            f"expected a capability name, got {_kind(value)}", "e.g. NET_BIND_SERVICE"
        )
    name = value.strip().upper().replace("-", "_")
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name in CAPABILITIES:
        return name
    guess = did_you_mean(name, CAPABILITIES)
    hint = f"did you mean '{guess}'?" if guess else "see capabilities(7) for the names"
    raise GrammarError(f"unknown capability '{value}'", hint)


# --- listen -----------------------------------------------------------------------------------

_LISTEN_HINT = "write HOST:PORT, [IPV6]:PORT, unix:/absolute/path or fd:NAME"
_HOSTNAME = re.compile(r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_FD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the terminating NUL


def parse_listen(value: object) -> ListenSpec:
    if not isinstance(value, str):
        raise GrammarError(f"expected a listen address, got {_kind(value)}", _LISTEN_HINT)
    raw = value.strip()
    if raw.startswith("unix:"):
        path = raw[5:]
        if not path.startswith("/"):
            raise GrammarError(f"unix socket path '{path}' is not absolute", _LISTEN_HINT)
        refused = problem(path, Kind.PATH)
        if refused is not None:
            raise GrammarError(f"unix socket path {refused.message}", refused.hint)
        if len(path.encode()) > _SUN_PATH_MAX:
            raise GrammarError(
                f"unix socket path is longer than {_SUN_PATH_MAX} bytes", "use a shorter path"
            )
        return ListenSpec(ListenKind.UNIX, raw, path=path)
    if raw.startswith("fd:"):
        name = raw[3:]
        if not _FD_NAME.fullmatch(name):
            raise GrammarError(f"'{raw}' is not a valid fd name", "fd:NAME uses [A-Za-z0-9_.-]")
        return ListenSpec(ListenKind.FD, raw, fd_name=name)
    host, port = parse_host_port(
        raw, what="a listen address", hint=_LISTEN_HINT, bare_hint=" (0.0.0.0:PORT for all)"
    )
    return ListenSpec(ListenKind.TCP, raw, host=host, port=port)


def is_host_name(text: str) -> bool:
    """The host grammar of ``listen`` and probes: letters, digits, '.', '-' (``*`` first for a
    listen wildcard). IP literals pass too; callers that need more check them themselves."""
    return bool(_HOSTNAME.fullmatch(text))


def parse_host_port(raw: str, *, what: str, hint: str, bare_hint: str = "") -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> ``(host, port)``, the brackets removed.

    ``what`` names the value in messages (``a listen address``); ``bare_hint`` is added to the
    hint when the host or the ``:PORT`` is missing.
    """
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise GrammarError(f"'{raw}' is not {what}", hint)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise GrammarError(f"'{host}' is not an IPv6 address", hint) from None
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or not host:
            raise GrammarError(f"'{raw}' is not {what}", hint + bare_hint)
        if ":" in host:
            raise GrammarError(f"IPv6 address in '{raw}' needs brackets", "write [::1]:8080")
        if not is_host_name(host):
            raise GrammarError(f"'{host}' is not a host name or address", hint)
    return host, parse_port(port_text, hint)


def parse_port(text: str, hint: str) -> int:
    """A decimal TCP port, 1..65535 (ASCII digits only: ``str.isdigit`` also takes '²')."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise GrammarError(f"port '{text}' is not in 1..65535", hint)
    return int(text)


# --- names ------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str, what: str) -> str:
    """A project id or service name: one path segment, ``[A-Za-z0-9_.-]+``, ≤ 255 bytes."""
    hint = f"a {what} uses only letters, digits, '_', '.' and '-' (it names a directory)"
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise GrammarError(f"'{name}' is not a valid {what}", hint)
    if len(name.encode()) > 255:
        raise GrammarError(f"{what} is longer than 255 bytes", hint)
    return name


def is_env_name(name: str) -> bool:
    return bool(_ENV_NAME.fullmatch(name))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{value!r}"
