"""Commands sysg runs on a service's behalf: ``pre_start``, ``skip``, the hooks, command probes.

Each runs as the service would (docs/manifest.md, "Liveness, pre_start, hooks, skip"): its user,
groups, environment (plus
``SYSG_SERVICE_NAME``, ``SYSG_PROJECT``; for ``onerr`` also ``SYSG_EXIT_CODE`` /
``SYSG_EXIT_SIGNAL``), working directory and rlimits — never as root unless the service is —
through the same ``build_plan`` and launcher, as a child watched on the loop
(``probes.command_attempt``), killed with its process group at its timeout. Its output goes
to the service's log under its own label (``pre_start``, ``probe``, ``onstart``, ...).

With ``isolation.network`` they share the service's network: while the service runs, the
child enters its namespace (``/proc/PID/ns/net``, before anything else in the plan); when
it does not (``pre_start``, ``onstop``, ``onerr``) they get a new, empty one of their own —
never the host's. While the service runs they also join its cgroup, so its limits count
them and its cleanup kills them; after it exited they join none (a cgroup made for a hook
would outlive the service). Its mount, pid and user namespaces are not applied: they hold
nothing a command needs to reach, and a second pid namespace per probe would cost a fork.

Hooks never fail, delay or restart the service: their outcome is logged, nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from systemg.daemon import lifecycle as lc
from systemg.daemon.logs import log_tail
from systemg.daemon.phases import Phase
from systemg.daemon.probes import Attempt, Outcome, ProbeResult, command_attempt
from systemg.daemon.restart import ExitInfo
from systemg.errors import Code, Diagnostic
from systemg.manifest.model import PRE_START_TIMEOUT_MS, Isolation
from systemg.spawn.plan import SpawnPlan, build_plan

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor, Unit

Done = Callable[[ProbeResult], None]


PRE_START_ENV = "SYSG_PRE_START_TIMEOUT_SECS"


def pre_start_budget_s(
    environ: Mapping[str, str] | None = None, *, default_s: float = PRE_START_TIMEOUT_MS / 1000.0
) -> float:
    """How long ``pre_start`` (and a ``skip`` command) may run: ``default_s``
    (``supervisor.xml`` ``pre_start_secs``), or whole seconds from
    ``SYSG_PRE_START_TIMEOUT_SECS`` in the supervisor's environment (the upstream's
    override; anything but a positive integer is ignored)."""
    raw = (os.environ if environ is None else environ).get(PRE_START_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return float(int(raw))
    return float(default_s)


class SideCommands:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def plan(
        self, unit: Unit, command: str, extra_env: tuple[tuple[str, str], ...] = ()
    ) -> SpawnPlan:
        """The service's plan with ``sh -c COMMAND`` (raises like ``build_plan``); a
        blue/green generation's has its slot in the environment, as its process does."""
        service = self.sup.bluegreen.service_for(unit)
        env = replace(
            service.env,
            vars=(
                *service.env.vars,
                ("SYSG_SERVICE_NAME", service.name),
                ("SYSG_PROJECT", unit.project_id),
                *extra_env,
            ),
        )
        side = replace(
            service,
            argv=("/bin/sh", "-c", command),
            env=env,
            listen=(),
            isolation=Isolation(
                network=service.isolation.network,
                no_new_privileges=service.isolation.no_new_privileges,
            ),
            limits=replace(service.limits, cgroup=None)
            if service.limits.cgroup is not None
            else service.limits,
        )
        runtime = self.sup.projects[unit.project_id]
        plan = build_plan(side, unit.project_id, self.sup.context_for(runtime)).plan
        running = unit.plan if unit.main is not None and unit.state.pid is not None else None
        if running is None:
            return plan
        if plan.network and running.network:
            plan = replace(plan, join_netns=f"/proc/{unit.state.pid}/ns/net")
        if running.cgroup is not None:
            plan = replace(plan, cgroup=running.cgroup)
        return plan

    def run(
        self,
        unit: Unit,
        command: str,
        *,
        label: str,
        timeout_s: float,
        done: Done,
        extra_env: tuple[tuple[str, str], ...] = (),
    ) -> Attempt | None:
        """Start ``command``; ``done`` gets its outcome (UNREACHABLE if it cannot start)."""
        try:
            plan = self.plan(unit, command, extra_env)
        except Exception as exc:
            message = getattr(exc, "diagnostics", None)
            text = message[0].message if message else f"{type(exc).__name__}: {exc}"
            self.sup.loop.call_later(
                0, lambda: done(ProbeResult(Outcome.UNREACHABLE, text, 0.0, self.sup.clock()))
            )
            return None

        def on_output(_stream: str, data: bytes) -> None:
            self.sup.log_output(unit, label, data)

        return command_attempt(
            self.sup.loop, plan, timeout_s, done, on_output=on_output, launcher=self.sup.launcher
        )

    # --- hooks --------------------------------------------------------------------------
    def fire(self, unit: Unit, which: str, info: ExitInfo | None = None) -> None:
        """Run the ``onstart`` / ``onerr`` / ``onstop`` hook, if the service has it."""
        hook = getattr(unit.service.hooks, which)
        if hook is None:
            return
        extra: tuple[tuple[str, str], ...] = ()
        if which == "onerr" and info is not None:
            extra = (
                ("SYSG_EXIT_CODE", "" if info.code is None else str(info.code)),
                ("SYSG_EXIT_SIGNAL", "" if info.signal is None else str(info.signal)),
            )

        def done(result: ProbeResult) -> None:
            if result.outcome is Outcome.PASS:
                self.sup.journal.info(f"{unit.key}: hook {which}: {result.message}")
            else:
                self.sup.journal.warn(f"{unit.key}: hook {which} failed: {result.message}")

        self.sup.journal.info(f"{unit.key}: running hook {which}")
        self.run(
            unit,
            hook.command,
            label=which,
            timeout_s=hook.timeout_ms / 1000.0,
            done=done,
            extra_env=extra,
        )

    def prelaunch(self, unit: Unit, seq: int, *, skip: bool, launch: Callable[[], None]) -> None:
        """``skip`` (a command: exit 0 = skipped), then ``pre_start``, then ``launch`` —
        each step only while launch ``seq`` is still the unit's current one."""
        service = unit.service

        def current() -> bool:
            st = unit.state
            return unit.launch_seq == seq and st.phase is Phase.STARTING and st.pid is None

        def pre_start() -> None:
            if not service.pre_start:
                launch()
                return
            unit.prelaunch = self.run(
                unit,
                service.pre_start,
                label="pre_start",
                timeout_s=pre_start_budget_s(default_s=self.sup.config.pre_start_secs),
                done=after_pre_start,
            )

        def after_skip(result: ProbeResult) -> None:
            unit.prelaunch = None
            if not current():
                return
            if result.outcome is Outcome.PASS:
                self.sup.apply(
                    unit, lc.Skipped("skipped (its skip command exited 0)", self.sup.clock())
                )
                return
            pre_start()

        def after_pre_start(result: ProbeResult) -> None:
            unit.prelaunch = None
            if not current():
                return
            if result.outcome is Outcome.PASS:
                launch()
                return
            code = (
                Code.PRE_START_TIMEOUT
                if result.outcome is Outcome.TIMEOUT
                else (Code.PRE_START_FAILED)
            )
            tail = log_tail(self.sup.paths.service_log(unit.project_id, service.name))
            unit.error = Diagnostic(
                code,
                f"service '{service.name}' was not launched: pre_start {result.message}",
                path=f"services.{service.name}.deployment.pre_start",
                hint=(f"last output:\n{tail}\n" if tail else "") + f"see: sysg logs -s {unit.key}",
            )
            self.sup.journal.error(f"{unit.key}: {unit.error.message}")
            self.sup.apply(unit, lc.SpawnFailed(unit.error.message, self.sup.clock()))

        if skip and service.skip_command:
            unit.prelaunch = self.run(
                unit,
                service.skip_command,
                label="pre_start",
                timeout_s=pre_start_budget_s(default_s=self.sup.config.pre_start_secs),
                done=after_skip,
            )
        else:
            pre_start()
