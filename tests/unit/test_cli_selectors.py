"""``-s``/``-p`` parsing: ``project/service``, agreement with ``-p``, bad shapes."""

from __future__ import annotations

import pytest

from systemg.cli.selectors import Selection, parse_selector
from systemg.errors import Code, SysgError


@pytest.mark.parametrize(
    ("service", "project", "expected"),
    [
        (None, None, Selection(None, None)),
        ("web", None, Selection(None, "web")),
        (None, "api", Selection("api", None)),
        ("web", "api", Selection("api", "web")),
        ("api/web", None, Selection("api", "web")),
        ("api/web", "api", Selection("api", "web")),
    ],
)
def test_selectors(service: str | None, project: str | None, expected: Selection) -> None:
    assert parse_selector(service, project) == expected


def test_prefix_disagreeing_with_project_is_sg0201() -> None:
    with pytest.raises(SysgError) as info:
        parse_selector("api/web", "other")
    assert info.value.code is Code.SELECTOR_MISMATCH
    assert "api/web" in str(info.value)


@pytest.mark.parametrize("bad", ["/web", "api/", "a/b/c", "/", " "])
def test_malformed_service_selector_is_a_usage_error(bad: str) -> None:
    with pytest.raises(SysgError) as info:
        parse_selector(bad, None)
    assert info.value.code is Code.USAGE


def test_empty_project_is_a_usage_error() -> None:
    with pytest.raises(SysgError) as info:
        parse_selector("web", "")
    assert info.value.code is Code.USAGE
