"""One ``model.Service`` -> the ``[Unit]`` and ``[Service]`` lines of its ``.service`` unit:
what runs, how (``Type=``), when it restarts, what it waits for, its hooks, environment and
logs. Identity, limits and the sandbox are ``sandbox.py``'s. Pure.

``Type=``: ``oneshot`` for a cron job and for a service another one waits on with
``condition: completed`` (that one also gets ``RemainAfterExit=yes``, so it counts as done
and is not run again when a dependent restarts, as sysg's ``done``); ``notify`` for
``notify: true``; else ``exec`` (systemd reports a start failure when the program cannot be
executed). Commands sysg runs through ``/bin/sh -c`` are written so (systemd runs argv
directly); hooks get ``SYSG_SERVICE_NAME``/``SYSG_PROJECT`` through ``/usr/bin/env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from systemg.export import quoting, sandbox
from systemg.export.units import Draft, duration, manifest_duration
from systemg.manifest.bluegreen import slotted
from systemg.manifest.model import (
    DEFAULT_HOOK_TIMEOUT_MS,
    DEFAULT_LOG_MAX_BYTES,
    DEFAULT_LOG_MAX_FILES,
    Hook,
    LogSink,
    RestartPolicy,
    Service,
    Strategy,
)

U, S = "Unit", "Service"
_RESTART = {
    RestartPolicy.ALWAYS: "always",
    RestartPolicy.ON_FAILURE: "on-failure",
    RestartPolicy.NEVER: "no",
}
_STAY_UP_MS = 60_000  # a restart that stays up this long resets sysg's failure count
_ONERR = (
    'if [ "$SERVICE_RESULT" != success ]; then\n'
    'if [ "$EXIT_CODE" = exited ]; then SYSG_EXIT_CODE=$EXIT_STATUS; '
    "else SYSG_EXIT_SIGNAL=$EXIT_STATUS; fi\n"
    "export SYSG_EXIT_CODE SYSG_EXIT_SIGNAL\n"
    "{command}\n"
    "fi"
)
_SKIP = "if {command}\nthen exit 1\nfi\nexit 0"  # ours: exit 0 = skip; ExecCondition: 1 = skip


@dataclass(frozen=True, slots=True)
class Where:
    """What the mapping of one service needs to know about its surroundings."""

    project: str  # project id, for SYSG_PROJECT
    path: str  # "projects.api.services.web" or "services.web" (loose)
    target: str  # "api.target"
    unit_of: Mapping[str, str]  # service name -> unit base name ("api-web")
    oneshot: bool  # a cron job, or waited on with condition: completed
    socket: str | None  # "api-web.socket" when the service has listen entries


def program(service: Service) -> tuple[str, ...]:
    """``argv`` with a relative program (``./api``) made absolute against ``working_dir``,
    where sysg's child finds it after ``chdir``; a bare name is left to systemd's search."""
    first = service.argv[0]
    if "/" in first and not os.path.isabs(first):
        first = os.path.normpath(os.path.join(service.working_dir, first))
    return (first, *service.argv[1:])


def _hook_argv(where: Where, service: Service, script: str) -> tuple[str, ...]:
    return (
        "/usr/bin/env",
        f"SYSG_SERVICE_NAME={service.name}",
        f"SYSG_PROJECT={where.project}",
        "/bin/sh",
        "-c",
        script,
    )


def unit_section(d: Draft, service: Service, where: Where) -> None:
    d.set(U, "Description", quoting.description(f"sysg {where.project}/{service.name}"))
    d.set(U, "PartOf", where.target)
    needs = [f"{where.unit_of[dep]}.service" for dep in service.depends_on]
    if where.socket:
        needs.append(where.socket)
    if needs:
        d.set(U, "Requires", " ".join(needs))
        d.set(U, "After", " ".join(needs))
    if service.restart_policy is not RestartPolicy.NEVER and not service.cron:
        if service.max_restarts is None:
            d.set(U, "StartLimitIntervalSec", "0")  # sysg restarts without limit
        else:
            # sysg: max_restarts consecutive restarts that did not stay up 60 s.
            n = service.max_restarts
            window = n * service.backoff_ms + (n + 1) * _STAY_UP_MS
            d.set(U, "StartLimitIntervalSec", duration(window))
            d.set(U, "StartLimitBurst", str(n + 1))


def service_section(d: Draft, service: Service, where: Where) -> None:
    path = where.path
    if where.oneshot:
        d.set(S, "Type", "oneshot")
        if not service.cron:
            d.set(S, "RemainAfterExit", "yes")
        if service.notify:
            d.note(S, "notify: a one-shot is done when it exits 0, not at READY=1")
    elif service.notify:
        d.set(S, "Type", "notify")
    else:
        d.set(S, "Type", "exec")
    if service.notify:
        d.set(S, "NotifyAccess", "all")
        if service.watchdog_ms is not None:
            d.set(S, "WatchdogSec", duration(service.watchdog_ms))
    _skip(d, service, where)
    if service.pre_start is not None:
        d.set(S, "ExecStartPre", quoting.exec_line(_hook_argv(where, service, service.pre_start)))
    if service.command is not None:
        d.note(S, "command: runs through /bin/sh -c, as under sysg")
    d.set(S, "ExecStart", quoting.exec_line(program(service)))
    _hooks(d, service, where)
    d.set(S, "WorkingDirectory", quoting.specifiers(service.working_dir))
    _restart(d, service, where)
    d.set(S, "TimeoutStopSec", duration(service.stop_timeout_ms))
    # A one-shot's start lasts its whole run: sysg puts no bound on a job's run time.
    d.set(
        S,
        "TimeoutStartSec",
        "infinity" if where.oneshot else duration(service.start_timeout_ms),
    )
    _readiness_drops(d, service, path)
    environment(d, service, path)
    _logs(d, service, path)


def _skip(d: Draft, service: Service, where: Where) -> None:
    if service.skip:
        d.note(S, "skip: true: the condition below always skips the service")
        d.set(S, "ExecCondition", "/bin/false")
    elif service.skip_command is not None:
        script = _SKIP.format(command=service.skip_command)
        d.set(S, "ExecCondition", quoting.exec_line(_hook_argv(where, service, script)))


def _hooks(d: Draft, service: Service, where: Where) -> None:
    hooks = service.hooks
    if hooks.onstart is not None:
        argv = _hook_argv(where, service, hooks.onstart.command)
        d.set(S, "ExecStartPost", quoting.exec_line(argv, "-"))
    if hooks.onerr is not None:
        script = _ONERR.format(command=hooks.onerr.command)
        d.set(S, "ExecStopPost", quoting.exec_line(_hook_argv(where, service, script), "-"))
    if hooks.onstop is not None:
        argv = _hook_argv(where, service, hooks.onstop.command)
        d.set(S, "ExecStopPost", quoting.exec_line(argv, "-"))
    for name, hook in (
        ("onstart", hooks.onstart),
        ("onerr", hooks.onerr),
        ("onstop", hooks.onstop),
    ):
        if hook is not None and hook.timeout_ms != DEFAULT_HOOK_TIMEOUT_MS:
            _hook_timeout(d, where.path, name, hook)


def _hook_timeout(d: Draft, path: str, name: str, hook: Hook) -> None:
    d.drop(
        S,
        f"{path}.hooks.{name}.timeout",
        manifest_duration(hook.timeout_ms),
        "systemd bounds a hook only by the unit's TimeoutStartSec=/TimeoutStopSec=",
    )


def _restart(d: Draft, service: Service, where: Where) -> None:
    policy = service.restart_policy
    if where.oneshot and policy is RestartPolicy.ALWAYS:
        d.drop(
            S,
            f"{where.path}.restart_policy",
            policy.value,
            "systemd refuses Restart=always for a one-shot (Type=oneshot)",
        )
        return
    d.set(S, "Restart", _RESTART[policy])
    if policy is not RestartPolicy.NEVER:
        d.set(S, "RestartSec", duration(service.backoff_ms))


def _readiness_drops(d: Draft, service: Service, path: str) -> None:
    if service.health_check is not None:
        d.drop(
            S,
            f"{path}.deployment.health_check",
            service.health_check.raw or service.health_check.kind.value,
            "systemd considers the service up once it is executed; dependents start then",
        )
    if service.liveness is not None:
        d.drop(
            S,
            f"{path}.liveness",
            service.liveness.probe.raw or service.liveness.probe.kind.value,
            "systemd does not probe a running service (WatchdogSec= needs the service's pings)",
        )
    if service.strategy is Strategy.ROLLING:
        d.drop(
            S,
            f"{path}.deployment.strategy",
            f"rolling (grace_period {manifest_duration(service.grace_period_ms)})",
            "systemctl restart stops the old process before starting the new one",
        )
    bg = service.blue_green
    if bg is not None:
        d.drop(
            S,
            f"{path}.deployment.blue_green",
            f"slots {', '.join(bg.slots)}; switch_command {bg.switch_command}",
            f"one unit runs one generation, always in slot {bg.slots[0]} "
            f"(Environment={bg.env_var}={bg.slots[0]}); the switch and its verification never run",
        )


def environment(d: Draft, service: Service, path: str) -> None:
    env = service.env
    values = dict(env.file_vars)
    values.update(env.vars)  # sysg: explicit vars win over the file's
    if env.file is not None:
        # systemd's EnvironmentFile= overrides Environment= and ignores `export NAME=`
        # lines, so the values sysg read are written here instead, in a 0600 unit.
        d.note(S, f"env.file {env.file}: its values are written below (this file is 0600)")
        d.mode = 0o600
    for name, value in values.items():
        d.set(S, "Environment", quoting.assignment(name, value))
    stripped = [n for n in env.strip if n not in dict(env.vars)]
    if stripped:
        d.set(S, "UnsetEnvironment", " ".join(stripped))
    if env.inherit_env:
        d.drop(
            S,
            f"{path}.env.inherit_env",
            True,
            "systemd starts every service with a clean environment; list variables in env.vars",
        )
    if not env.clear_session_vars:
        d.drop(
            S,
            f"{path}.env.clear_session_vars",
            False,
            "a systemd service never gets a login session's variables to keep",
        )


def _logs(d: Draft, service: Service, path: str) -> None:
    logs = service.logs
    if logs.sink is LogSink.NONE:
        d.set(S, "StandardOutput", "null")
        d.set(S, "StandardError", "null")
        return
    d.note(S, f"logs: stdout and stderr go to the journal (journalctl -u {d.name})")
    d.set(S, "SyslogIdentifier", service.name)
    if logs.max_bytes not in (None, DEFAULT_LOG_MAX_BYTES):
        d.drop(S, f"{path}.logs.max_bytes", logs.max_bytes, _JOURNAL_ROTATION)
    if logs.max_files not in (None, DEFAULT_LOG_MAX_FILES):
        d.drop(S, f"{path}.logs.max_files", logs.max_files, _JOURNAL_ROTATION)


_JOURNAL_ROTATION = "journald rotates for the whole host (SystemMaxUse= in journald.conf)"


def map_service(d: Draft, service: Service, where: Where) -> None:
    bg = service.blue_green
    if bg is not None:
        # One unit runs one generation: in the first slot, so the process gets its variable.
        service = slotted(service, 0)
    unit_section(d, service, where)
    service_section(d, service, where)
    sandbox.identity(d, service)
    sandbox.limits(d, service, where.path)
    sandbox.isolation(d, service, where.path)
