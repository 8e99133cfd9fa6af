"""The fd holder's wire contract: one JSON object per ``SOCK_SEQPACKET`` packet, fds by
``SCM_RIGHTS``.

Requests (supervisor → holder)::

    {"op": "put", "key": K}  + 1..MAX_FDS fds   hold these (replacing what K held)
    {"op": "del", "key": K}                      close what K holds
    {"op": "get"}                                send everything back
    {"op": "exit"}                               close everything and exit

Reply to ``get``: one ``{"key": K}`` packet per entry carrying its fds, then ``{"end": true}``.

Parsing is strict and total: ``parse_request`` and ``parse_reply`` return ``None`` for
anything that is not exactly one of these (not UTF-8 or not JSON, too deep, not an object,
an unknown op, a key that is not a non-empty string of at most ``MAX_KEY`` characters, a
packet or fd list truncated by the kernel, fds on an op that takes none) and never raise.
Whoever received the packet closes its fds when it is refused.
"""

from __future__ import annotations

import enum
import json
import socket
from dataclasses import dataclass
from typing import Any

MAX_PACKET = 4096  # bytes of JSON per packet; a longer packet arrives truncated: refused
MAX_FDS = 2  # stdout and stderr read ends per key
MAX_KEY = 1024  # "project/service/pid" is far shorter


class Op(enum.Enum):
    PUT = "put"
    DEL = "del"
    GET = "get"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Request:
    op: Op
    key: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One held entry in a ``get`` reply (its fds travel with the packet)."""

    key: str


@dataclass(frozen=True, slots=True)
class End:
    """The last packet of a ``get`` reply."""


def encode(op: Op, key: str = "") -> bytes:
    return json.dumps({"op": op.value, "key": key} if key else {"op": op.value}).encode()


def encode_entry(key: str) -> bytes:
    return json.dumps({"key": key}).encode()


END = json.dumps({"end": True}).encode()

_TRUNCATED = socket.MSG_TRUNC | socket.MSG_CTRUNC


def parse_request(data: bytes, nfds: int, flags: int) -> Request | None:
    """The request in one packet that came with ``nfds`` fds, or None if it is not one."""
    obj = _object(data, flags)
    if obj is None:
        return None
    try:
        op = Op(obj.get("op"))
    except (ValueError, TypeError):
        return None
    match op:
        case Op.PUT | Op.DEL:
            key = obj.get("key")
            if not _valid_key(key):
                return None
            wanted = (1, MAX_FDS) if op is Op.PUT else (0, 0)
            if not wanted[0] <= nfds <= wanted[1]:
                return None
            return Request(op, str(key))
        case Op.GET | Op.EXIT:
            return Request(op) if nfds == 0 else None


def parse_reply(data: bytes, nfds: int, flags: int) -> Entry | End | None:
    """One packet of a ``get`` reply, or None if it is not one."""
    obj = _object(data, flags)
    if obj is None:
        return None
    if obj.get("end") is True and nfds == 0:
        return End()
    key = obj.get("key")
    if _valid_key(key) and 1 <= nfds <= MAX_FDS:
        return Entry(str(key))
    return None


def _valid_key(key: Any) -> bool:
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY


def _object(data: bytes, flags: int) -> dict[str, Any] | None:
    if flags & _TRUNCATED or len(data) > MAX_PACKET:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return obj if isinstance(obj, dict) else None
