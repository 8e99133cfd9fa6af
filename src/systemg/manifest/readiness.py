"""The readiness keys of a service (docs/manifest.md, "Readiness"): ``notify``, ``watchdog``,
``start_timeout``, ``deployment`` (``health_check``, ``pre_start``) and the two forms of a
``depends_on`` entry. ``probe_block`` is the probe grammar ``liveness`` (``hooks.py``) shares.

Pure, like the rest of the parsing: every problem goes to the ``Checker`` with its field path
and the functions return what they could parse. Invariants of the result:

* ``watchdog_ms`` is set only when ``notify`` is true, and is > 0;
* a ``ProbeSpec`` has exactly one probe kind, ``interval_ms``, ``attempt_timeout_ms`` and
  ``start_timeout_ms`` are > 0, ``retries`` ≥ 1; ``total_timeout_ms`` (≥ 0) came from
  ``total_timeout`` or its upstream alias ``timeout``, never both;
* ``depends_on`` names every dependency once, in manifest order; ``completed_deps`` is the
  ordered subset whose condition is ``completed``.

Inside ``deployment``: ``health_check``, ``pre_start``, ``strategy`` (``immediate`` | ``rolling``,
§7) and ``grace_period`` (a duration, 0 allowed); ``blue_green`` is parsed by ``bluegreen.py``,
which needs the service's name and directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from systemg.errors import Code
from systemg.manifest.check import Checker, child, item
from systemg.manifest.model import (
    DEFAULT_PROBE_ATTEMPT_TIMEOUT_MS,
    DEFAULT_PROBE_INTERVAL_MS,
    DEFAULT_PROBE_RETRIES,
    Condition,
    ProbeKind,
    ProbeSpec,
    Strategy,
)
from systemg.manifest.probe import parse_probe_tcp, parse_probe_url
from systemg.manifest.tree import Key, Map, Node
from systemg.manifest.values import GrammarError, format_duration, parse_duration

READINESS_KEYS = ("notify", "watchdog", "start_timeout", "deployment")
DEPLOYMENT_KEYS = ("strategy", "pre_start", "health_check", "grace_period", "blue_green")
PROBE_KINDS = tuple(k.value for k in ProbeKind)
HEALTH_CHECK_KEYS = (
    *PROBE_KINDS,
    "interval",
    "attempt_timeout",
    "total_timeout",
    "timeout",
    "retries",
)
DEPENDENCY_KEYS = ("service", "condition")
_PROBE_EXAMPLE = (
    "e.g. url: http://127.0.0.1:8080/healthz, tcp: 127.0.0.1:5432 or command: pg_isready -q"
)

Fields = dict[str, tuple[Key, Node]]


@dataclass(frozen=True, slots=True)
class Dependencies:
    """A parsed ``depends_on``, and where each name is, for the graph checks of ``parse``.

    ``at`` and ``index`` give a name's node and the position of its (first) entry.
    """

    names: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    at: dict[str, Node] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)


def depends_on(ck: Checker, node: Node, path: str) -> Dependencies:
    """Entries are ``NAME`` (condition started) or ``{service: NAME, condition: ...}``.

    A name listed twice with the same condition counts once; with different conditions it is
    an error (which one was meant is a guess).
    """
    seq = ck.sequence(node, path, "[db, {service: migrate, condition: completed}]")
    conditions: dict[str, Condition] = {}
    at: dict[str, Node] = {}
    index: dict[str, int] = {}
    for i, entry in enumerate(seq.items if seq else ()):
        ipath = item(path, i)
        if isinstance(entry, Map):
            parsed = _dependency(ck, entry, ipath)
        else:
            name = ck.string(entry, ipath, what="a service name or {service, condition}")
            parsed = None if name is None else (name, entry, Condition.STARTED)
        if parsed is None:
            continue
        name, where, condition = parsed
        if name not in conditions:
            conditions[name] = condition
            at[name] = where
            index[name] = i
        elif conditions[name] is not condition:
            ck.error(
                Code.INVALID_VALUE,
                ipath,
                f"'{name}' is listed twice, with condition {conditions[name]} and {condition}",
                entry,
                "keep one entry for it",
            )
    completed = tuple(n for n, c in conditions.items() if c is Condition.COMPLETED)
    return Dependencies(tuple(conditions), completed, at, index)


def _dependency(ck: Checker, m: Map, path: str) -> tuple[str, Node, Condition] | None:
    f = ck.fields(m, path, DEPENDENCY_KEYS)
    condition = Condition.STARTED
    if "condition" in f:
        chosen = ck.choice(f["condition"][1], child(path, "condition"), list(Condition))
        # A bad condition is reported already; the name still goes to the graph checks.
        condition = Condition.STARTED if chosen is None else Condition(chosen)
    if "service" not in f:
        ck.error(
            Code.MISSING_KEY,
            path,
            "the entry names no service",
            m,
            "write {service: NAME, condition: started} (or completed), or just NAME",
        )
        return None
    node = f["service"][1]
    name = ck.string(node, child(path, "service"), what="a service name")
    if name is None:
        return None
    return name, node, condition


def settings(ck: Checker, f: Fields, path: str) -> dict[str, Any]:
    """The readiness fields of ``Service`` found in the service's keys ``f`` (absent = default)."""
    out: dict[str, Any] = {}
    notify: bool | None = False
    if "notify" in f:
        notify = ck.boolean(f["notify"][1], child(path, "notify"))
        if notify is not None:
            out["notify"] = notify
    if "watchdog" in f:
        wkey, wnode = f["watchdog"]
        wpath = child(path, "watchdog")
        ms = positive_duration(ck, wnode, wpath, "omit watchdog to run without one")
        if notify is False:
            ck.error(
                Code.INVALID_VALUE,
                wpath,
                "watchdog needs notify: true",
                wkey,
                "the watchdog is fed by WATCHDOG=1 messages over sd_notify: set notify: true "
                "(the service must send READY=1 and WATCHDOG=1), or remove watchdog",
            )
        elif ms is not None:
            out["watchdog_ms"] = ms
    if "start_timeout" in f:
        spath = child(path, "start_timeout")
        ms = positive_duration(ck, f["start_timeout"][1], spath, "e.g. start_timeout: 90s")
        if ms is not None:
            out["start_timeout_ms"] = ms
    if "deployment" in f:
        out.update(deployment(ck, f["deployment"][1], child(path, "deployment")))
    return out


