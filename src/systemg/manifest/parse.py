"""The located tree of a whole manifest -> ``model.Manifest``: version, projects, loose services,
project ids and service names, and the ``depends_on`` graph checks.

Three shapes declare services: ``projects: {ID: {name?, services}}``; top-level ``services:``
alone (a loose bundle, its id derived from the file's path); and the deprecated single-project
shape ``project: ID`` (or ``project: {id, name?}``) with top-level ``services:``, which are that
project's services. The last is accepted with one ``SG0223`` warning naming the file and
``sysg migrate``; ``project:`` beside ``projects:`` is an error naming both.

Pure given the ``read`` callback (used for env files). Every problem is recorded in the
``Checker``; ``build`` returns None when there was any, so a ``Manifest`` only exists if the
whole file is valid.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import PurePath

from systemg.errors import Code
from systemg.manifest.check import Checker, child
from systemg.manifest.graph import find_cycles
from systemg.manifest.model import Manifest, Project, Service
from systemg.manifest.readiness import Dependencies
from systemg.manifest.service import Context, EnvDraft, LogDraft
from systemg.manifest.tree import Key, Map, Node, Reader, Scalar
from systemg.manifest.values import GrammarError, check_name, slug, suggestion

TOP_KEYS = ("version", "project", "projects", "services", "env", "logs")
PROJECT_KEYS = ("name", "services", "env", "logs")
LEGACY_PROJECT_KEYS = ("id", "name")
SUPPORTED_VERSION = "2"
# Top-level keys starting with this are ignored: a home for YAML anchors (`x-defaults: &d`).
EXTENSION_PREFIX = "x-"


def loose_project_id(manifest_path: str) -> str:
    """``<file-stem-slug>-<16 hex of sha256(absolute path)>``: unique per manifest file."""
    absolute = os.path.abspath(manifest_path)
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    return f"{slug(PurePath(absolute).stem)}-{digest}"


def build(root: Node, *, path: str, ck: Checker, read: Reader) -> Manifest | None:
    """Parse the tree of the manifest at ``path`` (absolute); None if any problem was found."""
    manifest_dir = os.path.dirname(path)
    ctx = Context(ck, manifest_dir, read)
    if isinstance(root, Scalar) and root.value is None:
        ck.error(
            Code.MISSING_KEY,
            "version",
            "the manifest is empty",
            root,
            'start with version: "2" and a services: or projects: block',
        )
        return None
    m = ck.mapping(root, "")
    if m is None:
        return None
    m = Map(tuple(e for e in m.entries if not e[0].name.startswith(EXTENSION_PREFIX)), m.loc)
    f = ck.fields(m, "", TOP_KEYS)
    if not _version_ok(ck, f, m):
        return None
    env = ctx.env(f["env"][1], "env") if "env" in f else EnvDraft()
    logs = ctx.logs(f["logs"][1], "logs") if "logs" in f else LogDraft()
    legacy = _legacy_project(ck, f, path) if "project" in f else None
    projects: list[Project] = []
    if "projects" in f:
        pm = ck.mapping(f["projects"][1], "projects")
        for key, node in pm.entries if pm else ():
            project = _project(ctx, key, node, env=env, logs=logs, path=path)
            if project is not None:
                projects.append(project)
    if "services" in f:
        stem = PurePath(path).stem
        loose = _services(ctx, f["services"][1], "services", env, logs)
        if loose is not None and legacy is not None:
            projects.append(Project(legacy[0], legacy[1], loose, path, legacy=True))
        elif loose is not None:
            projects.append(Project(loose_project_id(path), stem, loose, path, loose=True))
    elif "project" in f and "projects" not in f:
        ck.error(
            Code.MISSING_KEY,
            "services",
            "project: names a project but there is no top-level services: block",
            f["project"][0],
            "add the project's services: block at the top level (or use projects:)",
        )
    if "project" not in f and "projects" not in f and "services" not in f:
        ck.error(
            Code.MISSING_KEY,
            "services",
            "the manifest defines no services",
            m,
            "add a services: block (or projects: with services inside)",
        )
    if ck.errors:
        return None
    return Manifest(path, tuple(projects))


def _legacy_project(
    ck: Checker, f: dict[str, tuple[Key, Node]], path: str
) -> tuple[str, str] | None:
    """(id, name) of the deprecated ``project:`` entry, with its warning; None on problems
    (recorded), or when ``projects:`` is there too (an error: the services would belong to
    two places)."""
    key, node = f["project"]
    if "projects" in f:
        ck.error(
            Code.INVALID_VALUE,
            "project",
            "cannot be combined with projects: (a manifest declares its projects one way)",
            key,
            "move the top-level services: of project: into an entry of projects: "
            "(`sysg migrate FILE` converts a file that has only project:)",
        )
        return None
    ident: str | None
    name: str | None = None
    if isinstance(node, Map):
        pf = ck.fields(node, "project", LEGACY_PROJECT_KEYS)
        if "id" not in pf:
            ck.error(
                Code.MISSING_KEY,
                "project.id",
                "project: has no id",
                node,
                "write project: {id: ID, name: NAME} or project: ID",
            )
            return None
        ident = ck.string(pf["id"][1], "project.id", what="a project id")
        if "name" in pf:
            name = ck.string(pf["name"][1], "project.name", what="a display name")
        at: Key | Node = pf["id"][1]
        id_path = "project.id"
    else:
        ident = ck.string(node, "project", what="a project id or {id, name}")
        at, id_path = node, "project"
    if ident is None:
        return None
    try:
        check_name(ident, "project id")
    except GrammarError as problem:
        ck.error(Code.INVALID_NAME, id_path, problem.message, at, problem.hint)
        return None
    quoted = shlex.quote(path)
    ck.warn(
        Code.DEPRECATED_SHAPE,
        "project",
        f"deprecated single-project shape in {path} (project '{ident}' declared with "
        "project: and top-level services:); it still works",
        key,
        f"convert it to projects: with `sysg migrate {quoted} --in-place` "
        f"(`sysg migrate {quoted}` prints the result without writing)",
    )
    return ident, name or ident


def _version_ok(ck: Checker, f: dict[str, tuple[Key, Node]], m: Map) -> bool:
    if "version" not in f:
        ck.error(
            Code.MISSING_KEY,
            "version",
            "the manifest has no version",
            m,
            'add version: "2" as the first line',
        )
        return True  # the rest can still be checked against version 2
    node = f["version"][1]
    raw = node.raw.strip() if isinstance(node, Scalar) else ""
    if raw == SUPPORTED_VERSION:
        return True
    if raw == "1":
        ck.error(
            Code.UNSUPPORTED_VERSION,
            "version",
            "version 1 manifests are no longer supported",
            node,
            "convert it with `sysg migrate FILE` (prints the version 2 form) or "
            "`sysg migrate FILE --in-place` (rewrites it, keeping FILE.bak); "
            "docs/manifest.md shows both shapes",
        )
    else:
        ck.error(
            Code.UNSUPPORTED_VERSION,
            "version",
            f"unsupported version '{raw}'",
            node,
            'this systemg reads version: "2"',
        )
    return False


def _project(
    ctx: Context, key: Key, node: Node, *, env: EnvDraft, logs: LogDraft, path: str
) -> Project | None:
    ck = ctx.ck
    ppath = child("projects", key.name)
    try:
        check_name(key.name, "project id")
    except GrammarError as problem:
        ck.error(Code.INVALID_NAME, ppath, problem.message, key, problem.hint)
    pm = ck.mapping(node, ppath)
    if pm is None:
        return None
    f = ck.fields(pm, ppath, PROJECT_KEYS)
    name = key.name
    if "name" in f:
        name = ck.string(f["name"][1], child(ppath, "name"), what="a display name") or key.name
    if "env" in f:
        env = env.under(ctx.env(f["env"][1], child(ppath, "env")))
    if "logs" in f:
        logs = logs.under(ctx.logs(f["logs"][1], child(ppath, "logs")))
    if "services" not in f:
        ck.error(
            Code.MISSING_KEY,
            child(ppath, "services"),
            "the project has no services",
            key,
            "add a services: block inside the project",
        )
        return None
    services = _services(ctx, f["services"][1], child(ppath, "services"), env, logs)
    if services is None:
        return None
    return Project(key.name, name, services, path)


def _services(
    ctx: Context, node: Node, path: str, env: EnvDraft, logs: LogDraft
) -> tuple[Service, ...] | None:
    ck = ctx.ck
    m = ck.mapping(node, path)
    if m is None:
        return None
    before = len(ck.errors)
    names = [k.name for k, _ in m.entries]
    services: list[Service] = []
    deps: dict[str, tuple[str, ...]] = {}
    located: dict[str, Dependencies] = {}
    for key, value in m.entries:
        spath = child(path, key.name)
        try:
            check_name(key.name, "service name")
        except GrammarError as problem:
            ck.error(Code.INVALID_NAME, spath, problem.message, key, problem.hint)
        service, found = ctx.service(key.name, value, spath, env, logs)
        located[key.name] = found
        deps[key.name] = found.names
        if service is not None:
            services.append(service)
    for name in names:
        dpath = child(child(path, name), "depends_on")
        for dep in deps[name]:
            if dep not in deps:
                others = [n for n in names if n != name]
                ck.error(
                    Code.UNKNOWN_DEPENDENCY,
                    f"{dpath}[{located[name].index[dep]}]",
                    f"'{dep}' is not a service of this project{suggestion(dep, others)}",
                    located[name].at[dep],
                    f"services here: {', '.join(others) or '(none)'}",
                )
    jobs = {s.name for s in services if s.cron is not None}
    for name in names:
        dpath = child(child(path, name), "depends_on")
        for dep in deps[name]:
            if dep in jobs:
                ck.error(
                    Code.INVALID_VALUE,
                    f"{dpath}[{located[name].index[dep]}]",
                    f"'{dep}' is a cron job: nothing can depend on it (it runs on its "
                    "schedule, not when the project starts)",
                    located[name].at[dep],
                    f"remove '{dep}' from depends_on, or drop its cron: to make it a service",
                )
    for cycle in find_cycles(deps):
        ck.error(
            Code.DEPENDENCY_CYCLE,
            child(child(path, cycle[0]), "depends_on"),
            f"dependency cycle: {' -> '.join(cycle)}",
            located[cycle[0]].at[cycle[1]],  # the entry that closes the cycle
            "remove one depends_on entry of this cycle",
        )
    if len(ck.errors) != before:
        return None
    return tuple(services)
