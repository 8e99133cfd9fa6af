"""The deprecated single-project shape: ``project:`` (an id or ``{id, name}``) with top-level
``services:``, which belong to that project (upstream ``single-project-compat``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from systemg.errors import Code, ManifestError
from systemg.manifest.load import load_manifest

SERVICES = "services:\n  worker: {command: sleep 3000, restart_policy: always}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "legacy.yaml"
    path.write_text(text)
    return path


def refusal(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    return [(str(d.code), d.path) for d in info.value.diagnostics if d.severity == "error"]


@pytest.mark.parametrize(
    ("project", "name"),
    [
        ("project:\n  id: legacy\n  name: Legacy Single Project\n", "Legacy Single Project"),
        ("project: {id: legacy}\n", "legacy"),
        ("project: legacy\n", "legacy"),
    ],
)
def test_top_level_services_belong_to_the_declared_project(
    tmp_path: Path, project: str, name: str
) -> None:
    path = write(tmp_path, f'version: "2"\n{project}{SERVICES}')
    result = load_manifest(path, environ={})
    [p] = result.manifest.projects
    assert (p.id, p.name, p.loose) == ("legacy", name, False)
    assert [s.name for s in p.services] == ["worker"]


def test_one_deprecation_warning_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, f'version: "2"\nproject: legacy\n{SERVICES}')
    [w] = load_manifest(path, environ={}).warnings
    assert (w.code, w.severity, w.path, w.line) == (Code.DEPRECATED_SHAPE, "warning", "project", 2)
    assert str(path) in w.message
    assert "'legacy'" in w.message
    assert f"sysg migrate {path}" in w.hint


def test_projects_without_project_do_not_warn(tmp_path: Path) -> None:
    path = write(tmp_path, f'version: "2"\n{SERVICES}')
    result = load_manifest(path, environ={})
    assert result.warnings == ()
    assert result.manifest.projects[0].loose


def test_project_and_projects_together_is_an_error_naming_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'version: "2"\nproject: legacy\nprojects: {{a: {{services: {{x: {{command: y}}}}}}}}\n'
        f"{SERVICES}",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    [d] = [d for d in info.value.diagnostics if d.severity == "error"]
    assert d.path == "project"
    assert "project:" in d.message
    assert "projects:" in d.message
    assert d.line == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('version: "2"\nproject: legacy\n', [("SG0213", "services")]),
        (f'version: "2"\nproject: "a/b"\n{SERVICES}', [("SG0221", "project")]),
        (f'version: "2"\nproject: {{id: ".."}}\n{SERVICES}', [("SG0221", "project.id")]),
        (f'version: "2"\nproject: {{name: x}}\n{SERVICES}', [("SG0213", "project.id")]),
        (f'version: "2"\nproject: {{id: a, owner: b}}\n{SERVICES}', [("SG0212", "project.owner")]),
        (f'version: "2"\nproject: [a]\n{SERVICES}', [("SG0210", "project")]),
    ],
)
def test_bad_legacy_project_is_refused_with_its_field(
    tmp_path: Path, text: str, expected: list[tuple[str, str]]
) -> None:
    assert refusal(write(tmp_path, text)) == expected


def test_service_problems_keep_their_top_level_path(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'version: "2"\nproject: legacy\nservices:\n  w: {command: x, bogus: 1}\n'
    )
    assert refusal(path) == [("SG0212", "services.w.bogus")]
