"""Shared fixtures: a private runtime root per test (``rt``) and root-only gating."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.runtime import Runtime
from tests.support.serial import apply_xdist_groups

IS_ROOT = os.geteuid() == 0


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
