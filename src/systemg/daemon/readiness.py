"""When a service is up: its sd_notify socket, its health check, and its watchdog.

docs/manifest.md, "Readiness": a service is up (``lifecycle.Ready``) when it sends ``READY=1``
(``notify: true``), when its ``deployment.health_check`` passes, or — with neither — after
250 ms alive (the lifecycle's own timer). Not up within ``start_timeout`` or within the
probe budget → ``lifecycle.NotReady`` with the upstream code, the last probe's message and
the service's last log lines; the lifecycle stops it and the restart policy decides.

- **notify**: one ``notify.NotifySocket`` per launch, created before the process exists
  (its path goes into the environment as ``NOTIFY_SOCKET``), owned by the service's user,
  closed when the process is gone. ``READY=1`` → up; ``STATUS=`` is kept for status;
  ``WATCHDOG=1`` resets the watchdog; ``EXTEND_TIMEOUT_USEC`` extends ``start_timeout``.
- **health check**: one ``probes`` attempt at a time on the loop, ``interval`` apart; it
  fails only when ``retries`` attempts are used **and** ``total_timeout`` (if set) has
  passed (docs/manifest.md, "Readiness"). The last outcome picks the code: SG0104 ran but
  unhealthy, SG0022
  unreachable, SG0023 timed out. A service with ``isolation.network`` is probed inside its
  network namespace; a ``command`` check runs as the service would (its plan, its user).
- **watchdog**: armed once running; no ping within ``watchdog`` → ``WatchdogExpired``.

Everything here runs on the supervisor's loop and never blocks it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from systemg.daemon import lifecycle as lc
from systemg.daemon.logs import log_tail
from systemg.daemon.notify import NotifyMessage, NotifySocket, environment, socket_path
from systemg.daemon.phases import Phase
from systemg.daemon.probes import (
    Attempt,
    Outcome,
    ProbeResult,
    http_attempt,
    tcp_attempt,
)
from systemg.daemon.timers import TimerKind
from systemg.errors import Code, Diagnostic
from systemg.manifest.model import ProbeKind, ProbeSpec
from systemg.spawn.environ import encode_environment
from systemg.spawn.plan import SpawnPlan
from systemg.spawn.sandbox_plan import notify_path

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor, Unit

HISTORY = 10  # probe results kept per unit (inspect)
LIVENESS_SLACK_MAX_S = 1.0  # liveness timers share a grid of min(interval / 4, this)

_CODES = {
    Outcome.UNHEALTHY: Code.HEALTH_UNHEALTHY,
    Outcome.UNREACHABLE: Code.HEALTH_UNREACHABLE,
    Outcome.TIMEOUT: Code.HEALTH_TIMEOUT,
}


@dataclass(slots=True)
class Health:
    """What a unit's readiness machinery holds for its current launch (mutable, private)."""

    notify: NotifySocket | None = None
    status_text: str | None = None  # the last STATUS= it sent
    last_ping: float | None = None  # monotonic time of the last WATCHDOG=1
    attempt: Attempt | None = None
    attempts: int = 0
    live_failures: int = 0  # consecutive failed liveness probes
    probing_since: float = 0.0
    history: list[ProbeResult] = field(default_factory=list)


