"""Version "1" manifest text, or the deprecated single-project shape of version "2", ->
version "2" ``projects:`` text (``sysg migrate``), pure.

The conversion is an edit of the source text, not a YAML round trip, so comments, key
order, quoting, anchors and block scalars stay exactly as written:

- ``version: "1"`` becomes ``version: "2"`` (a comment on that line stays); a version 2
  file keeps its version line;
- ``project: ID`` or ``project: {id: ID, name: NAME}`` is removed, and the top-level
  ``services:`` block moves under ``projects: {ID: {name: NAME, services: ...}}`` by
  indenting its lines four columns (indenting every line of a block alike keeps its
  meaning, block scalars included). Comments written inside the ``project:`` entry are
  moved above ``projects:``; that is said in ``Migration.notes``;
- a version 1 file without ``project:`` keeps its top-level ``services:``: version 2 calls
  them loose services, and they behave the same;
- ``!include`` tags are kept, not resolved.

What has no version 2 form is refused with ``SG0222`` naming the field (``status``,
``metrics``, ``project_dir``, extra keys of ``project:``); nothing is silently dropped.
Whether the result validates is checked by the caller with the real loader.

Invariant: the output differs from the input only on the version value, the removed
``project:`` lines, the inserted header lines and the four columns added in front of the
``services:`` block's lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from systemg.errors import Code, Diagnostic, ManifestError

# Keys of a version 1 manifest's top level that version 2 has no place for, and why.
NO_V2_FORM = {
    "status": "systemg takes no status snapshot settings; delete the block",
    "metrics": "systemg keeps no metrics history; delete the block",
    "project_dir": "set working_dir on each service instead (relative to the manifest)",
}
INDENT = "    "
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


@dataclass(frozen=True, slots=True)
class Migration:
    text: str
    changed: bool  # False: the input was version 2 already, ``text`` is the input
    notes: tuple[str, ...] = ()


def migrate(text: str, file: str) -> Migration:
    """The version 2 ``projects:`` form of the manifest ``text`` (read from ``file``):
    a version 1 file, or a version 2 file in the deprecated ``project:`` shape (a version 2
    file without ``project:`` is returned unchanged).

    Raises ``ManifestError`` for YAML that does not parse, a version other than 1 or 2,
    and anything with no version 2 form (``SG0222``, with the field path).
    """
    root = _compose(text, file)
    entries = {key.value: (key, value) for key, value in root.value if _is_str(key)}
    version = entries.get("version")
    if version is None:
        raise _error(Code.MISSING_KEY, "version", "the manifest has no version", file, root)
    raw = version[1].value if isinstance(version[1], yaml.ScalarNode) else None
    if raw == "2" and "project" not in entries:
        return Migration(text, changed=False, notes=("already version 2: nothing to change",))
    if raw not in ("1", "2"):
        raise _error(
            Code.UNSUPPORTED_VERSION,
            "version",
            f"sysg migrate converts version 1 manifests; this one says {raw!r}",
            file,
            version[1],
        )
    problems = [
        _diagnostic(
            Code.MIGRATE_UNSUPPORTED, name, f"'{name}' has no version 2 form", file, key, hint=hint
        )
        for name, hint in NO_V2_FORM.items()
        if name in entries
        for key in (entries[name][0],)
    ]
    project = entries.get("project")
    if project is not None and "projects" in entries:
        problems.append(
            _diagnostic(
                Code.MIGRATE_UNSUPPORTED,
                "project",
                "project: and projects: together",
                file,
                project[0],
                hint="keep one: move the services of project: into projects:",
            )
        )
    ident: tuple[str, str | None] | None = None
    if project is not None:
        try:
            ident = _project_ident(project[1], text, file)
        except ManifestError as exc:
            problems.extend(exc.diagnostics)
        if "services" not in entries:
            problems.append(
                _diagnostic(
                    Code.MISSING_KEY,
                    "services",
                    "project: names a project but there is no services: block",
                    file,
                    project[0],
                    hint="add the project's services: block",
                )
            )
    if problems:
        raise ManifestError(*sorted(problems, key=lambda d: (d.line or 0, d.column or 0)))
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    notes: list[str] = []
    # Edits from the bottom of the file up, so earlier line numbers stay valid.
    edits: list[tuple[int, int, list[str]]] = []
    vnode = version[1]
    vline = vnode.start_mark.line
    if raw == "1" and vnode.end_mark.line == vline:
        start, end = vnode.start_mark.column, vnode.end_mark.column
        lines[vline] = lines[vline][:start] + '"2"' + lines[vline][end:]
    if project is not None and ident is not None:
        first, last = project[0].start_mark.line, _last_line(project[1])
        kept = [c for c in (_comment(line) for line in lines[first : last + 1]) if c]
        if kept:
            notes.append(
                f"moved {len(kept)} comment(s) of project: above projects: (line {first + 1})"
            )
        key, value = entries["services"]
        edits.append(_nest(lines, key, value, ident, kept))
        edits.append((first, last + 1, []))
    for first, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[first:end] = replacement
    return Migration("".join(lines), changed=True, notes=tuple(notes))


def _compose(text: str, file: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(
            Diagnostic(Code.INVALID_YAML, f"invalid YAML: {problem}", file=file, line=line)
        ) from None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ManifestError(
            Diagnostic(
                Code.MIGRATE_UNSUPPORTED,
                "the manifest is not a block-style mapping",
                hint="write the top level as `key: value` lines; migrate edits them in place",
                file=file,
            )
        )
    return root


def _project_ident(node: yaml.Node, text: str, file: str) -> tuple[str, str | None]:
    """(id, name) of ``project:``, each as YAML source text for the new header."""
    if isinstance(node, yaml.ScalarNode):
        return _source(node, text), None
    if isinstance(node, yaml.MappingNode):
        fields = {k.value: (k, v) for k, v in node.value if _is_str(k)}
        extra = [(k, name) for name, (k, _) in fields.items() if name not in ("id", "name")]
        if extra:
            raise ManifestError(
                *(
                    _diagnostic(
                        Code.MIGRATE_UNSUPPORTED,
                        f"project.{name}",
                        f"'project.{name}' has no version 2 form",
                        file,
                        k,
                        hint="a version 2 project has a name and services only; delete it",
                    )
                    for k, name in extra
                )
            )
        ident = fields.get("id")
        if ident is None or not isinstance(ident[1], yaml.ScalarNode):
            raise _error(
                Code.MISSING_KEY, "project.id", "project: has no id", file, node, hint="add id: ID"
            )
        name = fields.get("name")
        named = _source(name[1], text) if name and isinstance(name[1], yaml.ScalarNode) else None
        return _source(ident[1], text), named
    raise _error(
        Code.MIGRATE_UNSUPPORTED,
        "project",
        "project: is neither an id nor {id, name}",
        file,
        node,
        hint="write project: ID or project: {id: ID, name: NAME}",
    )


def _nest(
    lines: list[str],
    key: yaml.Node,
    value: yaml.Node,
    ident: tuple[str, str | None],
    comments: list[str],
) -> tuple[int, int, list[str]]:
    """The edit that puts ``services:`` (key line to its last line) under ``projects:``."""
    first, last = key.start_mark.line, max(_last_line(value), key.start_mark.line)
    col = key.start_mark.column
    pad = lines[first][:col]
    head = [f"{pad}# {c}\n" for c in comments]
    head.append(f"{pad}projects:\n")
    head.append(f"{pad}  {ident[0]}:\n")
    if ident[1] is not None:
        head.append(f"{pad}    name: {ident[1]}\n")
    head.append(f"{pad}{INDENT}{lines[first][col:]}")
    # Comment and blank lines after the block's last entry most likely belong to what
    # follows it: they keep their place and column.
    while last > first and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
        last -= 1
    body = [INDENT + line if line.strip() else line for line in lines[first + 1 : last + 1]]
    return first, last + 1, head + body


def _last_line(node: yaml.Node) -> int:
    """The last line (0-based) holding text of ``node``: a block collection ends at the
    start of whatever follows it, column 0 of the next line."""
    end = node.end_mark
    if end.column == 0 and end.line > node.start_mark.line:
        return int(end.line) - 1
    return int(end.line)


def _source(node: yaml.ScalarNode, text: str) -> str:
    """The scalar as YAML text for a new line: its own source when it is one line."""
    raw = text[node.start_mark.index : node.end_mark.index]
    if node.style in ("'", '"') and "\n" not in raw:
        return raw
    value = str(node.value)
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _comment(line: str) -> str:
    """The text of a ``# comment`` on ``line`` (outside quotes), or ``""``."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[i + 1 :].strip()
    return ""


def _is_str(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and isinstance(node.value, str)


def _diagnostic(
    code: Code, path: str, message: str, file: str, node: yaml.Node, *, hint: str = ""
) -> Diagnostic:
    mark = node.start_mark
    return Diagnostic(
        code, message, path=path, hint=hint, file=file, line=mark.line + 1, column=mark.column + 1
    )


def _error(
    code: Code, path: str, message: str, file: str, node: yaml.Node, *, hint: str = ""
) -> ManifestError:
    return ManifestError(_diagnostic(code, path, message, file, node, hint=hint))
