"""Fixtures for the spawn tests: a ``Spawner`` that cleans up every process and cgroup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.privileged.spawn_helpers import Spawner


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    s = Spawner()
    try:
        yield s
    finally:
        s.close()