class Readiness:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def health(self, unit: Unit) -> Health:
        if unit.health is None:
            unit.health = Health()
        return unit.health

    # --- around a launch ----------------------------------------------------------------
    def prepare(self, unit: Unit, plan: SpawnPlan) -> SpawnPlan:
        """Before the launch: the notify socket, and its variables in the environment."""
        service = unit.service
        if not service.notify:
            return plan
        health = self.health(unit)
        self._close_notify(health)
        if plan.uid is not None:
            _let_traverse(self.sup.paths.state_dir)
        # Two generations of a rolling restart run at once, each with its own socket.
        name = service.name if unit.generation % 2 == 0 else f"{service.name}~1"
        path = socket_path(self.sup.paths.state_dir, unit.project_id, name)
        health.notify = NotifySocket(
            self.sup.loop,
            path,
            uid=plan.uid,
            gid=plan.gid,
            on_message=lambda message: self._on_notify(unit, message),
            journal=self.sup.journal,
        )
        health.notify.service_uid = plan.uid if plan.uid is not None else os.geteuid()
        watchdog_usec = service.watchdog_ms * 1000 if service.watchdog_ms else None
        plan, visible = notify_path(plan, str(path))
        extra, _ = encode_environment(environment(Path(visible), watchdog_usec))
        return replace(plan, env=(*plan.env, *extra), watchdog_pid=watchdog_usec is not None)

    def launched(self, unit: Unit, pid: int) -> None:
        health = self.health(unit)
        if health.notify is not None:
            health.notify.main_pid = pid

    def ended(self, unit: Unit) -> None:
        """The process is gone: nothing of this launch may act any more."""
        health = self.health(unit)
        self._cancel_attempt(health)
        self._close_notify(health)

    def settled(self, unit: Unit) -> None:
        """The unit left ``starting`` (up, stopped, exited): no more readiness probes."""
        self._cancel_attempt(self.health(unit))

    def became_up(self, unit: Unit) -> None:
        """Up: liveness probing begins, and the ``onstart`` hook runs."""
        health = self.health(unit)
        health.live_failures = 0
        liveness = self.sup.bluegreen.service_for(unit).liveness
        if liveness is not None:
            self._schedule_live(unit, liveness.probe.interval_ms / 1000.0)
        self.sup.side.fire(unit, "onstart")

    # --- liveness -----------------------------------------------------------------------
    def _schedule_live(self, unit: Unit, delay: float) -> None:
        # Liveness runs for ever: its timers share a grid of a quarter interval (at most
        # 1 s), so N services probed every interval wake the supervisor ~4 times per
        # interval, not N times; a probe is at most half a grid step early or late.
        self.sup.timers(unit).set(
            TimerKind.PROBE,
            delay,
            lambda: self._live_attempt(unit),
            slack_s=min(LIVENESS_SLACK_MAX_S, delay / 4),
        )

    def _live_attempt(self, unit: Unit) -> None:
        liveness = self.sup.bluegreen.service_for(unit).liveness
        health = self.health(unit)
        if liveness is None or unit.state.phase is not Phase.RUNNING or unit.state.pid is None:
            return
        check = liveness.probe
        pid = unit.state.pid

        def done(result: ProbeResult) -> None:
            health.attempt = None
            health.history = [*health.history, result][-HISTORY:]
            if unit.state.phase is not Phase.RUNNING or unit.state.pid != pid:
                return
            if result.outcome is Outcome.PASS:
                health.live_failures = 0
            else:
                health.live_failures += 1
                if health.live_failures >= liveness.failures:
                    message = (
                        f"liveness failed {health.live_failures} time(s) in a row: {result.message}"
                    )
                    unit.error = Diagnostic(
                        _CODES.get(result.outcome, Code.HEALTH_UNHEALTHY),
                        f"service '{unit.service.name}' is unhealthy: {message}",
                        path=unit.key,
                        hint=f"see: sysg logs -s {unit.key}",
                    )
                    self.sup.journal.warn(f"{unit.key}: unhealthy: {message}; stopping it")
                    self.sup.apply(unit, lc.Unhealthy(message, self.sup.clock()))
                    return
            self._schedule_live(unit, check.interval_ms / 1000.0)

        self._start(unit, check, done)

    # --- readiness ----------------------------------------------------------------------
    def await_ready(self, unit: Unit) -> None:
        check = self.sup.bluegreen.service_for(unit).health_check
        if check is None:
            return  # notify: READY=1 will say
        health = self.health(unit)
        health.attempts = 0
        health.probing_since = time.monotonic()
        self._attempt(unit, check)

    def start_timeout(self, unit: Unit) -> None:
        service = self.sup.bluegreen.service_for(unit)
        health = self.health(unit)
        seconds = service.start_timeout_ms / 1000.0
        last = health.history[-1] if health.history else None
        if service.health_check is not None and last is not None:
            self._not_ready(
                unit,
                _CODES.get(last.outcome, Code.HEALTH_UNHEALTHY),
                f"health check did not pass within start_timeout {seconds:g}s: {last.message}",
            )
            return
        what = "sent no READY=1" if service.notify else "was not ready"
        self._not_ready(unit, Code.HEALTH_UNHEALTHY, f"{what} within start_timeout {seconds:g}s")

    def _attempt(self, unit: Unit, check: ProbeSpec) -> None:
        self.health(unit).attempt = None
        if unit.state.phase is not Phase.STARTING or unit.state.pid is None:
            return
        self._start(unit, check, self._done_cb(unit, check))

    def _start(self, unit: Unit, check: ProbeSpec, done: Callable[[ProbeResult], None]) -> None:
        """One attempt of ``check`` against the unit's current process."""
        self.health(unit).attempt = self.probe(unit, check, done)

    def probe(
        self,
        unit: Unit,
        check: ProbeSpec,
        done: Callable[[ProbeResult], None],
        *,
        label: str = "probe",
    ) -> Attempt | None:
        """One attempt of ``check`` as the unit (its network; a command runs as the service,
        its output in the log under ``label``). ``done`` gets the outcome, always."""
        timeout = check.attempt_timeout_ms / 1000.0
        netns = unit.state.pid if unit.service.isolation.network else None
        match check.kind:
            case ProbeKind.TCP:
                return tcp_attempt(
                    self.sup.loop, check.host, check.port, timeout, done, netns_pid=netns
                )
            case ProbeKind.URL:
                return http_attempt(
                    self.sup.loop,
                    check.host,
                    check.port,
                    check.path,
                    timeout,
                    done,
                    netns_pid=netns,
                )
            case ProbeKind.COMMAND:
                return self.sup.side.run(
                    unit, check.command, label=label, timeout_s=timeout, done=done
                )

    def _done_cb(self, unit: Unit, check: ProbeSpec) -> Callable[[ProbeResult], None]:
        launch_pid = unit.state.pid

        def done(result: ProbeResult) -> None:
            health = self.health(unit)
            health.attempt = None
            health.history = [*health.history, result][-HISTORY:]
            if unit.state.phase is not Phase.STARTING or unit.state.pid != launch_pid:
                return
            if result.outcome is Outcome.PASS:
                self.sup.apply(unit, lc.Ready(self.sup.clock()))
                return
            health.attempts += 1
            elapsed = time.monotonic() - health.probing_since
            budget = None if check.total_timeout_ms is None else check.total_timeout_ms / 1000
            if health.attempts >= check.retries and (budget is None or elapsed >= budget):
                self._not_ready(
                    unit,
                    _CODES.get(result.outcome, Code.HEALTH_UNHEALTHY),
                    f"health check failed after {health.attempts} attempt(s): {result.message}",
                )
                return
            delay = check.interval_ms / 1000.0
            if budget is not None and health.attempts >= check.retries:
                delay = min(delay, max(0.0, budget - elapsed))
            self.sup.timers(unit).set(TimerKind.PROBE, delay, lambda: self._attempt(unit, check))

        return done

    def _not_ready(self, unit: Unit, code: Code, message: str) -> None:
        if unit.state.phase is not Phase.STARTING:
            return
        tail = log_tail(self.sup.paths.service_log(unit.project_id, unit.service.name))
        unit.error = Diagnostic(
            code,
            f"service '{unit.service.name}' did not become ready: {message}",
            path=unit.key,
            hint=(f"last output:\n{tail}\n" if tail else "") + f"see: sysg logs -s {unit.key}",
        )
        self.sup.journal.warn(f"{unit.key}: not ready: {message}")
        self.sup.apply(unit, lc.NotReady(message, self.sup.clock()))

    # --- notify -------------------------------------------------------------------------
    def _on_notify(self, unit: Unit, message: NotifyMessage) -> None:
        health = self.health(unit)
        if message.status is not None:
            health.status_text = message.status
        if message.watchdog:
            health.last_ping = time.monotonic()
            if unit.state.phase is Phase.RUNNING and unit.service.watchdog_ms:
                self.sup.timers(unit).set(
                    TimerKind.WATCHDOG,
                    unit.service.watchdog_ms / 1000.0,
                    lambda: self.watchdog_expired(unit),
                )
        if message.watchdog_trigger:
            self.watchdog_expired(unit)
        if message.extend_timeout_usec and unit.state.phase is Phase.STARTING:
            self.sup.timers(unit).set(
                TimerKind.START,
                message.extend_timeout_usec / 1_000_000,
                lambda: self.start_timeout(unit),
            )
        if message.ready:
            self.sup.apply(unit, lc.Ready(self.sup.clock()))

    def watchdog_expired(self, unit: Unit) -> None:
        if unit.state.phase is not Phase.RUNNING:
            return
        seconds = (unit.service.watchdog_ms or 0) / 1000.0
        message = f"watchdog timeout: no WATCHDOG=1 for {seconds:g}s"
        self.sup.journal.warn(f"{unit.key}: {message}; sending SIGABRT")
        unit.error = Diagnostic(Code.HEALTH_TIMEOUT, f"service '{unit.service.name}': {message}")
        self.sup.apply(unit, lc.WatchdogExpired(message, self.sup.clock()))

    # --- helpers ------------------------------------------------------------------------
    @staticmethod
    def _cancel_attempt(health: Health) -> None:
        attempt, health.attempt = health.attempt, None
        if attempt is not None:
            attempt.cancel()

    @staticmethod
    def _close_notify(health: Health) -> None:
        sock, health.notify = health.notify, None
        if sock is not None:
            sock.close()


def _let_traverse(directory: Path) -> None:
    """A service switched to another user must reach ``<state>/notify/<id>.sock``: the state
    directory gets the search bit for others (``0751``/``0711``) — they may pass through,
    never list it; everything inside keeps its own mode (``0600`` files, ``0700`` dirs)."""
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    if not mode & stat.S_IXOTH:
        os.chmod(directory, mode | stat.S_IXOTH)
