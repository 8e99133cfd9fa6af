"""The keys of a service that run something around it (docs/manifest.md, "Liveness, pre_start,
hooks, skip"):
``liveness``, ``hooks`` and ``skip``. (``deployment.pre_start`` is parsed with the rest of
``deployment`` in ``readiness.py``.) Pure, like the rest of the parsing.

Invariants of the result:

* a ``Liveness`` has the probe of a ``health_check`` (exactly one kind, ``interval`` and
  ``attempt_timeout`` > 0, defaults 10s and 2s) and ``failures`` ≥ 1; the readiness budget
  keys ``retries``/``total_timeout``/``timeout`` are refused there, not ignored;
* every ``Hook`` has a command the kernel can take and a ``timeout_ms`` > 0; ``hooks`` and each
  hook reject unknown keys (as upstream);
* ``skip`` is a YAML boolean or a non-empty command; ``skip`` and ``skip_command`` are never
  both set. A command that is exactly ``true``/``false`` (e.g. from ``${MAINTENANCE:-false}``)
  is taken as the boolean, which is what the shell would answer.
"""

from __future__ import annotations

from typing import Any

from systemg.errors import Code
from systemg.manifest.check import Checker, child, describe
from systemg.manifest.model import (
    DEFAULT_HOOK_TIMEOUT_MS,
    DEFAULT_LIVENESS_ATTEMPT_TIMEOUT_MS,
    DEFAULT_LIVENESS_FAILURES,
    DEFAULT_LIVENESS_INTERVAL_MS,
    Hook,
    Hooks,
    Liveness,
)
from systemg.manifest.readiness import PROBE_KINDS, Fields, positive_duration, probe_block
from systemg.manifest.tree import Bad, Node, Scalar

HOOK_SERVICE_KEYS = ("liveness", "hooks", "skip")
LIVENESS_KEYS = (*PROBE_KINDS, "interval", "attempt_timeout", "failures")
_READINESS_ONLY = ("retries", "total_timeout", "timeout")
HOOK_NAMES = ("onstart", "onerr", "onstop")
HOOK_KEYS = ("command", "timeout")


def settings(ck: Checker, f: Fields, path: str) -> dict[str, Any]:
    """The ``Service`` fields of ``liveness``, ``hooks`` and ``skip`` found in ``f``."""
    out: dict[str, Any] = {}
    if "liveness" in f:
        found = liveness(ck, f["liveness"][1], child(path, "liveness"))
        if found is not None:
            out["liveness"] = found
    if "hooks" in f:
        found_hooks = hooks(ck, f["hooks"][1], child(path, "hooks"))
        if found_hooks is not None:
            out["hooks"] = found_hooks
    if "skip" in f:
        out.update(skip(ck, f["skip"][1], child(path, "skip")))
    return out


def liveness(ck: Checker, node: Node, path: str) -> Liveness | None:
    m = ck.mapping(node, path)
    if m is None:
        return None
    before = len(ck.errors)
    f = ck.fields(m, path, (*LIVENESS_KEYS, *_READINESS_ONLY))
    for key in _READINESS_ONLY:
        if key in f:
            ck.error(
                Code.UNKNOWN_KEY,
                child(path, key),
                f"{key} is a readiness budget (deployment.health_check); liveness has none",
                f[key][0],
                "liveness probes every interval while the service runs: "
                "write failures: N (consecutive failures that make it unhealthy, default "
                f"{DEFAULT_LIVENESS_FAILURES})",
            )
    probe = probe_block(
        ck,
        m,
        f,
        path,
        interval_ms=DEFAULT_LIVENESS_INTERVAL_MS,
        attempt_timeout_ms=DEFAULT_LIVENESS_ATTEMPT_TIMEOUT_MS,
    )
    failures: int | None = DEFAULT_LIVENESS_FAILURES
    if "failures" in f:
        failures = ck.integer(f["failures"][1], child(path, "failures"), minimum=1)
    if probe is None or failures is None or len(ck.errors) != before:
        return None
    return Liveness(probe, failures)


def hooks(ck: Checker, node: Node, path: str) -> Hooks | None:
    m = ck.mapping(node, path)
    if m is None:
        return None
    before = len(ck.errors)
    f = ck.fields(m, path, HOOK_NAMES)
    found = {name: hook(ck, f[name][1], child(path, name), name) for name in f}
    if len(ck.errors) != before:
        return None
    return Hooks(**found)


def hook(ck: Checker, node: Node, path: str, name: str) -> Hook | None:
    if isinstance(node, Scalar) and isinstance(node.value, str):
        ck.error(
            Code.INVALID_VALUE,
            path,
            f"expected a mapping {{command, timeout?}}, got {describe(node)}",
            node,
            f"write {name}: {{command: {node.raw}}}",
        )
        return None
    m = ck.mapping(node, path)
    if m is None:
        return None
    f = ck.fields(m, path, HOOK_KEYS)
    timeout: int | None = DEFAULT_HOOK_TIMEOUT_MS
    if "timeout" in f:
        hint = "a hook is killed after it; omit timeout for the default 300s"
        timeout = positive_duration(ck, f["timeout"][1], child(path, "timeout"), hint)
    if "command" not in f:
        ck.error(
            Code.MISSING_KEY,
            child(path, "command"),
            "the hook has no command",
            m,
            f"write {name}: {{command: ./script.sh}} (run by /bin/sh -c)",
        )
        return None
    command = ck.command(f["command"][1], child(path, "command"))
    if command is None or timeout is None:
        return None
    return Hook(command, timeout)


def skip(ck: Checker, node: Node, path: str) -> dict[str, Any]:
    """``skip: true|false`` -> ``skip``; ``skip: COMMAND`` -> ``skip_command``."""
    if isinstance(node, Bad):
        return {}
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return {"skip": node.value}
    if isinstance(node, Scalar) and (node.value is None or isinstance(node.value, str)):
        command = ck.command(node, path)
        if command is None:
            return {}
        if command in ("true", "false"):
            return {"skip": command == "true"}
        return {"skip_command": command}
    ck.error(
        Code.INVALID_VALUE,
        path,
        f"expected true, false or a shell command, got {describe(node)}",
        node,
        'write skip: true, or a command whose exit 0 means skipped: skip: "test -f /etc/maint"',
    )
    return {}
