"""NDJSON framing for the control socket, with a hard size cap.

A frame is one UTF-8 JSON object followed by ``\\n``. Anything larger than ``MAX_FRAME``
(1 MiB), not UTF-8, not JSON, not an object, with a missing or unknown verb, or with
arguments of the wrong shape is a ``ProtocolError`` (``SG0230``) — never an exception
of another type — so the supervisor can answer it and carry on.
"""

from __future__ import annotations

import json
from typing import Any

from systemg.errors import Code, Diagnostic, ProtocolError
from systemg.protocol.messages import PROTOCOL_VERSION, VERBS, Message

MAX_FRAME = 1024 * 1024


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
    except (ValueError, RecursionError) as exc:
        raise _bad(f"frame is not JSON: {exc}") from None
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
                f"client speaks protocol {version!r}, this supervisor speaks {PROTOCOL_VERSION}",
                hint="use the same sysg version for the CLI and the supervisor, "
                "or restart the supervisor with `sysg stop --supervisor`",
            )
        )
    verb = obj.get("verb")
    cls = VERBS.get(verb) if isinstance(verb, str) else None
    if cls is None:
        raise _bad(f"unknown verb {verb!r}", hint=f"known verbs: {', '.join(sorted(VERBS))}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise _bad("'args' must be a JSON object")
    try:
        request = cls.from_json(args)
    except (TypeError, ValueError) as exc:
        raise _bad(f"bad arguments for {verb!r}: {exc}") from None
    _check_field_types(request)
    return request


def _check_field_types(request: Message) -> None:
    """Reject wrong-typed fields (e.g. ``"project": 5``) before any handler sees them."""
    for name, value in request.to_json().items():
        if value is None or isinstance(value, bool | str | int):
            continue
        if isinstance(value, tuple | list) and all(
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(x, str) for x in item)
            for item in value
        ):
            continue
        raise _bad(f"field {name!r} has a value of the wrong type: {value!r:.80}")
    for name in ("project", "service", "config"):
        value = getattr(request, name, None)
        if value is not None and not isinstance(value, str):
            raise _bad(f"field {name!r} must be a string")
    for name in ("drop_privileges", "attach", "force"):
        value = getattr(request, name, None)
        if value is not None and not isinstance(value, bool):
            raise _bad(f"field {name!r} must be true or false")
