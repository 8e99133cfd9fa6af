"""Pure decisions about which services to touch, in which order.

- ``closure_with_dependencies``: what must run for a selection to run.
- ``reconcile``: old project vs new project → added, removed, changed, unchanged.
- ``select``: resolve ``-p``/``-s`` (and ``project/service``) against registered projects,
  with the errors a person needs (unknown name with suggestions, ambiguous bare name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from systemg.errors import Code, Diagnostic, SysgError
from systemg.manifest.graph import direct_dependents
from systemg.manifest.model import Project, Service


def closure_with_dependencies(project: Project, names: Iterable[str]) -> frozenset[str]:
    by_name = {s.name: s for s in project.services}
    todo = list(names)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(by_name[name].depends_on)
    return frozenset(seen)


def with_dependents(project: Project, names: Iterable[str]) -> frozenset[str]:
    """``names`` and everything that depends on them: one walk of the reverse graph."""
    dependents = direct_dependents(project)
    out = set(names)
    stack = list(out)
    while stack:
        for dependent in dependents.get(stack.pop(), ()):
            if dependent not in out:
                out.add(dependent)
                stack.append(dependent)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Diff:
    added: frozenset[str]
    removed: frozenset[str]
    changed: frozenset[str]
    unchanged: frozenset[str]


def definition_id(service: Service) -> str:
    """A stable fingerprint of a service's whole definition (equal services, equal ids).

    Persisted with each live process, so a supervisor that re-adopts a process after a
    crash knows which definition it runs — even when the manifest changed meanwhile (a
    ``restart`` cut short by ``kill -9``) — and the next reconcile restarts it."""
    return hashlib.sha256(repr(service).encode()).hexdigest()[:32]


def reconcile(old: Project, new: Project) -> Diff:
    old_by = {s.name: s for s in old.services}
    new_by = {s.name: s for s in new.services}
    added = frozenset(new_by.keys() - old_by.keys())
    removed = frozenset(old_by.keys() - new_by.keys())
    common = old_by.keys() & new_by.keys()
    changed = frozenset(n for n in common if old_by[n] != new_by[n])
    return Diff(added, removed, changed, frozenset(common - changed))


@dataclass(frozen=True, slots=True)
class Selection:
    """(project id, service names) pairs; an empty name set means the whole project."""

    targets: tuple[tuple[str, frozenset[str]], ...]


def split_selector(project: str | None, service: str | None) -> tuple[str | None, str | None]:
    if service and "/" in service:
        prefix, _, name = service.partition("/")
        if project and project != prefix:
            raise SysgError.of(
                Code.SELECTOR_MISMATCH,
                f"-p {project!r} disagrees with -s {service!r}",
                hint=f"use -s {name} -p {prefix}, or only -s {service}",
            )
        return prefix, name
    return project, service


def select(
    projects: Mapping[str, Project],
    project: str | None,
    service: str | None,
    *,
    within: Iterable[str] | None = None,
) -> Selection:
    """Resolve a selector. ``within`` limits the search to some projects (``-c FILE``)."""
    project, service = split_selector(project, service)
    pool = {pid: p for pid, p in projects.items() if within is None or pid in set(within)}
    if project is not None:
        if project not in pool:
            raise _not_found("project", project, pool.keys())
        pool = {project: pool[project]}
    if service is None:
        return Selection(tuple((pid, frozenset()) for pid in sorted(pool)))
    matches = [pid for pid, p in sorted(pool.items()) if p.service(service) is not None]
    if not matches:
        names = {s.name for p in pool.values() for s in p.services}
        raise _not_found("service", service, names)
    if len(matches) > 1:
        raise SysgError(
            Diagnostic(
                Code.AMBIGUOUS_SERVICE,
                f"service name {service!r} is ambiguous: it exists in projects "
                + ", ".join(repr(m) for m in matches),
                hint="name one: " + ", ".join(f"-s {m}/{service}" for m in matches),
            )
        )
    return Selection(((matches[0], frozenset({service})),))


def _not_found(kind: str, name: str, known: Iterable[str]) -> SysgError:
    import difflib  # performance: only on this path, not at import

    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif known:
        hint = f"known {kind}s: {', '.join(known)}"
    else:
        hint = "no projects are registered; start one with `sysg start -c FILE`"
    return SysgError.of(Code.NOT_FOUND, f"no {kind} named {name!r}", hint=hint)
