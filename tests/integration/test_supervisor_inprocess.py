"""The supervisor in this process, on its real loop, with a launcher that breaks.

Validation refuses what the kernel cannot take (NUL bytes, ...), so a manifest can no
longer carry one to ``posix_spawn``. These tests put the fault where validation cannot
reach — the launcher itself raises — and check what the issue asks: the unit fails with a
code instead of staying ``starting``, the start request is answered, its dependents settle
as ``blocked``, and the shutdown finishes. Real loop, real processes for the units that do
launch, real files; only the launcher of one service is swapped (constructor injection).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from systemg.daemon.phases import Phase
from systemg.daemon.resolver import Resolver
from systemg.daemon.supervisor import Unit
from systemg.errors import Code
from systemg.spawn.launcher import Child, Launcher, launch
from systemg.spawn.plan import SpawnPlan
from tests.support.inprocess import Harness
from tests.support.procscan import new_marker, with_marker


def breaking(service: str, exc: Exception) -> Launcher:
    def launcher(plan: SpawnPlan, stdout: int, stderr: int, /, *, confirm: bool = True) -> Child:
        if plan.service == service:
            raise exc
        return launch(plan, stdout=stdout, stderr=stderr, confirm=confirm)

    return launcher


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("embedded null byte"),  # what posix_spawn raised for "10\0x"
        TypeError("expected str, bytes or os.PathLike object"),
        RuntimeError("a bug"),
    ],
)
def test_a_launch_that_raises_fails_the_unit_and_blocks_its_dependents(
    make: Callable[..., Harness], exc: Exception
) -> None:
    h = make(breaking("db", exc))
    assert h.run_until(lambda then: h.ops.start("p", None, then)), "start never settled"
    db, web, api, other = (h.unit(n) for n in ("db", "web", "api", "other"))
    assert db.state.phase is Phase.FAILED
    assert db.error is not None
    assert db.error.code is Code.SPAWN_FAILED
    assert type(exc).__name__ in db.error.message
    # Dependents settle as blocked, naming the chain down to the failed unit.
    assert web.state.phase is Phase.BLOCKED
    assert api.state.phase is Phase.BLOCKED
    assert api.error is not None
    assert api.error.code is Code.DEPENDENCY_FAILED
    assert "api -> web -> db" in api.error.message
    assert "'db' is failed" in api.error.message
    # An unrelated service is untouched by it.
    assert other.state.phase is Phase.RUNNING
    assert "could not start" in h.journal_file.read_text()
    # And the shutdown completes, whatever state the units are in.
    assert h.run_until(h.ops.stop_everything), "shutdown never finished"
    assert all(h.unit(n).state.pid is None for n in ("db", "web", "api", "other"))
    assert not with_marker(h.marker)


def test_a_subscriber_that_raises_never_leaves_a_unit_transitional(
    make: Callable[..., Harness],
) -> None:
    h = make(breaking("nothing", RuntimeError()))

    def buggy(unit: Unit, what: object) -> None:
        raise RuntimeError("bug in a subscriber")

    h.sup.subscribers.insert(0, buggy)
    assert h.run_until(lambda then: h.ops.start("p", None, then)), "start never settled"
    assert {h.unit(n).state.phase for n in ("db", "web", "api", "other")} == {Phase.RUNNING}
    assert "bug in a subscriber" in h.journal_file.read_text()
    assert h.run_until(h.ops.stop_everything), "shutdown never finished"
    assert not with_marker(h.marker)


def test_a_blocked_dependent_starts_by_itself_once_its_dependency_is_up(
    make: Callable[..., Harness],
) -> None:
    failures = [1]

    def flaky(plan: SpawnPlan, stdout: int, stderr: int, /, *, confirm: bool = True) -> Child:
        if plan.service == "db" and failures[0]:
            failures[0] -= 1
            raise ValueError("embedded null byte")
        return launch(plan, stdout=stdout, stderr=stderr, confirm=confirm)

    h = make(flaky)
    assert h.run_until(lambda then: h.ops.start("p", None, then))
    assert h.unit("web").state.phase is Phase.BLOCKED
    # The operator fixes db and starts only db: its dependents follow by themselves.
    assert h.run_until(
        lambda then: (
            h.ops.when(lambda: h.unit("api").state.phase is Phase.RUNNING, then)
            or h.ops.start("p", ["db"], lambda: None)
        )
    )
    assert [h.unit(n).state.phase for n in ("db", "web", "api")] == [Phase.RUNNING] * 3
    assert h.run_until(h.ops.stop_everything)


# --- account lookups never block the loop ------------------------------------------------

ACCOUNTS = """version: "2"
projects:
  p:
    services:
      ghost:
        command: "sleep 1000.{m}"
        user: ghost
        working_dir: /
      other:
        command: "sleep 1000.{m}"
