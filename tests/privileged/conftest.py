"""Fixtures for the spawn tests: a ``Spawner`` that cleans up every process and cgroup.

Every spawn test runs twice: forked by the test process itself (as ``launch`` does without a
helper) and cloned by a spawn helper (as the supervisor does): the same plan must give the
same process and the same faults either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from systemg.spawn.forkserver import ForkServer
from tests.privileged.spawn_helpers import Spawner


@pytest.fixture(scope="module")
def forkserver() -> Iterator[ForkServer]:
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["fork", "helper"])
def spawner(request: pytest.FixtureRequest) -> Iterator[Spawner]:
    s = Spawner(request.getfixturevalue("forkserver") if request.param == "helper" else None)
    try:
        yield s
    finally:
        s.close()
