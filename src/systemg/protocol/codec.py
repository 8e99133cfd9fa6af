"""NDJSON framing for the control socket, with a hard size cap.

A frame is one UTF-8 JSON object followed by ``\\n``. Anything larger than ``MAX_FRAME``
(1 MiB), not UTF-8, not JSON, not an object, with a missing or unknown verb, or with
arguments of the wrong shape is a ``ProtocolError`` (``SG0230``) — never an exception
of another type — so the supervisor can answer it and carry on.

"The right shape": ``args`` nests at most ``MAX_DEPTH`` levels (checked without
recursion, before anything recurses into it), and each known field has exactly the type
its request dataclass declares (``bool`` is not ``int``; a string holds no NUL). Unknown
fields are ignored. Values quoted back in an error are cut to 80 characters.
"""

from __future__ import annotations

import functools
import json
import types
from dataclasses import fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from systemg.errors import Code, Diagnostic, ProtocolError
from systemg.protocol.messages import PROTOCOL_VERSION, VERBS, Message

MAX_FRAME = 1024 * 1024
MAX_DEPTH = 8  # of 'args': the deepest field (environ) is a list of pairs, depth 3


def _bad(message: str, hint: str = "") -> ProtocolError:
    return ProtocolError(Diagnostic(Code.PROTOCOL, message, hint=hint))


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def encode_request(request: Message) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "verb": request.verb, "args": request.to_json()})


def encode_ok(data: dict[str, Any] | None = None) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "ok": True, "data": data or {}})


def encode_error(diagnostics: tuple[Diagnostic, ...]) -> bytes:
    return encode(
        {"v": PROTOCOL_VERSION, "ok": False, "diagnostics": [d.to_json() for d in diagnostics]}
    )


def encode_event(event: dict[str, Any]) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "event": event})


def decode_object(frame: bytes) -> dict[str, Any]:
    """Parse one frame (with or without its newline) into a JSON object."""
    if len(frame) > MAX_FRAME:
        raise _bad(f"frame of {len(frame)} bytes exceeds the {MAX_FRAME}-byte limit")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"frame is not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise _bad(f"frame is not JSON: {exc}") from None
    except RecursionError:
        # The decoder's limit is Python's recursion limit minus however deep the caller's
        # stack already is, so where this trips varies: say what is wrong, the same each time.
        raise _bad("frame nests deeper than the JSON decoder allows") from None
    if not isinstance(obj, dict):
        raise _bad("frame is not a JSON object")
    return obj


def decode_request(frame: bytes) -> Message:
    obj = decode_object(frame)
    version = obj.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            Diagnostic(
                Code.VERSION_MISMATCH,
                f"client speaks protocol {_shown(version)}, "
                f"this supervisor speaks {PROTOCOL_VERSION}",
                hint="use the same sysg version for the CLI and the supervisor, "
                "or restart the supervisor with `sysg stop --supervisor`",
            )
        )
    verb = obj.get("verb")
    cls = VERBS.get(verb) if isinstance(verb, str) else None
    if cls is None:
        raise _bad(f"unknown verb {_shown(verb)}", hint=f"known verbs: {', '.join(sorted(VERBS))}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise _bad("'args' must be a JSON object")
    if _depth(args) > MAX_DEPTH:
        raise _bad(f"'args' nests deeper than {MAX_DEPTH} levels")
    hints = _field_types(verb)
    for name, value in args.items():
        hint = hints.get(name)
        if hint is not None and not _conforms(value, hint):
            raise _bad(f"field {name!r} must be {_describe(hint)}, not {_shown(value)}")
    try:
        return cls.from_json(args)
    except (TypeError, ValueError) as exc:
        raise _bad(f"bad arguments for {verb!r}: {exc}") from None


def _shown(value: Any) -> str:
    """A client's value in a message: short, whatever it is."""
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend(
                    (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _conforms(value: Any, hint: Any) -> bool:
    """Is the JSON ``value`` of the field type ``hint`` (a tuple is a JSON list)? No NUL in
    strings: they become paths and names, where a NUL is an error far from here."""
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str) and "\x00" not in value
    origin, args = get_origin(hint), get_args(hint)
    if origin is types.UnionType or origin is Union:
        return any(_conforms(value, arg) for arg in args)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(item, args[0]) for item in value)
        return len(args) == len(value) and all(map(_conforms, value, args))
    return False


def _describe(hint: Any) -> str:
    names = {str: "a string", bool: "true or false", int: "an integer", type(None): "null"}
    if hint in names:
        return names[hint]
    if get_origin(hint) is tuple:
        return "a list of [name, value] string pairs"
    return " or ".join(_describe(arg) for arg in get_args(hint))


@functools.cache
def _field_types(verb: str) -> dict[str, Any]:
    """Each field's declared type. Performance: evaluated on the first request of each
    verb, not at import (``get_type_hints`` evals every annotation: ~10 ms for all the
    verbs, paid by every CLI command and the supervisor's boot before), once per class."""
    cls = VERBS[verb]
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}
