"""``cli.validate_report``: each problem the loader reports gets the upstream's kind (from
its code and field path), the report has the upstream's shape, and the mode check decides
``startable``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from systemg.cli.validate_report import (
    KINDS,
    classify,
    diagnostic_json,
    mode_findings,
    report_json,
)
from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import Manifest

ROOT = Path(__file__).resolve().parents[2]
V2 = 'version: "2"\n'
SVC = "services:\n  web: {command: x}\n"


def kinds(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ=environ or {})
    return [classify(d).name for d in info.value.diagnostics if d.severity == "error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SVC, ["missing-version"]),
        ("", ["missing-version"]),
        ('version: "9"\n' + SVC, ["unsupported-version"]),
        ('version: "1"\n' + SVC, ["unsupported-version"]),
        (V2 + "services: [unclosed\n", ["invalid-yaml"]),
        (V2 + "services:\n  web: {command: x, on_error: y}\n", ["unknown-field"]),
        (V2 + "services:\n  web: {restart_policy: never}\n", ["missing-command"]),
        (V2 + "services:\n  w: {command: x, hooks: {onerr: {timeout: 1s}}}\n", ["missing-command"]),
        (V2 + "env: {}\n", ["missing-services"]),
        (V2 + "projects:\n  p: {name: P}\n", ["missing-services"]),
        (V2 + "project: p\n", ["missing-services"]),
        (
            V2 + "services:\n  w: {command: x, deployment: {health_check: {interval: 2s}}}\n",
            ["invalid-health-check"],
        ),
        (V2 + "services:\n  w: {command: x, liveness: {interval: 2s}}\n", ["invalid-health-check"]),
        (V2 + "services:\n  w: {command: x, cron: {timezone: UTC}}\n", ["missing-field"]),
        (V2 + "services:\n  w: {command: x, depends_on: [db]}\n", ["unknown-dependency"]),
        (
            V2
            + "services:\n  a: {command: x, depends_on: [b]}\n  b: {command: y, depends_on: [a]}\n",
            ["dependency-cycle"],
        ),
        (V2 + "services:\n  w: {command: '${NOPE}'}\n", ["missing-env-var"]),
        (V2 + "services:\n  w: {command: x, env: {file: none.env}}\n", ["invalid-env-file"]),
        (V2 + "services:\n  w: {command: x, backoff: 0.5s}\n", ["invalid-field-value"]),
        (V2 + "projects:\n  'a b': {services: {w: {command: x}}}\n", ["invalid-project-id"]),
        (V2 + "project: 'a/b'\n" + SVC, ["invalid-project-id"]),
        (V2 + "project: {name: x}\n" + SVC, ["invalid-project-id"]),
        (V2 + "services:\n  'a b': {command: x}\n", ["invalid-field-value"]),
        (V2 + "services:\n  w: !include nope.yaml\n", ["unresolved-include"]),
    ],
)
def test_kind_of_each_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert kinds(tmp_path, text) == expected


def test_an_unreadable_file_is_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "missing.yaml", environ={})
    assert [classify(d).name for d in info.value.diagnostics] == ["unreadable-config"]


def test_an_include_cycle_is_unresolved_include(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("!include m.yaml\n")
    assert "unresolved-include" in kinds(tmp_path, V2 + "services:\n  w: !include a.yaml\n")


def test_every_code_the_loader_can_raise_has_a_kind_other_than_the_fallback() -> None:
    loader_codes = {
        Code.INVALID_VALUE, Code.MISSING_KEY, Code.INVALID_YAML, Code.CONFIG_UNREADABLE,
        Code.UNTRUSTED_CONFIG, Code.UNSUPPORTED_VERSION, Code.INVALID_NAME, Code.UNKNOWN_KEY,
        Code.INCLUDE_LIMIT, Code.FILE_TOO_LARGE, Code.ENV_FILE, Code.UNKNOWN_DEPENDENCY,
        Code.NOT_UTF8, Code.MISSING_ENV_VAR, Code.LSM, Code.INCLUDE_MISSING, Code.INCLUDE_CYCLE,
        Code.DEPENDENCY_CYCLE, Code.DEPRECATED_SHAPE,
    }  # fmt: skip
    for code in loader_codes:
        assert classify(Diagnostic(code, "m", "services.w.x")).name != "invalid-config", code
    assert classify(Diagnostic(Code.INTERNAL, "m")).name == "invalid-config"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_doc_link_is_a_section_of_the_docs() -> None:
    for kind in KINDS.values():
        file, _, anchor = kind.doc.partition("#")
        assert (ROOT / file).is_file(), kind
        assert anchor in _anchors(ROOT / file), kind
        assert kind.why.endswith("."), kind
        assert kind.suggestion.endswith("."), kind


def test_diagnostic_json_has_the_upstream_fields_and_ours() -> None:
    d = Diagnostic(
        Code.UNKNOWN_KEY, "services.w.x: unknown key", "services.w.x", "", "/m.yaml", 3, 5
    )
    doc = diagnostic_json(d)
    assert doc == {
        "severity": "error",
        "line": 3,
        "column": 5,
        "kind": "unknown-field",
        "message": "services.w.x: unknown key",
        "why": KINDS["unknown-field"].why,
        "suggestion": KINDS["unknown-field"].suggestion,  # no hint of its own
        "doc": "docs/manifest.md#service-keys",
        "code": "SG0212",
        "path": "services.w.x",
        "file": "/m.yaml",
    }
    assert diagnostic_json(Diagnostic(Code.UNKNOWN_KEY, "m", hint="do this"))["suggestion"] == (
        "do this"
    )
    assert diagnostic_json(Diagnostic(Code.INTERNAL, "m"))["line"] is None


def test_report_is_never_startable_when_invalid() -> None:
    doc = report_json("/m.yaml", (), valid=False, startable=True)
    assert doc == {"config": "/m.yaml", "valid": False, "startable": False, "diagnostics": []}


def _manifest(tmp_path: Path, text: str) -> Manifest:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return load_manifest(path, environ={}).manifest


IDENTITY = (
    V2 + "projects:\n  p:\n    services:\n"
    "      db: {command: x, user: ghost, group: realgroup}\n      plain: {command: y}\n"
)


def test_a_supervisor_that_is_not_root_cannot_start_a_user_switch(tmp_path: Path) -> None:
    [d] = mode_findings(
        _manifest(tmp_path, IDENTITY), root=False, user_exists=bool, group_exists=bool
    )
    assert (d.severity, classify(d).name, d.path) == (
        "error",
        "requires-system-mode",
        "projects.p.services.db.user",
    )
    assert "user, group" in d.message
    assert "sysg --sys" in d.hint


def test_with_root_a_missing_account_is_a_warning(tmp_path: Path) -> None:
    found = mode_findings(
        _manifest(tmp_path, IDENTITY),
        root=True,
        user_exists=lambda name: name != "ghost",
        group_exists=lambda name: name == "realgroup",
    )
    assert [(d.severity, classify(d).name, d.path) for d in found] == [
        ("warning", "unknown-user", "projects.p.services.db.user")
    ]


def test_numeric_ids_are_not_looked_up_and_plain_manifests_have_no_findings(
    tmp_path: Path,
) -> None:
    numeric = _manifest(tmp_path, V2 + "services:\n  w: {command: x, user: 1234}\n")
    assert mode_findings(numeric, root=True, user_exists=lambda n: False, group_exists=bool) == ()
    plain = _manifest(tmp_path, V2 + SVC)
    assert mode_findings(plain, root=False, user_exists=bool, group_exists=bool) == ()


@pytest.mark.parametrize("shape", ["", "project: legacy\n"])
def test_top_level_services_are_named_by_their_top_level_path(tmp_path: Path, shape: str) -> None:
    m = _manifest(
        tmp_path, V2 + shape + "services:\n  w: {command: x, supplementary_groups: [a]}\n"
    )
    [d] = mode_findings(m, root=False, user_exists=bool, group_exists=bool)
    assert d.path == "services.w.supplementary_groups"
