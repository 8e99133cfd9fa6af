"""The ``depends_on`` graph of one project: start waves, dependents, stop order, cycles.

Pure functions. Ties are broken by manifest order, so every result is deterministic. The
functions on ``Project`` assume a validated project (known dependencies, no cycle); ``find_cycles``
is what validation uses to guarantee that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from systemg.manifest.model import Project


def _deps(project: Project) -> dict[str, tuple[str, ...]]:
    known = {s.name for s in project.services}
    return {s.name: tuple(d for d in s.depends_on if d in known) for s in project.services}


def start_layers(project: Project) -> tuple[tuple[str, ...], ...]:
    """Waves of service names: every dependency of a wave's service is in an earlier wave."""
    deps = _deps(project)
    done: set[str] = set()
    layers: list[tuple[str, ...]] = []
    remaining = [s.name for s in project.services]
    while remaining:
        wave = tuple(n for n in remaining if all(d in done for d in deps[n]))
        if not wave:  # a cycle: validation refuses these; never loop forever
            raise ValueError(f"dependency cycle among {', '.join(remaining)}")
        layers.append(wave)
        done.update(wave)
        remaining = [n for n in remaining if n not in done]
    return tuple(layers)


_REVERSE: dict[int, tuple[Project, dict[str, tuple[str, ...]]]] = {}
_REVERSE_MAX = 64  # projects whose reverse graph is kept (a supervisor runs a few)


def direct_dependents(project: Project) -> Mapping[str, tuple[str, ...]]:
    """name → the services whose ``depends_on`` names it, in manifest order.

    Built once per ``Project`` object (frozen, so it cannot go stale) and reused: the
    supervisor asks on every phase change, and rebuilding it each time made a start of N
    services cost N² (issue 14)."""
    cached = _REVERSE.get(id(project))
    if cached is not None and cached[0] is project:
        return cached[1]
    dependents: dict[str, list[str]] = {s.name: [] for s in project.services}
    for svc, ds in _deps(project).items():
        for d in ds:
            dependents[d].append(svc)
    out = {name: tuple(names) for name, names in dependents.items()}
    if len(_REVERSE) >= _REVERSE_MAX:
        _REVERSE.clear()
    _REVERSE[id(project)] = (project, out)  # holds the project: its id is not reused
    return out


def transitive_dependents(project: Project, name: str) -> frozenset[str]:
    """Every service that depends on ``name``, directly or through others (not ``name``)."""
    dependents = direct_dependents(project)
    seen: set[str] = set()
    stack = list(dependents.get(name, ()))
    while stack:
        current = stack.pop()
        if current in seen or current == name:
            continue
        seen.add(current)
        stack.extend(dependents[current])
    return frozenset(seen)


def stop_order(project: Project, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in reverse dependency order: dependents before what they depend on.

    Names not in the project are dropped.
    """
    wanted = set(names)
    order = [n for layer in reversed(start_layers(project)) for n in layer]
    return tuple(n for n in order if n in wanted)


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """Each elementary cycle found by a DFS, as ``(a, b, a)``; one per strongly-connected knot.

    ``deps`` maps a name to its dependencies; names without an entry are ignored.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    cycles: list[tuple[str, ...]] = []
    for start in deps:
        if color[start] != white:
            continue
        # Iterative DFS so a long dependency chain cannot hit the recursion limit.
        path: list[str] = [start]
        iters = [iter(deps[start])]
        color[start] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iters.pop()
                continue
            if nxt not in color:
                continue
            if color[nxt] == grey:
                cycles.append((*path[path.index(nxt) :], nxt))
            elif color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iters.append(iter(deps[nxt]))
    return cycles