def deployment(ck: Checker, node: Node, path: str) -> dict[str, Any]:
    """``health_check``, ``pre_start`` (a command for ``/bin/sh -c``, bounded by
    ``PRE_START_TIMEOUT_MS``, as upstream), ``strategy`` and ``grace_period`` as ``Service``
    fields."""
    out: dict[str, Any] = {}
    m = ck.mapping(node, path)
    if m is None:
        return out
    f = ck.fields(m, path, DEPLOYMENT_KEYS)
    if "health_check" in f:
        probe = health_check(ck, f["health_check"][1], child(path, "health_check"))
        if probe is not None:
            out["health_check"] = probe
    if "pre_start" in f:
        command = ck.command(f["pre_start"][1], child(path, "pre_start"))
        if command is not None:
            out["pre_start"] = command
    if "strategy" in f:
        chosen = ck.choice(f["strategy"][1], child(path, "strategy"), list(Strategy))
        if chosen is not None:
            out["strategy"] = Strategy(chosen)
    if "grace_period" in f:
        ms = ck.grammar(f["grace_period"][1], child(path, "grace_period"), parse_duration)
        if ms is not None:
            out["grace_period_ms"] = ms
    return out


def health_check(ck: Checker, node: Node, path: str) -> ProbeSpec | None:
    """One probe (``url`` | ``tcp`` | ``command``) and its budget; None after any problem."""
    m = ck.mapping(node, path)
    if m is None:
        return None
    before = len(ck.errors)
    f = ck.fields(m, path, HEALTH_CHECK_KEYS)
    probe = probe_block(
        ck,
        m,
        f,
        path,
        interval_ms=DEFAULT_PROBE_INTERVAL_MS,
        attempt_timeout_ms=DEFAULT_PROBE_ATTEMPT_TIMEOUT_MS,
    )
    total = None
    retries: int | None = DEFAULT_PROBE_RETRIES
    total_keys = [k for k in f if k in ("total_timeout", "timeout")]
    if len(total_keys) == 2:
        ck.error(
            Code.INVALID_VALUE,
            child(path, total_keys[1]),
            "total_timeout and its alias timeout are both set",
            f[total_keys[1]][0],
            "keep one (timeout is the upstream's older name for total_timeout)",
        )
    elif total_keys:
        tnode = f[total_keys[0]][1]
        total = ck.grammar(tnode, child(path, total_keys[0]), parse_duration)
    if "retries" in f:
        retries = ck.integer(f["retries"][1], child(path, "retries"), minimum=1)
    if probe is None or retries is None or len(ck.errors) != before:
        return None
    return replace(probe, total_timeout_ms=total, retries=retries)


