"""Progress: the pure line rendering, what counts as done, and the feed's coalescing.

The feed is driven with a stand-in supervisor (a clock, a loop that only records timers,
the phase-listener list): a burst of phase changes arms one timer and yields one event.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from systemg.cli.progress import Line, render_progress
from systemg.daemon.phases import Phase
from systemg.daemon.progress import INTERVAL_S, MAX_ITEMS, Feed, is_done


def test_render_the_issue_example() -> None:
    event = {
        "verb": "start",
        "total": 100,
        "done": 37,
        "recent": [{"service": "api", "state": "starting"}, {"service": "web", "state": "running"}],
        "pending": [{"service": "db", "state": "waiting", "waiting_for": ["migrate"]}],
    }
    assert render_progress(event, 120) == "starting 37/100 · web ready · db waiting for migrate"


def test_render_fits_the_width_and_names_each_service_once() -> None:
    event = {
        "verb": "stop",
        "total": 3,
        "done": 1,
        "recent": [{"service": "a", "state": "stopped"}],
        "pending": [
            {"service": "a", "state": "stopping"},
            {"service": "bbbbbbbbbbbb", "state": "running"},
        ],
    }
    assert render_progress(event, 80) == "stopping 1/3 · a stopped · bbbbbbbbbbbb running"
    assert render_progress(event, 30) == "stopping 1/3 · a stopped"
    assert len(render_progress({"verb": "restart", "total": 10**6, "done": 0}, 12)) <= 11
    assert render_progress({"verb": "restart", "total": 2, "done": 2}) == "restarting 2/2"


def test_line_is_rewritten_in_place_and_erased() -> None:
    err = io.StringIO()
    line = Line(err)
    line.show({"verb": "start", "total": 2, "done": 1})
    line.show({"verb": "start", "total": 2, "done": 2})
    printed: list[str] = []
    line.above(lambda: printed.append(err.getvalue()))
    line.clear()
    assert err.getvalue() == (
        "\r\x1b[Kstarting 1/2\r\x1b[Kstarting 2/2\r\x1b[Kstarting 2/2\r\x1b[K"
    )
    assert printed == ["\r\x1b[Kstarting 1/2\r\x1b[Kstarting 2/2\r\x1b[K"]
    line.clear()  # nothing shown: nothing written
    assert err.getvalue().endswith("starting 2/2\r\x1b[K")


def test_is_done_per_verb() -> None:
    assert is_done("start", Phase.RUNNING)
    assert is_done("start", Phase.BLOCKED)
    assert not is_done("start", Phase.WAITING)
    assert not is_done("start", Phase.STARTING)
    assert is_done("stop", Phase.STOPPED)
    assert is_done("stop", Phase.FAILED)
    assert not is_done("stop", Phase.STOPPING)
    assert not is_done("stop", Phase.RUNNING)
    assert is_done("restart", Phase.RUNNING)
    assert not is_done("restart", Phase.STOPPED, left_down=True)


# --- the feed, with a stand-in supervisor ---------------------------------------------------


@dataclass
class _Timer:
    when: float
    callback: Any
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Loop:
    now: list[float]
    timers: list[_Timer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Any) -> _Timer:
        timer = _Timer(self.now[0] + delay, callback)
        self.timers.append(timer)
        return timer

    def run_due(self) -> None:
        for timer in [t for t in self.timers if t.when <= self.now[0] and not t.cancelled]:
            self.timers.remove(timer)
            timer.callback()


@dataclass
class _Service:
    name: str
    depends_on: tuple[str, ...] = ()
    completed_deps: frozenset[str] = frozenset()


@dataclass
class _State:
    phase: Phase


@dataclass
class _Unit:
    service: _Service
    state: _State
    project_id: str = "p"

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.service.name}"


class _Sup:
    def __init__(self, units: list[_Unit]) -> None:
        self.now = [100.0]
        self.loop = _Loop(self.now)
        self.phase_listeners: list[Any] = []
        self.projects = {"p": type("R", (), {"units": {u.service.name: u for u in units}})()}

    def clock(self) -> float:
        return self.now[0]


class _Ops:
    def __init__(self, sup: _Sup) -> None:
        self.sup = sup

    @staticmethod
    def satisfied(unit: _Unit, *, completed: bool = False) -> bool:
        return unit.state.phase is Phase.RUNNING and not completed


def _change(sup: _Sup, unit: _Unit, phase: Phase) -> None:
    before, unit.state.phase = unit.state.phase, phase
    for listener in list(sup.phase_listeners):
        listener(unit, before)


def test_a_burst_of_changes_is_one_event_per_interval() -> None:
    units = [_Unit(_Service(f"s{i}"), _State(Phase.STARTING)) for i in range(50)]
    units.append(_Unit(_Service("db", ("migrate",)), _State(Phase.WAITING)))
    units.append(_Unit(_Service("migrate"), _State(Phase.STARTING)))
    sup = _Sup(units)
    sent: list[dict[str, Any]] = []
    feed = Feed(_Ops(sup), "start", lambda: units, sent.append)  # type: ignore[arg-type]
    sup.loop.run_due()
    assert [e["done"] for e in sent] == [0]  # the first event at once: the total is known
    for unit in units[:50]:
        _change(sup, unit, Phase.RUNNING)
    assert len(sup.loop.timers) == 1  # 50 changes, one timer
    sup.loop.run_due()
    assert len(sent) == 1  # not before the interval has passed
    sup.now[0] += INTERVAL_S
    sup.loop.run_due()
    assert len(sent) == 2
    event = sent[-1]
    assert (event["total"], event["done"]) == (52, 50)
    assert len(event["recent"]) == MAX_ITEMS
    assert event["recent"][-1] == {"service": "s49", "state": "running"}
    assert event["pending"][0] == {"service": "db", "state": "waiting", "waiting_for": ["migrate"]}
    feed.close()
    assert sup.phase_listeners == []
    _change(sup, units[-1], Phase.RUNNING)
    sup.now[0] += 1
    sup.loop.run_due()
    assert len(sent) == 2  # closed: nothing more


def test_restart_counts_touched_units_and_what_it_left_down() -> None:
    units = [_Unit(_Service(n), _State(Phase.RUNNING)) for n in ("a", "b", "c")]
    sup = _Sup(units)
    sent: list[dict[str, Any]] = []
    Feed(_Ops(sup), "restart", lambda: units, sent.append)  # type: ignore[arg-type]
    sup.loop.run_due()
    assert sent == []  # nothing touched yet: nothing to show
    _change(sup, units[0], Phase.STOPPING)
    _change(sup, units[0], Phase.STOPPED)
    sup.now[0] += INTERVAL_S
    sup.loop.run_due()
    assert (sent[-1]["total"], sent[-1]["done"]) == (1, 0)  # stopped to be started again
    _change(sup, units[0], Phase.STARTING)
    _change(sup, units[0], Phase.RUNNING)
    sup.now[0] += INTERVAL_S
    sup.loop.run_due()
    assert (sent[-1]["total"], sent[-1]["done"]) == (1, 1)
