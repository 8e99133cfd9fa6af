"""The one streaming call ``sysg logs -f`` makes to a live supervisor.

Kept tiny and separate until the shared ``cli/client.py`` exists: connect to the control
socket (``None`` when no supervisor listens), send one ``LogsRequest`` and yield the
``event`` objects of the stream until its closing reply or EOF. A closing reply with
``ok: false`` is raised as the ``SysgError`` it carries.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from systemg.errors import Diagnostic, SysgError
from systemg.protocol.codec import MAX_FRAME, decode_object, encode_request
from systemg.protocol.messages import LogsRequest


def connect(path: Path) -> socket.socket | None:
    """A connection to the supervisor's control socket, or ``None`` if nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError, PermissionError):
        sock.close()
        return None
    return sock


def subscribe(sock: socket.socket, request: LogsRequest) -> Iterator[dict[str, Any]]:
    """Send ``request`` and return once the supervisor confirms the subscription (its first
    event, ``{"kind": "subscribed"}``): every line captured after this call returns reaches
    the returned iterator, so a tail read from the files afterwards leaves no gap."""
    sock.sendall(encode_request(request))
    events = _events(sock)
    for event in events:
        if event.get("kind") == "subscribed":
            break
    return events


def _events(sock: socket.socket) -> Iterator[dict[str, Any]]:
    """Each stream event until the reply line or EOF; an error reply is raised."""
    with sock.makefile("rb") as reader:
        while True:
            frame = reader.readline(MAX_FRAME + 1)
            if not frame:
                return
            obj = decode_object(frame)
            event = obj.get("event")
            if isinstance(event, dict):
                yield event
                continue
            if obj.get("ok") is False:
                diags = [Diagnostic.from_json(d) for d in obj.get("diagnostics", ())]
                if diags:
                    raise SysgError(*diags)
            return
