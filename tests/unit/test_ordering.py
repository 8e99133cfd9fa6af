"""Pure ordering decisions: dependency closure, reconcile diffs, selector resolution."""

from __future__ import annotations

from dataclasses import replace

import pytest

from systemg.daemon.ordering import (
    closure_with_dependencies,
    reconcile,
    select,
    split_selector,
    with_dependents,
)
from systemg.errors import Code, SysgError
from systemg.manifest.model import Project, Service


def service(name: str, *deps: str, command: str = "sleep 1000") -> Service:
    return Service(name=name, argv=("/bin/sh", "-c", command), command=command, depends_on=deps)


def project(pid: str, *services: Service) -> Project:
    return Project(id=pid, name=pid, services=services, manifest_path=f"/m/{pid}.yaml")


DIAMOND = project("app", service("a"), service("b", "a"), service("c", "a"), service("d", "b", "c"))


def test_closure_pulls_in_dependencies() -> None:
    assert closure_with_dependencies(DIAMOND, ["d"]) == {"a", "b", "c", "d"}
    assert closure_with_dependencies(DIAMOND, ["b"]) == {"a", "b"}
    assert closure_with_dependencies(DIAMOND, ["a"]) == {"a"}
    assert closure_with_dependencies(DIAMOND, ["nope"]) == frozenset()


def test_dependents_are_transitive() -> None:
    assert with_dependents(DIAMOND, ["a"]) == {"a", "b", "c", "d"}
    assert with_dependents(DIAMOND, ["b"]) == {"b", "d"}
    assert with_dependents(DIAMOND, ["d"]) == {"d"}


def test_reconcile_diff() -> None:
    old = project("p", service("keep"), service("gone"), service("edit", command="sleep 1"))
    new = project("p", service("keep"), service("edit", command="sleep 2"), service("fresh"))
    diff = reconcile(old, new)
    assert diff.added == {"fresh"}
    assert diff.removed == {"gone"}
    assert diff.changed == {"edit"}
    assert diff.unchanged == {"keep"}


def test_reconcile_sees_a_changed_dependency_list() -> None:
    old = project("p", service("a"), service("b"))
    new = project("p", service("a"), service("b", "a"))
    assert reconcile(old, new).changed == {"b"}


def test_reconcile_identical_is_all_unchanged() -> None:
    diff = reconcile(DIAMOND, replace(DIAMOND))
    assert diff.added == diff.removed == diff.changed == frozenset()
    assert diff.unchanged == {"a", "b", "c", "d"}


PROJECTS = {
    "api": project("api", service("web"), service("db")),
    "shop": project("shop", service("web"), service("cart")),
}


def test_select_everything() -> None:
    sel = select(PROJECTS, None, None)
    assert sel.targets == (("api", frozenset()), ("shop", frozenset()))


def test_select_unique_bare_name() -> None:
    assert select(PROJECTS, None, "cart").targets == (("shop", frozenset({"cart"})),)


def test_select_project_slash_service() -> None:
    assert select(PROJECTS, None, "api/web").targets == (("api", frozenset({"web"})),)
    assert select(PROJECTS, "shop", "web").targets == (("shop", frozenset({"web"})),)


def test_ambiguous_bare_name_is_sg0006_listing_matches() -> None:
    with pytest.raises(SysgError) as info:
        select(PROJECTS, None, "web")
    diag = info.value.diagnostics[0]
    assert diag.code is Code.AMBIGUOUS_SERVICE
    assert "'api'" in diag.message
    assert "'shop'" in diag.message
    assert "api/web" in diag.hint
    assert "shop/web" in diag.hint


def test_unknown_service_is_sg0202_with_did_you_mean() -> None:
    with pytest.raises(SysgError) as info:
        select(PROJECTS, None, "crat")
    diag = info.value.diagnostics[0]
    assert diag.code is Code.NOT_FOUND
    assert "crat" in diag.message
    assert "did you mean 'cart'" in diag.hint


def test_unknown_project_is_sg0202() -> None:
    with pytest.raises(SysgError) as info:
        select(PROJECTS, "shpo", None)
    assert info.value.diagnostics[0].code is Code.NOT_FOUND
    assert "did you mean 'shop'" in info.value.diagnostics[0].hint


def test_unknown_with_no_projects_says_how_to_start() -> None:
    with pytest.raises(SysgError) as info:
        select({}, None, "web")
    assert info.value.diagnostics[0].code is Code.NOT_FOUND


def test_within_limits_the_search() -> None:
    assert select(PROJECTS, None, "web", within=["api"]).targets == (("api", frozenset({"web"})),)


def test_prefix_disagreeing_with_project() -> None:
    with pytest.raises(SysgError) as info:
        split_selector("api", "shop/web")
    assert info.value.diagnostics[0].code is Code.SELECTOR_MISMATCH
    assert split_selector(None, "shop/web") == ("shop", "web")