"""


def fake_getent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "getent"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.privileged
def test_accounts_are_looked_up_by_getent_off_the_loop(
    make: Callable[..., Harness], tmp_path: Path
) -> None:
    # 'ghost' exists only in what this getent prints: the service can only run as 65534
    # if the supervisor asked getent (as a child process), not pwd.getpwnam on its thread.
    getent = fake_getent(
        tmp_path,
        'case "$1 $2" in\n'
        '  "passwd ghost") echo "ghost:x:65534:65534:g:/nonexistent:/bin/sh" ;;\n'
        "  *) exit 2 ;;\nesac",
    )
    h = make(breaking("nothing", RuntimeError()), manifest=ACCOUNTS)
    h.sup.resolver = Resolver(h.loop, h.sup.accounts, getent=getent)
    assert h.run_until(lambda then: h.ops.start("p", None, then))
    ghost = h.unit("ghost")
    assert ghost.state.phase is Phase.RUNNING, ghost.error
    status = Path(f"/proc/{ghost.state.pid}/status").read_text()
    assert "Uid:\t65534\t65534\t65534\t65534" in status
    assert h.run_until(h.ops.stop_everything)


@pytest.mark.privileged
def test_a_hung_name_service_fails_only_the_unit_that_needs_it(
    make: Callable[..., Harness], tmp_path: Path
) -> None:
    getent = fake_getent(tmp_path, f"exec sleep 1000.{new_marker()}")
    h = make(breaking("nothing", RuntimeError()), manifest=ACCOUNTS)
    h.sup.resolver = Resolver(h.loop, h.sup.accounts, timeout_s=1.0, getent=getent)
    other_up_while_ghost_resolves: list[bool] = []

    def watch_other(_unit: Unit) -> None:
        if h.unit("other").state.phase is Phase.RUNNING:
            other_up_while_ghost_resolves.append(h.unit("ghost").state.phase is Phase.STARTING)

    h.sup.watchers.append(watch_other)
    assert h.run_until(lambda then: h.ops.start("p", None, then))
    # The loop went on while the lookup hung: the other service came up meanwhile.
    assert other_up_while_ghost_resolves[:1] == [True]
    ghost = h.unit("ghost")
    assert ghost.state.phase is Phase.FAILED
    assert ghost.error is not None
    assert "took longer than 1s" in ghost.error.message
    assert h.run_until(h.ops.stop_everything)


def test_a_stop_is_answered_even_if_a_start_restarts_the_unit_meanwhile(
    make: Callable[..., Harness],
) -> None:
    """stop, then start while it is stopping: the start brings it back at once (it never
    reaches `stopped`), and the stop must still be answered once it went down."""
    h = make(breaking("nothing", RuntimeError()))
    assert h.run_until(lambda then: h.ops.start("p", ["other"], then))
    first = h.unit("other").state.pid
    stopped = [False]

    def stop_then_start(then: Callable[[], None]) -> None:
        h.ops.stop("p", ["other"], lambda: stopped.__setitem__(0, True))
        h.ops.start("p", ["other"], lambda: None)
        h.ops.when(lambda: stopped[0] and h.unit("other").state.phase is Phase.RUNNING, then)

    assert h.run_until(stop_then_start, timeout=20), "the stop was never answered"
    assert h.unit("other").state.pid != first
    assert h.run_until(h.ops.stop_everything)
