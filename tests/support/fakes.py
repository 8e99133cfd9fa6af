"""Small stand-ins for the supervisor's collaborators, for in-process supervisor tests."""

from __future__ import annotations


class NoHolder:
    """An fd holder that holds nothing: in-process tests never crash the supervisor, so
    they need no process to keep output pipes open across a crash."""

    def __init__(self) -> None:
        self.held: dict[str, list[int]] = {}

    def put(self, key: str, fds: list[int]) -> None:
        self.held[key] = list(fds)

    def drop(self, key: str) -> None:
        self.held.pop(key, None)
