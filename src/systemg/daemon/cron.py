"""Cron jobs on the supervisor's loop (docs/manifest.md, "Scheduled jobs"): when each job is due,
its runs.

A service with ``cron:`` is a *job*: ``start`` of its project schedules it instead of
starting it, a stop unschedules it. When a job is due it is started like any service (the
same spawn plan: user, limits, namespaces, cgroup, logs, hooks), and the run is recorded
when the unit settles again (exited, failed, killed, skipped). A job still running when
it is due again is left alone and an ``overlap`` run is recorded. The last ``HISTORY`` runs
per job, whether it is scheduled and the last due time handled are kept in
``<state>/projects/<id>/cron.json`` (written like ``state.json``: temp file + rename), so
they survive a ``kill -9`` of the supervisor and a new one goes on where it stopped.

The wait: **one** wall-clock ``timerfd`` for all jobs, armed at the earliest due time
(absolute, ``TFD_TIMER_CANCEL_ON_SET``), read on the loop like any fd. So an idle supervisor
with 100 jobs wakes only when one is due; a suspend that ends past a due time expires the
timer at resume (a monotonic wait would run late by the time suspended); a clock step
cancels the timer and every due time is computed again. A due time is handled once: the
next one is computed from ``max(now, last due handled)``, so a clock set back never runs
a job twice for one due time, and a clock set forward (or a suspend) past several due
times runs it once, not once per missed time. ``persistent: true`` runs a job once when it
is scheduled if a due time passed since the last one handled (no supervisor ran then).

``sysg run -s JOB`` starts a run now, whatever the schedule (an ``overlap`` if one runs),
and answers when it ended.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from systemg.daemon import lifecycle as lc
from systemg.daemon.phases import ALIVE, TRANSITIONAL, Phase
from systemg.daemon.store import write_atomic
from systemg.errors import Code, Diagnostic
from systemg.manifest.schedule import ScheduleError, next_due
from systemg.spawn import linux

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor
    from systemg.daemon.units import Unit

HISTORY = 10  # runs kept per job


@dataclass(slots=True)
class Run:
    """One run of a job (mutable until it ended)."""

    start: float  # epoch seconds
    end: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    result: str = "running"  # running | ok | failed | overlap | stopped | skipped | lost
    message: str = ""
    manual: bool = False  # `sysg run`, not the schedule

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else round(self.end - self.start, 3)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": self.duration_s}


@dataclass(slots=True)
class Job:
    runs: list[Run] = field(default_factory=list)
    scheduled: bool = False
    next_due: float | None = None  # epoch seconds
    last_due: float | None = None  # the last due time handled (run, overlap or missed)
    current: Run | None = None
    waiters: list[Callable[[Run], None]] = field(default_factory=list)


class Scheduler:
    def __init__(self, sup: Supervisor, wall: Callable[[], float] = time.time) -> None:
        self.sup = sup
        self.wall = wall
        self.jobs: dict[tuple[str, str], Job] = {}
        self._loaded: set[str] = set()
        self._fd: int | None = None
        sup.phase_listeners.append(self._on_phase)

    # --- the schedule -------------------------------------------------------------------
    def job(self, unit: Unit) -> Job:
        self._load(unit.project_id)
        job = self.jobs.setdefault((unit.project_id, unit.service.name), Job())
        unit.job = job
        return job

    def schedule(self, unit: Unit) -> None:
        """Due from now on (``start`` of the project, or a new supervisor that finds it so)."""
        cron = unit.service.cron
        if cron is None:
            return
        job = self.job(unit)
        now = self.wall()
        job.scheduled = True
        if job.current is not None and unit.state.phase not in ALIVE:
            job.current.result, job.current.end = "lost", now  # the supervisor died meanwhile
            job.current.message = "the supervisor stopped while it ran"
            job.current = None
        persistent = unit.service.persistent and job.last_due is not None
        due = self._next(unit, job.last_due) if persistent and job.last_due else None
        missed = due is not None and due <= now
        job.next_due = self._next(unit, max(now, job.last_due or now))
        self.sup.journal.info(f"{unit.key}: cron job scheduled, next run {_iso(job.next_due)}")
        if missed:
            self.sup.journal.info(f"{unit.key}: a run was due while no supervisor ran (persistent)")
            job.last_due = now
            self.run(unit)  # an overlap record if one still runs
        elif job.last_due is None:
            job.last_due = now  # persistent counts from here
        self._arm()
        self.save(unit.project_id)

    def unschedule(self, unit: Unit) -> None:
        job = self.jobs.get((unit.project_id, unit.service.name))
        if job is None or not job.scheduled:
            return
        job.scheduled, job.next_due = False, None
        self._arm()
        self.save(unit.project_id)

    def _next(self, unit: Unit, after: float) -> float | None:
        cron = unit.service.cron
        assert cron is not None
        try:
            moment = datetime.fromtimestamp(after, UTC)
            return next_due(cron.expression, cron.timezone, moment).timestamp()
        except (ScheduleError, ValueError, OverflowError) as exc:
            self.sup.journal.error(f"{unit.key}: cron: cannot compute the next run: {exc}")
            return None

    def _arm(self) -> None:
        due = [j.next_due for j in self.jobs.values() if j.scheduled and j.next_due is not None]
        if not due and self._fd is None:
            return
        if self._fd is None:
            self._fd = linux.timerfd_realtime()
            self.sup.loop.add_reader(self._fd, self._on_timer)
        linux.timerfd_at(self._fd, min(due) if due else None)

    def _on_timer(self) -> None:
        assert self._fd is not None
        try:
            os.read(self._fd, 8)
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                self.sup.journal.info("cron: the wall clock was set; next runs computed again")
                self._recompute()
            elif exc.errno != errno.EAGAIN:
                raise
        now = self.wall()
        for (project_id, name), job in list(self.jobs.items()):
            if not job.scheduled or job.next_due is None or job.next_due > now:
                continue
            unit = self._unit(project_id, name)
            if unit is None:
                job.scheduled = False
                continue
            job.last_due = job.next_due
            job.next_due = self._next(unit, max(now, job.last_due))
            self.run(unit)  # an overlap record if one still runs
            self.save(project_id)
        self._arm()

    def _recompute(self) -> None:
        now = self.wall()
        for (project_id, name), job in self.jobs.items():
            unit = self._unit(project_id, name)
            if job.scheduled and unit is not None:
                job.next_due = self._next(unit, max(now, job.last_due or now))

    def _unit(self, project_id: str, name: str) -> Unit | None:
        runtime = self.sup.projects.get(project_id)
        unit = None if runtime is None else runtime.units.get(name)
        return unit if unit is not None and unit.service.cron is not None else None

    # --- runs ---------------------------------------------------------------------------
    def run(self, unit: Unit, done: Callable[[Run], None] | None = None) -> Run:
        """Start a run now; ``done`` gets it when it ended (an ``overlap`` at once)."""
        job = self.job(unit)
        manual = done is not None
        if job.current is not None or unit.state.phase in ALIVE:
            run = self._record_overlap(unit, job)
            if done is not None:
                self.sup.loop.call_later(0, lambda: done(run))
            return run
        run = Run(start=self.wall(), manual=manual)
        job.current = run
        job.runs.append(run)
        del job.runs[:-HISTORY]
        if done is not None:
            job.waiters.append(done)
        self.sup.journal.info(
            f"{unit.key}: cron job run {'(sysg run)' if manual else '(scheduled)'}"
        )
        self.save(unit.project_id)
        self.sup.apply(unit, lc.Start(self.sup.clock()))
        return run

    def _record_overlap(self, unit: Unit, job: Job) -> Run:
        now = self.wall()
        running = job.current.pid if job.current is not None else unit.state.pid
        run = Run(
            start=now,
            end=now,
            result="overlap",
            message=f"the previous run (pid {running}) is still running; left alone",
        )
        job.runs.append(run)
        del job.runs[:-HISTORY]
        self.sup.journal.warn(f"{unit.key}: cron job overlap: {run.message}")
        self.save(unit.project_id)
        return run

    def launched(self, unit: Unit, pid: int) -> None:
        job = self.jobs.get((unit.project_id, unit.service.name))
        if job is not None and job.current is not None:
            job.current.pid = pid
            self.save(unit.project_id)

    def _on_phase(self, unit: Unit, before: Phase) -> None:
        if unit.service.cron is None:
            return
        job = self.jobs.get((unit.project_id, unit.service.name))
        if job is None or job.current is None:
            return
        if unit.state.phase in ALIVE or unit.state.phase in TRANSITIONAL:
            return
        self._finish(unit, job, job.current)

    def _finish(self, unit: Unit, job: Job, run: Run) -> None:
        st = unit.state
        run.end = self.wall()
        last = st.last_exit
        name = unit.service.name
        if st.phase is Phase.SKIPPED:
            run.result, run.message = "skipped", st.message
        elif st.phase is Phase.STOPPED and last is not None:
            run.exit_code, run.signal = last.code, last.signal
            run.result, run.message = "stopped", f"stopped ({st.stop_reason}): {last.describe()}"
        elif last is not None and run.pid is not None:
            run.exit_code, run.signal = last.code, last.signal
            run.result = "ok" if last.clean and st.phase is Phase.EXITED else "failed"
            run.message = last.describe()
        else:
            run.result, run.message = "failed", st.message or "it did not start"
        if run.result == "ok":
            self.sup.journal.info(f"Cron job '{name}' completed successfully")
        elif run.result == "failed":
            # "Process exited with code 4": the upstream's words, which scripts grep for.
            process = "Process " if run.message.startswith(("exited", "killed")) else ""
            self.sup.journal.warn(f"Cron job '{name}' failed: {process}{run.message}")
        job.current = None
        self.save(unit.project_id)
        waiters, job.waiters = job.waiters, []
        for waiter in waiters:
            waiter(run)

    # --- persistence --------------------------------------------------------------------
    def _file(self, project_id: str) -> str:
        return str(self.sup.paths.project_state_dir(project_id) / "cron.json")

    def _load(self, project_id: str) -> None:
        if project_id in self._loaded:
            return
        self._loaded.add(project_id)
        try:
            with open(self._file(project_id), "rb") as fh:
                raw = json.loads(fh.read())
            for name, data in raw.get("jobs", {}).items():
                runs = [
                    Run(**{k: v for k, v in r.items() if k != "duration_s"}) for r in data["runs"]
                ]
                job = Job(
                    runs=runs[-HISTORY:],
                    scheduled=bool(data.get("scheduled", False)),
                    last_due=data.get("last_due"),
                )
                if runs and runs[-1].result == "running":
                    job.current = runs[-1]
                self.jobs[(project_id, name)] = job
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            self.sup.journal.error(
                f"{self._file(project_id)}: unreadable cron history ({exc}); starting afresh"
            )
            with contextlib.suppress(OSError):
                os.replace(self._file(project_id), self._file(project_id) + ".corrupt")

    def save(self, project_id: str) -> None:
        jobs = {
            name: {
                "scheduled": job.scheduled,
                "last_due": job.last_due,
                "runs": [r.to_json() for r in job.runs],
            }
            for (pid, name), job in self.jobs.items()
            if pid == project_id
        }
        try:
            directory = self.sup.paths.project_state_dir(project_id)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = json.dumps({"version": 1, "jobs": jobs}, indent=1).encode()
            write_atomic(directory / "cron.json", data)
        except OSError as exc:
            self.sup.journal.error(f"{self._file(project_id)}: cannot save cron history: {exc}")

    def scheduled_in(self, project_id: str) -> list[str]:
        """The jobs of ``project_id`` a previous supervisor had scheduled."""
        self._load(project_id)
        return [n for (p, n), j in self.jobs.items() if p == project_id and j.scheduled]

    def close(self) -> None:
        if self._fd is not None:
            self.sup.loop.remove(self._fd)
            os.close(self._fd)
            self._fd = None


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def refuse_direct(units: list[Unit], verb: str) -> Diagnostic | None:
    """SG0101 for ``start -s JOB`` / ``restart -s JOB``: a job runs on its schedule."""
    for unit in units:
        cron = unit.service.cron
        if cron is not None:
            return Diagnostic(
                Code.CRON_DIRECT,
                f"'{unit.service.name}' is a cron job ({cron.written or cron.expression}, "
                f"{cron.timezone}): cron jobs run only when their schedule fires, so it is "
                f"not {verb}ed",
                path=unit.key,
                hint=f"to run it now: sysg run -s {unit.key}; its schedule starts with "
                "`sysg start` of its project",
            )
    return None
