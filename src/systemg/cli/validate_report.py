"""``sysg validate``'s report: every diagnostic classified into a *kind*, the JSON document,
and the mode check that decides whether this manifest is *startable*.

The JSON is the upstream's shape, field for field, with our extras beside it::

    {"config": PATH, "valid": bool, "startable": bool,
     "diagnostics": [{"severity", "line", "column", "kind", "message", "why", "suggestion",
                      "doc", "code", "path", "file"}]}

``kind`` is the upstream's vocabulary (``unknown-field``, ``missing-version``, ...) mapped from
our code and field path; a few problems the upstream has no kind for get their own
(``missing-field``, ``invalid-env-file``, ``deprecated-project-shape``, ``lsm-unavailable``,
``invalid-config`` for anything else). ``suggestion`` is the diagnostic's own hint (the
kind's generic fix when it has none); ``why`` and ``doc`` come from the kind, ``doc`` being a
section of this repository's documentation.

*valid*: the loader accepted the file. *startable*: valid, and nothing the mode check found
is an error. The mode check is what ``sysg start`` would refuse although the file is
well-formed: a service that switches user or group under a supervisor that is not root
(``requires-system-mode``, SG0705). With root (``--sys``, or euid 0) it warns instead about
accounts this host does not have (``unknown-user``/``unknown-group``: the target host may
differ). Pure: account lookups are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from systemg.errors import Code, Diagnostic
from systemg.manifest.model import Manifest, Project

MANIFEST_DOC = "docs/manifest.md"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    why: str
    suggestion: str  # when the diagnostic has no hint of its own
    doc: str


def _kinds(*kinds: Kind) -> dict[str, Kind]:
    return {k.name: k for k in kinds}


KINDS = _kinds(
    Kind(
        "missing-version",
        "Every manifest declares the schema version it is written for.",
        'Add version: "2" as the first line.',
        f"{MANIFEST_DOC}#top-level",
    ),
    Kind(
        "unsupported-version",
        "The declared version is not one this systemg reads.",
        'Set version: "2"; a version 1 file converts with `sysg migrate FILE`.',
        f"{MANIFEST_DOC}#version-1-manifests",
    ),
    Kind(
        "invalid-yaml",
        "The file is not YAML systemg can read, so nothing in it could be checked.",
        "Check the indentation and quoting at the line shown.",
        f"{MANIFEST_DOC}#codes",
    ),
    Kind(
        "unknown-field",
        "systemg accepts only the documented keys, at any depth; anything else is a typo or "
        "a key from another schema, and ignoring it would silently drop what it meant.",
        "Delete the key or write its documented spelling; service hooks, for example, are "
        "hooks: with onstart: and onerr: beneath it.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "missing-command",
        "A service (or hook) needs a command telling systemg what to run.",
        'Add command: "./run.sh" (run by /bin/sh -c) or exec: [prog, arg].',
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "missing-services",
        "A manifest or project with no services has nothing to supervise.",
        "Add a services: block with at least one named service.",
        f"{MANIFEST_DOC}#top-level",
    ),
    Kind(
        "missing-field",
        "A key this block requires is missing.",
        "Add the key the message names.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "invalid-health-check",
        "A health check must probe something: an HTTP url, a TCP address or a command.",
        "Give the health check a url:, tcp: or command: (plus optional interval, "
        "attempt_timeout, retries).",
        f"{MANIFEST_DOC}#readiness-notify-deploymenthealth_check",
    ),
    Kind(
        "unknown-dependency",
        "A depends_on entry names no service of this project.",
        "Fix the spelling, or add the missing service so the dependency resolves.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "dependency-cycle",
        "Services depend on each other in a loop, so no start order exists.",
        "Remove one depends_on entry of the loop.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "missing-env-var",
        "The manifest uses a ${VAR} that is set neither in the environment nor in an env file.",
        "Export the variable, add it to the env file, or write ${VAR:-default}.",
        f"{MANIFEST_DOC}#grammars",
    ),
    Kind(
        "invalid-env-file",
        "An env file is missing, unreadable, or has a line that is not KEY=VALUE.",
        "Fix the path (relative to the manifest) or the line shown.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "invalid-field-value",
        "A field holds a value systemg cannot interpret (or the kernel could not take), so "
        "start would refuse the manifest.",
        "Fix the value named above; durations are a whole number with a unit: 500ms, 30s, 5m, 1h.",
        f"{MANIFEST_DOC}#grammars",
    ),
    Kind(
        "invalid-project-id",
        "A project id names the directory that holds the project's state and logs.",
        "Use a non-empty id of ASCII letters, digits, '_', '-' or '.' (not . or ..).",
        f"{MANIFEST_DOC}#top-level",
    ),
    Kind(
        "unreadable-config",
        "systemg could not read the file (or, for a root supervisor, will not trust it), so "
        "there is nothing to validate.",
        "Check the path and permissions, or pass the manifest with -c FILE.",
        f"{MANIFEST_DOC}#limits-and-trust",
    ),
    Kind(
        "unresolved-include",
        "An !include could not be assembled: a missing file, a cycle, or past the limits.",
        "Fix the included file or its path (relative to the including file).",
        f"{MANIFEST_DOC}#limits-and-trust",
    ),
    Kind(
        "requires-system-mode",
        "These keys need a root supervisor: one that is not root cannot switch users or groups.",
        "Check against the system supervisor with `sudo sysg --sys validate` and start it with "
        "`sudo sysg --sys start`, or remove those keys.",
        "docs/security.md#1-modes",
    ),
    Kind(
        "unknown-user",
        "Validation ran on this host, which has no such user; if it is also where the "
        "manifest runs, start will fail to resolve it.",
        "Create the user on the target host, or fix the name.",
        "docs/security.md#1-modes",
    ),
    Kind(
        "unknown-group",
        "Validation ran on this host, which has no such group; if it is also where the "
        "manifest runs, start will fail to resolve it.",
        "Create the group on the target host, or fix the name.",
        "docs/security.md#1-modes",
    ),
    Kind(
        "lsm-unavailable",
        "The AppArmor or SELinux label cannot be applied on this host, so start would refuse "
        "the service here (the host it runs on may differ).",
        "Run it where that LSM is active, or write the label as -NAME to start without it.",
        f"{MANIFEST_DOC}#service-keys",
    ),
    Kind(
        "deprecated-project-shape",
        "project: with top-level services: is the old single-project shape; projects: "
        "replaced it. It still works.",
        "Convert the file with `sysg migrate FILE --in-place`.",
        f"{MANIFEST_DOC}#version-1-manifests",
    ),
    Kind(
        "invalid-config",
        "The manifest failed a check that has no more specific kind.",
        "Read the message and the hint, then the documentation of the field.",
        f"{MANIFEST_DOC}#codes",
    ),
)

_BY_CODE = {
    Code.UNSUPPORTED_VERSION: "unsupported-version",
    Code.INVALID_YAML: "invalid-yaml",
    Code.NOT_UTF8: "invalid-yaml",
    Code.UNKNOWN_KEY: "unknown-field",
    Code.UNKNOWN_DEPENDENCY: "unknown-dependency",
    Code.DEPENDENCY_CYCLE: "dependency-cycle",
    Code.MISSING_ENV_VAR: "missing-env-var",
    Code.ENV_FILE: "invalid-env-file",
    Code.INVALID_VALUE: "invalid-field-value",
    Code.INCLUDE_MISSING: "unresolved-include",
    Code.INCLUDE_CYCLE: "unresolved-include",
    Code.INCLUDE_LIMIT: "unresolved-include",
    Code.CONFIG_UNREADABLE: "unreadable-config",
    Code.UNTRUSTED_CONFIG: "unreadable-config",
    Code.FILE_TOO_LARGE: "unreadable-config",
    Code.PERMISSION_DENIED: "unreadable-config",
    Code.REQUIRES_ROOT: "requires-system-mode",
    Code.LSM: "lsm-unavailable",
    Code.DEPRECATED_SHAPE: "deprecated-project-shape",
}
_PROBES = ("health_check", "liveness")


def _segments(path: str) -> list[str]:
    """``services.web.depends_on[0]`` -> ``["services", "web", "depends_on"]``."""
    return [s.split("[", 1)[0] for s in path.split(".")] if path else []


def classify(d: Diagnostic) -> Kind:
    """The kind of ``d``, from its code and, where one code covers several kinds, its path."""
    return KINDS[_kind_name(d)]


def _kind_name(d: Diagnostic) -> str:
    seg = _segments(d.path)
    last = seg[-1] if seg else ""
    if d.code is Code.MISSING_KEY:
        if d.path == "version":
            return "missing-version"
        if last == "services":
            return "missing-services"
        if last in ("command", "exec") or (len(seg) >= 2 and seg[-2] == "services"):
            return "missing-command"  # a service's is reported at the service itself
        if last in _PROBES:
            return "invalid-health-check"
        if seg[:1] == ["project"]:
            return "invalid-project-id"
        return "missing-field"
    if d.code is Code.INVALID_NAME:
        is_project = seg[:1] == ["project"] or (len(seg) == 2 and seg[0] == "projects")
        return "invalid-project-id" if is_project else "invalid-field-value"
    if d.code is Code.INVALID_VALUE and d.severity == "warning" and last in ("user", "group"):
        return f"unknown-{last}"  # mode_findings: an account this host does not have
    if d.code is Code.INVALID_VALUE and not d.path and d.message.startswith("!include"):
        return "unresolved-include"
    return _BY_CODE.get(d.code, "invalid-config")


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    kind = classify(d)
    return {
        "severity": d.severity,
        "line": d.line,
        "column": d.column,
        "kind": kind.name,
        "message": d.message,
        "why": kind.why,
        "suggestion": d.hint or kind.suggestion,
        "doc": kind.doc,
        "code": str(d.code),
        "path": d.path,
        "file": d.file or None,
    }


def report_json(
    config: str, diagnostics: Iterable[Diagnostic], *, valid: bool, startable: bool
) -> dict[str, Any]:
    return {
        "config": config,
        "valid": valid,
        "startable": valid and startable,
        "diagnostics": [diagnostic_json(d) for d in diagnostics],
    }


def _service_path(project: Project, name: str) -> str:
    """Where the service is written: loose and ``project:`` services at the top level."""
    if project.loose or project.legacy:
        return f"services.{name}"
    return f"projects.{project.id}.services.{name}"


def mode_findings(
    manifest: Manifest,
    *,
    root: bool,
    user_exists: Callable[[str], bool],
    group_exists: Callable[[str], bool],
) -> tuple[Diagnostic, ...]:
    """What ``sysg start`` would refuse (errors) or may fail on (warnings) in this mode,
    although the manifest is well-formed. ``root``: the supervisor that would run it is root
    (``--sys``, or a user-mode supervisor started as root)."""
    found: list[Diagnostic] = []
    for project in manifest.projects:
        for service in project.services:
            where = _service_path(project, service.name)
            keys = [
                key
                for key, asked in (
                    ("user", service.user),
                    ("group", service.group),
                    ("supplementary_groups", service.supplementary_groups),
                )
                if asked
            ]
            if not keys:
                continue
            if not root:
                found.append(
                    Diagnostic(
                        Code.REQUIRES_ROOT,
                        f"{where}: declares {', '.join(keys)}: root-only, not startable by a "
                        "supervisor that is not root",
                        path=f"{where}.{keys[0]}",
                        hint="validate against the system supervisor with `sudo sysg --sys "
                        "validate`, start it with `sudo sysg --sys start`, or remove "
                        f"{' and '.join(keys)}",
                        file=manifest.path,
                    )
                )
                continue
            accounts = [("user", service.user, user_exists), ("group", service.group, group_exists)]
            for what, name, exists in accounts:
                if name and not name.isdigit() and not exists(name):
                    found.append(
                        Diagnostic(
                            Code.INVALID_VALUE,  # what start says, as an error, on this host
                            f"{where}.{what}: {what} '{name}' does not exist on this host",
                            path=f"{where}.{what}",
                            hint=f"create the {what} where the manifest runs, or fix the name",
                            file=manifest.path,
                            severity="warning",
                        )
                    )
    return tuple(found)
