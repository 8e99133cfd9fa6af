"""The text view of a ``security.v1`` document (pure)."""

from __future__ import annotations

from systemg.cli.render_security import render_security
from systemg.security.exposure import judge, score
from systemg.security.facts import Facts
from systemg.security.report import document, service_json, skipped_json


def _doc() -> dict[str, object]:
    items = judge(Facts())
    unit = {"project": "p", "service": "web", "state": "running", "pid": 42}
    entry = service_json(unit, 42, items, score(items), threshold=9.0)
    gone = skipped_json({"project": "p", "service": "job", "state": "stopped"}, "not running")
    return document([entry], [gone], supervisor_pid=7, threshold=9.0)


def test_table_marks_largest_share_first_then_overall_line() -> None:
    text = render_security(_doc())
    lines = text.splitlines()
    assert lines[0] == "p/web (pid 42)"
    assert lines[1].split() == ["NAME", "DESCRIPTION", "EXPOSURE"]
    assert lines[2].startswith("✗ PrivateNetwork=")
    assert lines[2].endswith("0.5")
    assert "  SupplementaryGroups=" in text  # not applicable: no mark
    assert "✓ AmbientCapabilities=" in text
    assert "→ Overall exposure level for p/web: 9.8 UNSAFE" in text
    assert text.rstrip().endswith("p/job: not assessed (not running)")


def test_color_only_when_asked() -> None:
    assert "\x1b[" not in render_security(_doc())
    assert "\x1b[31m9.8 UNSAFE\x1b[0m" in render_security(_doc(), color=True)


def test_threshold_flag_in_json() -> None:
    doc = _doc()
    assert doc["services"][0]["above_threshold"] is True  # type: ignore[index]
    assert render_security(document([], [], supervisor_pid=1, threshold=None)) == (
        "No running service to assess\n"
    )
