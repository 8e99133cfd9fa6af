"""The one streaming call ``sysg logs -f`` makes to a live supervisor.

``connect`` returns a connection to the control socket, or ``None`` when no supervisor
listens there (the CLI then follows the files). ``subscribe`` sends one ``LogsRequest`` and
returns once the supervisor confirms the subscription (its first event, ``{"kind":
"subscribed"}``), with the stream deadline of ``cli/deadlines.py``: connect and that first
line must come within ``FIRST_LINE`` seconds (else ``SG0205``), after which the stream may
run forever. The returned iterator yields the ``event`` objects until the closing reply; an
error reply is raised as the ``SysgError`` it carries, and a connection that ends without
one (the supervisor stopped or died) as ``SG0206`` saying so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from systemg.cli import client
from systemg.cli.deadlines import for_request
from systemg.errors import Code, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import LogsRequest


def connect(paths: Paths) -> socket.socket | None:
    """A connection to the supervisor's control socket, or ``None`` if nobody listens."""
    client.refuse_if_stopped(paths)  # frozen: say so at once, do not queue a request
    try:
        return client.connect(paths)
    except SysgError as exc:
        if exc.code in (Code.NO_SUPERVISOR, Code.PERMISSION_DENIED):
            return None
        raise


def subscribe(sock: socket.socket, paths: Paths, request: LogsRequest) -> Iterator[dict[str, Any]]:
    """Send ``request`` and return once the supervisor confirms the subscription: every
    line captured after this call returns reaches the returned iterator, so a tail read
    from the files afterwards leaves no gap."""
    items = client.exchange(sock, paths, request, for_request(request.verb))
    events = _events(items, paths)
    for event in events:
        if event.get("kind") == "subscribed":
            break
    return events


def went_away(paths: Paths) -> SysgError:
    return SysgError.of(
        Code.NO_SUPERVISOR,
        "the supervisor went away; no more lines will come",
        hint=f"see {paths.supervisor_log}; `sysg logs -f` again follows the files "
        "(and the stream of a new supervisor)",
    )


def _events(
    items: Iterator[client.Event | dict[str, Any]], paths: Paths
) -> Iterator[dict[str, Any]]:
    """Each stream event until the closing reply; an error reply is raised."""
    try:
        for item in items:
            if not isinstance(item, client.Event):
                return  # the closing reply
            yield item.data
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            raise went_away(paths) from None
        raise
