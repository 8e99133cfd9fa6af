"""``sysg start``: boot a supervisor if none runs, register a manifest, start its services.

With ``--daemonize`` the command returns once every selected service is up or failed; so
does ``start -s``/``-p`` when a supervisor already runs (a request to it, as with
``systemctl start``). Otherwise the terminal stays attached: the supervisor streams the
project's output, printed as ``service | line``, and Ctrl-C (SIGINT) stops what this
terminal started (the project, or with ``-s`` only that service) through a separate
``stop`` request, then exits 0. The supervisor itself always runs detached, so closing the
terminal never takes other projects down with it.

Deadlines (``cli/deadlines.py``): ``--daemonize`` waits ``--timeout`` (default 5 min) for
the whole answer; attached, only connect and the first line (``attached``) have one.

Exit codes: 0 all started; 1 a service failed to start (each is named on stderr), the
manifest is invalid, or the supervisor went away while attached.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from systemg.cli import boot, client, progress
from systemg.cli.console import emit, out
from systemg.cli.deadlines import add_timeout_argument, for_request, mutating
from systemg.cli.mode import Target, resolve
from systemg.cli.selectors import Selection, add_selector_arguments, explicit_config, selection
from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import find_config

if TYPE_CHECKING:
    from systemg.protocol.messages import Message, StartRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    parser.add_argument(
        "--daemonize",
        action="store_true",
        help="return once the services are up instead of streaming their output",
    )
    add_timeout_argument(parser)


def resolve_config(args: argparse.Namespace, target: Target, sel: Selection) -> str | None:
    """The manifest to send (absolute), or None to let the supervisor use registered ones."""
    explicit = explicit_config(args, target.paths)
    if explicit is not None:
        return explicit
    found = find_config(None, target.paths)
    if found is not None:
        return str(found)
    if sel.project or sel.service or client.accepts(target.paths):
        return None
    raise SysgError.of(
        Code.CONFIG_UNREADABLE,
        f"no systemg.yaml or sysg.yaml in {os.getcwd()}",
        hint="pass the manifest with `-c FILE`",
    )


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "start")
    sel = selection(args)
    config = resolve_config(args, target, sel)
    # `start -s X` / `-p P` against a running supervisor is a request to that supervisor,
    # as `systemctl start` and `supervisorctl start` are: it returns once the selection is
    # up, whether or not a terminal is attached (the upstream routes it the same way).
    # Only a start that brings a whole manifest attaches the terminal to its output.
    resident = (
        not args.daemonize and bool(sel.project or sel.service) and (client.accepts(target.paths))
    )
    boot.ensure_supervisor(target.paths, drop_privileges=target.drop_privileges)
    # Performance: the protocol's messages are not imported before the supervisor is
    # spawned; ensure_supervisor imports them while the one it spawned boots.
    from systemg.protocol.messages import StartRequest

    line = progress.Line() if progress.wanted(args) else None
    request = StartRequest(
        config=config,
        project=sel.project,
        service=sel.service,
        drop_privileges=target.drop_privileges,
        attach=not (args.daemonize or resident),
        environ=client.request_environ(),
        progress=line is not None,
    )
    if args.daemonize or resident:
        data = client.call(target.paths, request, mutating(args.timeout), on_progress(line))
        if line is not None:
            line.clear()
        return report(data, args, verb="started")
    return attach(target, request, args, line)


def send_and_report(
    args: argparse.Namespace,
    target: Target,
    make: Callable[[bool], Message],
    *,
    verb: str,
    call: Callable[..., dict[str, Any]] = client.call,
) -> int:
    """Send ``make(progress)`` (``progress``: a progress line is drawn on this terminal)
    with the mutating deadline, then print the problems and summary (``report``)."""
    line = progress.Line() if progress.wanted(args) else None
    try:
        data = call(target.paths, make(line is not None), mutating(args.timeout), on_progress(line))
    finally:
        if line is not None:
            line.clear()
    return report(data, args, verb=verb)


def on_progress(line: progress.Line | None) -> Callable[[client.Event], None] | None:
    """The ``on_event`` that draws progress events on ``line`` (None: no progress)."""
    if line is None:
        return None

    def show(event: client.Event) -> None:
        if event.data.get("kind") == "progress":
            line.show(event.data)

    return show


def report(data: dict[str, Any], args: argparse.Namespace, *, verb: str) -> int:
    """Print problems (stderr) and the summary (stdout); 1 if any service failed."""
    problems = [_diag(p) for p in data.get("problems") or []]
    units = [u for u in data.get("units") or [] if isinstance(u, dict)]
    if verb == "restarted" and any(p.severity == "error" for p in problems):
        # A job waits for its schedule and a skipped service is meant to be down.
        short = [
            f"{u.get('project')}/{u.get('service')}"
            for u in units
            if not _up(u) and not u.get("cron") and u.get("state") != "skipped"
        ]
        if short:
            # The upstream's summary code, naming only what did not come back.
            problems.append(
                Diagnostic(
                    Code.RESTART_INCOMPLETE,
                    f"restart incomplete: {', '.join(short)} did not come up "
                    "(every other service of the restart is up)",
                    hint="the errors above say why; fix it, then `sysg restart` again",
                )
            )
    emit(problems, args)
    if getattr(args, "verbose", False):
        for u in units:
            pid = f" (pid {u['pid']})" if u.get("pid") else ""
            name = f"{u.get('project')}/{u.get('service')}"
            if _up(u):
                out(f"  {verb} {name}: {u.get('state')}{pid}")
            else:
                out(f"  not {verb} {name}: {u.get('state')}{pid}")
    failed = any(p.severity == "error" for p in problems)
    service = getattr(args, "service", None)
    if service:
        name = service.rpartition("/")[2]
        out(f"Service '{name}' not {verb} (see above)" if failed else f"Service '{name}' {verb}")
    else:
        projects = [str(p) for p in data.get("projects") or []]
        for pid_ in projects:
            mine = [u for u in units if u.get("project") == pid_]
            plural = "service" if len(mine) == 1 else "services"
            up = sum(1 for u in mine if _up(u))
            if failed and up < len(mine):
                out(f"Project '{pid_}': {up} of {len(mine)} {plural} up (see above)")
            else:
                out(f"Project '{pid_}' {verb} ({len(mine)} {plural})")
        if not projects:
            out(f"All services {verb}")
    return 1 if failed else 0


def _up(unit: dict[str, Any]) -> bool:
    """Running, or a one-shot that finished cleanly."""
    last = unit.get("last_exit") or {}
    done = unit.get("state") == "exited" and last.get("code") == 0 and last.get("signal") is None
    return unit.get("state") == "running" or bool(done)


def _diag(raw: Any) -> Diagnostic:
    try:
        return Diagnostic.from_json(raw)
    except (KeyError, ValueError, TypeError, AttributeError):
        return Diagnostic(Code.START_FAILED, str(raw))


def attach(
    target: Target,
    request: StartRequest,
    args: argparse.Namespace,
    line: progress.Line | None = None,
) -> int:
    """Foreground: print the stream as ``service | line``; Ctrl-C stops the project.
    Progress (on ``line``) is drawn below the output until every service settled."""
    projects: list[str] = []
    owned: list[str] = []
    failed = False
    # Ctrl-C, a closed terminal (SIGHUP) and SIGTERM all mean "stop what I attached", even
    # when this process was started with SIGINT ignored (e.g. `sysg start &` in a script).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        wait = for_request(request.verb, attach=True, timeout=args.timeout)
        for item in client.stream(target.paths, request, wait):
            if isinstance(item, client.Event):
                ev = item.data
                if ev.get("kind") == "attached":
                    projects = [str(p) for p in ev.get("projects") or []]
                    owned = [str(p) for p in ev.get("owned") or []]
                elif ev.get("kind") == "progress" and line is not None:
                    line.show(ev)
                elif ev.get("kind") == "started":
                    projects = [str(p) for p in ev.get("projects") or []]
                    if line is not None:
                        line.clear()
                        line = None
                    failed = report(ev, args, verb="started") != 0
                elif ev.get("kind") == "log":
                    # Output can come before "started": learn the project from it too, so
                    # an early Ctrl-C still stops exactly what this terminal attached to.
                    if ev.get("project") and str(ev["project"]) not in projects:
                        projects.append(str(ev["project"]))
                    if line is not None:
                        line.above(lambda ev=ev: _print_log(ev))
                    else:
                        _print_log(ev)
            else:
                return 1 if failed else 0
    except KeyboardInterrupt:
        if line is not None:
            line.clear()
        return _stop_attached(target, request, projects, owned, args)
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            emit(
                (
                    Diagnostic(
                        Code.NO_SUPERVISOR,
                        "the supervisor went away; the project is no longer attached",
                        hint=f"see {target.paths.supervisor_log}",
                    ),
                ),
                args,
            )
            return 1
        raise
    return 1 if failed else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_log(ev: dict[str, Any]) -> None:
    service = str(ev.get("service", "?"))
    data = str(ev.get("data", ""))
    lines = []
    for raw in data.splitlines():
        # "<ts> <stdout|stderr> <text>"; anything else is printed as it came.
        parts = raw.split(" ", 2)
        text = parts[2] if len(parts) == 3 and parts[1] in ("stdout", "stderr") else raw
        if len(parts) == 2 and parts[1] in ("stdout", "stderr"):
            text = ""
        lines.append(f"{service} | {text}\n")
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def _stop_attached(
    target: Target,
    request: StartRequest,
    projects: list[str],
    owned: list[str],
    args: argparse.Namespace,
) -> int:
    """Ctrl-C: stop what this terminal attached to, on a new connection, then exit 0."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    sys.stderr.write("\nstopping...\n")
    # Exactly what this terminal started: with `-s`, that service in each project it was
    # attached to, never its siblings (they may have been started by someone else).
    from systemg.protocol.messages import ForgetRequest, StopRequest

    stops = [StopRequest(project=p, service=request.service) for p in projects] or [
        StopRequest(config=request.config, project=request.project, service=request.service)
    ]
    try:
        for stop in stops:
            data = client.call(target.paths, stop)
            if data.get("message"):
                out(str(data["message"]))
        if request.service is None:
            # A project this terminal brought up is its own (foreman-style, as the
            # upstream's foreground mode): once stopped it is unloaded, so status no longer
            # lists it; its logs stay. One that already ran before is only stopped.
            for project in owned:
                client.call(target.paths, ForgetRequest(project=project))
    except SysgError as exc:
        emit(exc.diagnostics, args)
        return 1
    return 0