def probe_block(
    ck: Checker, m: Map, f: Fields, path: str, *, interval_ms: int, attempt_timeout_ms: int
) -> ProbeSpec | None:
    """The part a ``health_check`` and a ``liveness`` block share: exactly one probe kind,
    ``interval`` and ``attempt_timeout`` (both > 0, defaults given). ``f`` are the fields of
    ``m``, already checked for unknown keys. None after a problem in these keys; the budget
    fields of the result are left at their defaults."""
    before = len(ck.errors)
    kinds = [k for k in f if k in PROBE_KINDS]  # in file order
    if len(kinds) > 1:
        named = ", ".join(kinds[:-1]) + f" and {kinds[-1]}"
        ck.error(
            Code.INVALID_VALUE,
            child(path, kinds[1]),
            f"{named} are {'both' if len(kinds) == 2 else 'all'} set; "
            "a health check runs exactly one probe",
            f[kinds[1]][0],
            "keep one: url (HTTP GET, 2xx passes), tcp (a connect passes) "
            "or command (exit 0 passes)",
        )
    elif not kinds:
        ck.error(
            Code.MISSING_KEY,
            path,
            "no probe: set one of url, tcp or command",
            m,
            _PROBE_EXAMPLE,
        )
    # Each probe given is checked, so a conflict does not hide a bad url.
    parsed = [_probe(ck, ProbeKind(k), f[k][1], child(path, k)) for k in kinds]
    probe = parsed[0] if len(parsed) == 1 else None
    interval, attempt = interval_ms, attempt_timeout_ms
    for key, default in (("interval", interval_ms), ("attempt_timeout", attempt_timeout_ms)):
        if key in f:
            hint = f"e.g. {key}: {format_duration(default)}"
            ms = positive_duration(ck, f[key][1], child(path, key), hint)
            if ms is not None and key == "interval":
                interval = ms
            elif ms is not None:
                attempt = ms
    if probe is None or len(ck.errors) != before:
        return None
    return replace(probe, interval_ms=interval, attempt_timeout_ms=attempt)


def _probe(ck: Checker, kind: ProbeKind, node: Node, path: str) -> ProbeSpec | None:
    """The target part of the probe (timings are filled in by the caller)."""
    if kind is ProbeKind.COMMAND:
        command = ck.command(node, path)
        return None if command is None else ProbeSpec(kind, command=command, raw=command)
    what = "an http:// url" if kind is ProbeKind.URL else "a HOST:PORT address"
    text = ck.string(node, path, what=what)
    if text is None:
        return None
    try:
        if kind is ProbeKind.URL:
            host, port, target = parse_probe_url(text)
            return ProbeSpec(kind, host=host, port=port, path=target, raw=text.strip())
        host, port = parse_probe_tcp(text)
        return ProbeSpec(kind, host=host, port=port, raw=text.strip())
    except GrammarError as problem:
        ck.invalid(path, node, problem)
        return None


def positive_duration(ck: Checker, node: Node, path: str, hint: str) -> int | None:
    """A duration that must be > 0 (a zero interval or timeout would spin or always fail)."""
    ms = ck.grammar(node, path, parse_duration)
    if ms == 0:
        ck.error(Code.INVALID_VALUE, path, "must be > 0", node, f"write a duration above 0; {hint}")
        return None
    return ms
