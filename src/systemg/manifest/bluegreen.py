"""``deployment.blue_green`` (docs/manifest.md, "Blue/green"): two slots and a traffic switch.

Pure, like the rest of the parsing. The placeholders are rendered here, at load, for both
directions (index ``i``: the candidate is in ``slots[i]``, the active one in the other), so
the daemon never formats a command and a bad url in either direction is a load error:

* ``{slot}`` and ``{candidate_slot}``: the candidate's slot; ``{active_slot}``: the one
  serving now; ``{service_name}``: the service. Anything else in braces (``${VAR}`` aside,
  which is the environment's) is left as written, with a warning.

Invariants of a ``BlueGreen``: two distinct slots of ``[A-Za-z0-9._:/@%+=,-]`` (they are
pasted into shell commands unquoted, as upstream does, so nothing in them may be shell syntax);
``env_var`` is a variable name; ``switch_command`` is given; ``state_path`` is absolute.

``slotted`` is what a launch in a slot runs: the service with ``env_var`` set to the slot
(it wins over the same name in ``env``), the slot's ``candidate_health_check`` as its
readiness probe and the slot's rendering of ``liveness`` (which may name ``{slot}`` too).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any

from systemg.errors import Code
from systemg.manifest.check import Checker, child, item
from systemg.manifest.hooks import liveness as hook_liveness
from systemg.manifest.kernel import Kind
from systemg.manifest.model import BlueGreen, Liveness, ProbeKind, ProbeSpec, Service, Strategy
from systemg.manifest.readiness import health_check
from systemg.manifest.tree import Map, Node, Scalar, Seq

BLUE_GREEN_KEYS = (
    "env_var",
    "slots",
    "switch_command",
    "candidate_health_check",
    "switch_verify",
    "state_path",
)
_SLOT = re.compile(r"[A-Za-z0-9._:/@%+=,-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = ("slot", "active_slot", "candidate_slot", "service_name")


def render(text: str, *, candidate: str, active: str, service: str) -> str:
    values = {"slot": candidate, "candidate_slot": candidate, "active_slot": active}
    values["service_name"] = service
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def slotted(service: Service, index: int) -> Service:
    """``service`` as launched in ``blue_green.slots[index]`` (itself without blue_green)."""
    bg = service.blue_green
    if bg is None:
        return service
    env = service.env
    kept = tuple((k, v) for k, v in env.vars if k != bg.env_var)
    env = replace(env, vars=(*kept, (bg.env_var, bg.slots[index])))
    check = bg.checks[index] if bg.checks is not None else service.health_check
    live = bg.liveness[index] if bg.liveness is not None else service.liveness
    return replace(service, env=env, health_check=check, liveness=live)


def settings(
    ck: Checker,
    deployment: Node,
    path: str,
    *,
    name: str,
    manifest_dir: str,
    strategy: Strategy | None,
    liveness: Node | None = None,
) -> dict[str, Any]:
    """``blue_green`` of the ``deployment`` block at ``path`` (already checked for unknown
    keys), as ``Service`` fields; nothing when it is absent or has a problem. ``liveness``
    (the service's, when it has blue_green) is parsed here: rendered once per slot, or as
    written when the block has a problem (so its own problems are reported too).
    ``strategy`` None: the block's strategy was refused already (not said twice)."""
    service_path = path.rsplit(".", 1)[0]
    live_path = child(service_path, "liveness")
    out = _blue_green(ck, deployment, path, name=name, manifest_dir=manifest_dir, strategy=strategy)
    if liveness is None:
        return out
    bg = out.get("blue_green")
    if bg is None:
        found = hook_liveness(ck, liveness, live_path)
        return out if found is None else {**out, "liveness": found}
    pairs = ((bg.slots[0], bg.slots[1]), (bg.slots[1], bg.slots[0]))
    rendered: list[Liveness] = []
    for candidate, active in pairs:
        before = len(ck.errors)
        found = hook_liveness(ck, _rendered(liveness, candidate, active, name), live_path)
        if found is None or len(ck.errors) != before:
            return {}
        rendered.append(found)
    _probe_placeholders(ck, liveness, live_path)
    if rendered[0] == rendered[1] and rendered[0].probe.kind in (ProbeKind.URL, ProbeKind.TCP):
        ck.warn(
            Code.INVALID_VALUE,
            live_path,
            f"it probes {rendered[0].probe.raw} in either slot: after a switch it would probe "
            "the slot the traffic left",
            liveness,
            "write {slot} in it, e.g. url: http://127.0.0.1:{slot}/health",
        )
    return {
        **out,
        "liveness": rendered[0],
        "blue_green": replace(bg, liveness=(rendered[0], rendered[1])),
    }


def _blue_green(
    ck: Checker,
    deployment: Node,
    path: str,
    *,
    name: str,
    manifest_dir: str,
    strategy: Strategy | None,
) -> dict[str, Any]:
    if not isinstance(deployment, Map):
        return {}
    entry = next(((k, v) for k, v in deployment.entries if k.name == "blue_green"), None)
    if entry is None:
        return {}
    key, node = entry
    path = child(path, "blue_green")
    if strategy is None:
        return {}
    if strategy is not Strategy.ROLLING:
        ck.error(
            Code.INVALID_VALUE,
            path,
            f"blue_green is a kind of rolling restart, but deployment.strategy is {strategy.value}",
            key,
            "add strategy: rolling to the deployment block (or remove blue_green)",
        )
        return {}
    m = ck.mapping(node, path)
    if m is None:
        return {}
    before = len(ck.errors)
    f = ck.fields(m, path, BLUE_GREEN_KEYS)
    slots = _slots(ck, f, path, m)
    env_var = "PORT"
    if "env_var" in f:
        text = ck.string(f["env_var"][1], child(path, "env_var"), what="a variable name")
        if text is not None and not _ENV_NAME.fullmatch(text):
            ck.error(
                Code.INVALID_VALUE,
                child(path, "env_var"),
                f"{text!r} is not an environment variable name",
                f["env_var"][1],
                "use letters, digits and _, not starting with a digit, e.g. env_var: PORT",
            )
        elif text is not None:
            env_var = text
    command = None
    if "switch_command" not in f:
        ck.error(
            Code.MISSING_KEY,
            child(path, "switch_command"),
            "blue_green needs the command that moves traffic to the new slot",
            m,
            "e.g. switch_command: sh switch.sh {active_slot} {candidate_slot}",
        )
    else:
        command = ck.command(f["switch_command"][1], child(path, "switch_command"))
        if command is not None:
            _unknown_placeholders(ck, command, child(path, "switch_command"), f["switch_command"])
    state_path = None
    if "state_path" in f:
        spath, snode = child(path, "state_path"), f["state_path"][1]
        text = ck.string(snode, spath, what="a file path")
        if text is not None and ck.kernel(text, Kind.PATH, spath, snode):
            state_path = os.path.normpath(os.path.join(manifest_dir, text))
    if slots is None or command is None:
        return {}
    pairs = ((slots[0], slots[1]), (slots[1], slots[0]))  # (candidate, active) per index
    switch = tuple(render(command, candidate=c, active=a, service=name) for c, a in pairs)
    probes: dict[str, tuple[ProbeSpec, ProbeSpec] | None] = {}
    for block in ("candidate_health_check", "switch_verify"):
        probes[block] = None
        if block in f:
            probes[block] = _probes(ck, f[block][1], child(path, block), pairs, name)
    if len(ck.errors) != before:
        return {}
    return {
        "blue_green": BlueGreen(
            slots=slots,
            switch_command=command,
            switch=(switch[0], switch[1]),
            env_var=env_var,
            checks=probes["candidate_health_check"],
            verify=probes["switch_verify"],
            state_path=state_path,
        )
    }


def shared_port_warning(ck: Checker, service: Service, path: str, at: Node) -> None:
    """A readiness probe on one fixed port would be answered by the old generation."""
    bg = service.blue_green
    check = service.health_check
    if bg is None or bg.checks is not None or check is None:
        return
    if check.kind in (ProbeKind.URL, ProbeKind.TCP):
        ck.warn(
            Code.INVALID_VALUE,
            child(path, "deployment.health_check"),
            f"the candidate of either slot is probed at {check.raw}, which the serving "
            "generation may answer",
            at,
            "add blue_green.candidate_health_check with {slot} in it, "
            "e.g. url: http://127.0.0.1:{slot}/health",
        )


def _slots(ck: Checker, f: dict[str, Any], path: str, m: Map) -> tuple[str, str] | None:
    spath = child(path, "slots")
    if "slots" not in f:
        ck.error(
            Code.MISSING_KEY,
            spath,
            "blue_green needs its two slots",
            m,
            'e.g. slots: ["8000", "8001"]',
        )
        return None
    seq = ck.sequence(f["slots"][1], spath, '["8000", "8001"]')
    if seq is None:
        return None
    if len(seq.items) != 2:
        ck.error(
            Code.INVALID_VALUE,
            spath,
            f"blue_green has exactly two slots, got {len(seq.items)}",
            seq,
            'list two values, e.g. slots: ["8000", "8001"]',
        )
        return None
    values: list[str] = []
    for i, node in enumerate(seq.items):
        text = ck.string(node, item(spath, i), what="a slot (a port, say)")
        if text is None:
            return None
        if not _SLOT.fullmatch(text):
            ck.error(
                Code.INVALID_VALUE,
                item(spath, i),
                f"slot {text!r} has characters a shell command would read as syntax",
                node,
                "use letters, digits and . _ : / @ % + = , - only (a port, a socket path)",
            )
            return None
        values.append(text)
    if values[0] == values[1]:
        ck.error(
            Code.INVALID_VALUE,
            item(spath, 1),
            f"both slots are {values[0]!r}",
            seq.items[1],
            "give the two generations different slots, e.g. two ports",
        )
        return None
    return values[0], values[1]


def _probes(
    ck: Checker, node: Node, path: str, pairs: tuple[tuple[str, str], ...], name: str
) -> tuple[ProbeSpec, ProbeSpec] | None:
    """The probe rendered for each direction; a problem in the template is reported once."""
    found: list[ProbeSpec] = []
    for candidate, active in pairs:
        before = len(ck.errors)
        probe = health_check(ck, _rendered(node, candidate, active, name), path)
        if probe is None or len(ck.errors) != before:
            return None
        found.append(probe)
    _probe_placeholders(ck, node, path)
    return found[0], found[1]


def _probe_placeholders(ck: Checker, node: Node, path: str) -> None:
    if isinstance(node, Map):
        for key, value in node.entries:
            if key.name in ("url", "tcp", "command") and isinstance(value, Scalar):
                _unknown_placeholders(ck, str(value.value), child(path, key.name), (key, value))


def _rendered(node: Node, candidate: str, active: str, name: str) -> Node:
    """``node`` with the placeholders of every string in it rendered (same locations)."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        return replace(
            node,
            value=render(node.value, candidate=candidate, active=active, service=name),
            raw=render(node.raw, candidate=candidate, active=active, service=name),
        )
    if isinstance(node, Map):
        entries = tuple((k, _rendered(v, candidate, active, name)) for k, v in node.entries)
        return replace(node, entries=entries)
    if isinstance(node, Seq):
        return replace(node, items=tuple(_rendered(v, candidate, active, name) for v in node.items))
    return node


def _unknown_placeholders(ck: Checker, text: str, path: str, at: tuple[Any, Node]) -> None:
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(PLACEHOLDERS))
    if unknown:
        ck.warn(
            Code.INVALID_VALUE,
            path,
            f"{', '.join('{' + u + '}' for u in unknown)} is not a placeholder "
            "(it is left as written)",
            at[1],
            f"the placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
        )
