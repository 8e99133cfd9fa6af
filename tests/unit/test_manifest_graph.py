"""start waves, dependents, stop order and cycle detection (manifest/graph.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from systemg.manifest.graph import find_cycles, start_layers, stop_order, transitive_dependents
from systemg.manifest.model import Project, Service


def project(deps: dict[str, tuple[str, ...]]) -> Project:
    services = tuple(Service(n, ("true",), depends_on=d) for n, d in deps.items())
    return Project("p", "p", services, "/m.yaml")


SHOP = project({"web": ("api",), "api": ("db", "cache"), "db": (), "cache": (), "cron": ("db",)})


def test_start_layers() -> None:
    assert start_layers(SHOP) == (("db", "cache"), ("api", "cron"), ("web",))


def test_transitive_dependents() -> None:
    assert transitive_dependents(SHOP, "db") == {"api", "cron", "web"}
    assert transitive_dependents(SHOP, "web") == frozenset()
    assert transitive_dependents(SHOP, "cache") == {"api", "web"}


def test_stop_order_dependents_first() -> None:
    assert stop_order(SHOP, ["db", "web", "api"]) == ("web", "api", "db")
    assert stop_order(SHOP, ["nope"]) == ()


def test_find_cycles() -> None:
    assert find_cycles({"a": ["b"], "b": ["a"]}) == [("a", "b", "a")]
    assert find_cycles({"a": ["a"]}) == [("a", "a")]
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []


@st.composite
def dags(draw: st.DrawFn) -> dict[str, tuple[str, ...]]:
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"s{i}" for i in range(n)]
    return {
        name: tuple(draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else ())
        for i, name in enumerate(names)
    }


@given(dags())
def test_layers_respect_every_dependency(deps: dict[str, tuple[str, ...]]) -> None:
    p = project(deps)
    wave_of = {n: i for i, wave in enumerate(start_layers(p)) for n in wave}
    assert set(wave_of) == set(deps)
    for name, ds in deps.items():
        assert all(wave_of[d] < wave_of[name] for d in ds)
    order = stop_order(p, deps)
    assert sorted(order) == sorted(deps)
    for name, ds in deps.items():
        assert all(order.index(name) < order.index(d) for d in ds)
    assert find_cycles({k: list(v) for k, v in deps.items()}) == []
