"""``manifest.migrate``: version 1 text -> version 2 text that the real loader accepts.

The corpus is tests/data/v1/: ``every-key.yaml`` holds every version 1 key that has a
version 2 form (``project: {id, name}``, ``env``, ``logs``, ``x-`` anchors, ``!include``,
block scalars, comments everywhere), ``project-id.yaml`` the ``project: ID`` form,
``loose.yaml`` no project at all, ``refused.yaml`` every key that has no version 2 form.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from systemg.errors import Code, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.migrate import migrate

DATA = Path(__file__).parents[1] / "data" / "v1"


def _load(path: Path, text: str) -> list[tuple[str, str, list[str]]]:
    """(project id, name, service names) of ``text`` validated as if it were ``path``."""
    result = load_manifest(path, environ={}, text=text.encode())
    return [(p.id, p.name, [s.name for s in p.services]) for p in result.manifest.projects]


def _comments(text: str) -> list[str]:
    """Every ``# text`` of ``text``, trailing ones included (none here is in quotes)."""
    return [m.group(1) for m in re.finditer(r"(?:^|\s)#\s*(.*)$", text, re.MULTILINE)]


def test_every_key_moves_under_projects_and_validates() -> None:
    path = DATA / "every-key.yaml"
    before = path.read_text()
    with pytest.raises(ManifestError) as refused:
        load_manifest(path, environ={})
    assert refused.value.diagnostics[0].code is Code.UNSUPPORTED_VERSION
    result = migrate(before, str(path))
    assert result.changed
    projects = _load(path, result.text)
    assert projects == [("api", "API stack", ["db", "web", "script", "worker", "helper"])]
    # Every comment survives (the one of project: moved above projects:), and the
    # shell comment inside the block scalar is still part of the command.
    assert sorted(_comments(result.text)) == sorted(_comments(before))
    assert result.notes == ("moved 1 comment(s) of project: above projects: (line 4)",)
    manifest = load_manifest(path, environ={}, text=result.text.encode()).manifest
    script = manifest.projects[0].service("script")
    assert script is not None
    assert "# not a YAML comment" in script.command
    # The include stays an include, and the version line keeps its comment.
    assert "worker: !include ../good/_files/worker.yaml" in result.text
    assert 'version: "2"  # the old format' in result.text
    # The same data as the version 1 file, with project: folded in.
    old = yaml.compose(before, Loader=yaml.CSafeLoader)
    new = yaml.compose(result.text, Loader=yaml.CSafeLoader)
    assert old is not None
    assert new is not None
    old_services = {k.value: v for k, v in old.value}["services"]
    new_api = {k.value: v for k, v in new.value}["projects"].value[0][1]
    new_services = {k.value: v for k, v in new_api.value}["services"]
    assert _shape(old_services) == _shape(new_services)


def _shape(node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return [(k.value, _shape(v)) for k, v in node.value]
    if isinstance(node, yaml.SequenceNode):
        return [_shape(v) for v in node.value]
    return (node.tag, node.value)


def test_project_id_form_and_unquoted_version() -> None:
    path = DATA / "project-id.yaml"
    result = migrate(path.read_text(), str(path))
    assert result.text == (
        'version: "2"\n'
        "# one project per file in version 1\n"
        "projects:\n"
        "  shop:\n"
        "    services:\n"
        '      web: {command: "sleep 100"}\n'
    )
    assert _load(path, result.text) == [("shop", "shop", ["web"])]


def test_without_project_the_services_stay_loose() -> None:
    path = DATA / "loose.yaml"
    result = migrate(path.read_text(), str(path))
    assert result.text == path.read_text().replace("version: '1'", 'version: "2"')
    [(ident, name, services)] = _load(path, result.text)
    assert (name, services) == ("loose", ["web"])
    assert ident.startswith("loose-")


def test_what_has_no_version_2_form_is_refused_naming_each_field() -> None:
    path = DATA / "refused.yaml"
    with pytest.raises(ManifestError) as exc:
        migrate(path.read_text(), str(path))
    found = [(d.code, d.path, d.line) for d in exc.value.diagnostics]
    assert found == [
        (Code.MIGRATE_UNSUPPORTED, "project.owner", 2),
        (Code.MIGRATE_UNSUPPORTED, "project_dir", 3),
        (Code.MIGRATE_UNSUPPORTED, "status", 4),
        (Code.MIGRATE_UNSUPPORTED, "metrics", 6),
    ]
    assert all(d.hint for d in exc.value.diagnostics)


@pytest.mark.parametrize(
    ("text", "code", "path"),
    [
        ('version: "1"\nproject: a\nprojects: {b: {services: {}}}\n', "SG0222", "project"),
        ('version: "1"\nproject: a\n', "SG0213", "services"),
        ('version: "1"\nproject: {name: A}\nservices: {}\n', "SG0213", "project.id"),
        ('version: "1"\nproject: [a]\nservices: {}\n', "SG0222", "project"),
        ('version: "3"\nservices: {}\n', "SG0214", "version"),
        ("services: {}\n", "SG0213", "version"),
        ('{version: "1", services: {}}\n', "SG0222", ""),
        ("version: [1\n", "SG0211", ""),
    ],
)
def test_refusals(text: str, code: str, path: str) -> None:
    with pytest.raises(ManifestError) as exc:
        migrate(text, "/m.yaml")
    assert (str(exc.value.diagnostics[0].code), exc.value.diagnostics[0].path) == (code, path)


def test_version_2_is_left_alone() -> None:
    text = 'version: "2"\nservices: {web: {command: x}}\n'
    result = migrate(text, "/m.yaml")
    assert (result.text, result.changed) == (text, False)


def test_version_2_in_the_deprecated_project_shape_is_converted(tmp_path: Path) -> None:
    # The upstream's single-project-compat/migrate-command shape, with version "2".
    text = (
        'version: "2"  # kept\n'
        "project:\n"
        "  id: legacy\n"
        '  name: "Legacy Single Project"\n'
        "services:\n"
        "  worker:\n"
        '    command: "sleep 3000"\n'
    )
    result = migrate(text, str(tmp_path / "m.yaml"))
    assert result.changed
    assert result.text == (
        'version: "2"  # kept\n'
        "projects:\n"
        "  legacy:\n"
        '    name: "Legacy Single Project"\n'
        "    services:\n"
        "      worker:\n"
        '        command: "sleep 3000"\n'
    )
    path = tmp_path / "m.yaml"
    path.write_text(result.text)
    loaded = load_manifest(path, environ={})
    assert loaded.warnings == ()
    [project] = loaded.manifest.projects
    assert (project.id, project.name) == ("legacy", "Legacy Single Project")


def test_quoted_names_and_a_comment_in_a_quoted_value() -> None:
    text = (
        'version: "1"\n'
        "project:\n"
        "  id: 'web-1'\n"
        '  name: "A # B"   # display\n'
        "services:\n"
        "  web: {command: sleep 1}\n"
    )
    result = migrate(text, "/srv/m.yaml")
    assert result.text.splitlines()[1:5] == [
        "# display",
        "projects:",
        "  'web-1':",
        '    name: "A # B"',
    ]
    assert _load(Path("/srv/m.yaml"), result.text) == [("web-1", "A # B", ["web"])]
