"""Shared fixtures: a private runtime root per test (``rt``) and root-only gating."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.runtime import Runtime
from tests.support.serial import apply_xdist_groups

if TYPE_CHECKING:
    from systemg.spawn.launcher import Launcher
    from tests.support.inprocess import Harness

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[Launcher], Harness]]:
    """``make(launcher)``: a supervisor in this process (``tests/support/inprocess.py``),
    closed after the test."""
    from tests.support.inprocess import Harness

    made: list[Harness] = []

    def factory(launcher: Launcher, **kw: str) -> Harness:
        h = Harness(tmp_path, launcher, **kw)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.close()


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime()
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.hookimpl(trylast=True)  # after xdist's own tagging, which this only completes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    apply_xdist_groups(config, items)
    skip = pytest.mark.skip(
        reason="needs root: privileged tests read /proc of services run as other users"
    )
    for item in items:
        if "tests/privileged/" in str(item.path) or item.get_closest_marker("privileged"):
            item.add_marker(pytest.mark.privileged)
            if not IS_ROOT:
                item.add_marker(skip)
