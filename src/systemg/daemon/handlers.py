"""Control requests → operations → replies. One method per verb (``protocol.messages``).

Handlers never block: an operation that takes time (start waits for readiness, stop for
death) answers through its continuation. Bad input of any kind — an invalid manifest, an
unknown service, a request for something already in that state — becomes an error reply
with a code and a hint; the supervisor itself is never at risk.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from systemg import __version__
from systemg.daemon.cron import refuse_direct
from systemg.daemon.operations import Operations
from systemg.daemon.ordering import Selection, select, split_selector
from systemg.daemon.phases import ALIVE, MAY_COME_UP
from systemg.daemon.progress import Feed
from systemg.daemon.report import requested, unit_problems
from systemg.daemon.status import (
    cron_history,
    health_report,
    metric_samples,
    project_of,
    snapshot,
    unit_status,
)
from systemg.daemon.supervisor import Supervisor, Unit
from systemg.errors import Code, Diagnostic, ManifestError, SysgError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import Manifest, Project
from systemg.protocol import messages as m
from systemg.protocol.messages import PROTOCOL_VERSION


class Responder(Protocol):
    def reply(self, data: dict[str, Any]) -> None: ...
    def fail(self, *diagnostics: Diagnostic) -> None: ...
    def event(self, data: dict[str, Any]) -> None: ...
    def on_close(self, callback: Callable[[], None]) -> None: ...


class Handlers:
    def __init__(self, sup: Supervisor, ops: Operations, request_shutdown: Callable[[], None]):
        self.sup = sup
        self.ops = ops
        self.request_shutdown = request_shutdown
        # Project id -> foreground starts attached to it now (status's project ``mode``).
        self.attached: Counter[str] = Counter()
        # Project id -> restarts under way: its units may all be down for a moment, which
        # must not end a foreground start attached to it.
        self.restarting: Counter[str] = Counter()

    def handle(self, request: m.Message, r: Responder) -> None:
        try:
            match request:
                case m.StartRequest():
                    self.start(request, r)
                case m.StopRequest():
                    self.stop(request, r)
                case m.RestartRequest():
                    self.restart(request, r)
                case m.StatusRequest():
                    self.status(request, r)
                case m.InspectRequest():
                    self.inspect(request, r)
                case m.LogsRequest():
                    self.logs(request, r)
                case m.ShutdownRequest():
                    self.shutdown(r)
                case m.ForgetRequest():
                    self.forget(request, r)
                case m.RunRequest():
                    self.run(request, r)
                case m.VersionRequest():
                    r.reply(
                        {
                            "version": __version__,
                            "pid": os.getpid(),
                            "mode": str(self.sup.paths.mode),
                            "protocol": PROTOCOL_VERSION,
                            # What a successor must load (cli/recycle.py).
                            "manifests": sorted(
                                {rt.project.manifest_path for rt in self.sup.projects.values()}
                            ),
                            "binary": _binary(),
                        }
                    )
                case _:
                    r.fail(Diagnostic(Code.PROTOCOL, f"unsupported request {request.verb!r}"))
        except SysgError as exc:
            r.fail(*exc.diagnostics)
        except Exception as exc:
            # A bug, not bad input: the request still gets an answer, the supervisor
            # carries on, and supervisor.log has the traceback.
            self.sup.journal.error(
                f"internal error handling '{request.verb}':\n{traceback.format_exc()}"
            )
            r.fail(
                Diagnostic(
                    Code.INTERNAL,
                    f"internal error handling '{request.verb}': {type(exc).__name__}: {exc}",
                    hint="this is a bug in sysg: please report it with supervisor.log",
                )
            )

    # --- helpers ----------------------------------------------------------------------
    def _projects(self) -> dict[str, Project]:
        return {pid: rt.project for pid, rt in self.sup.projects.items()}

    def _load(self, path: str, environ: dict[str, str]) -> tuple[Manifest, tuple[Diagnostic, ...]]:
        """The manifest and its load warnings: journaled here, and returned so the request
        that loaded it shows them to its user (a deprecated shape says so on their stderr)."""
        result = load_manifest(path, environ=environ, require_trusted=os.geteuid() == 0)
        for warning in result.warnings:
            self.sup.journal.warn(f"{path}: [{warning.code}] {warning.message}")
        return result.manifest, result.warnings

    def _environ(self, pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
        return {str(k): str(v) for k, v in pairs} if pairs else dict(os.environ)

    def _drop(self, requested: bool) -> bool:
        if requested and os.geteuid() != 0:
            self.sup.journal.warn("--drop-privileges has no effect: the supervisor is not root")
            return False
        return requested

    def _register(
        self, config: str, pairs: tuple[tuple[str, str], ...], drop: bool
    ) -> tuple[list[str], tuple[Diagnostic, ...]]:
        """Load ``config`` and register its projects (not started): their ids and the load's
        warnings. An invalid manifest raises ``ManifestError``, answered with its diagnostics
        by ``handle``."""
        environ = self._environ(pairs)
        manifest, warnings = self._load(config, environ)
        for project in manifest.projects:
            self.ops.register(project, environ, drop)
        return [p.id for p in manifest.projects], warnings

    def _feed(self, verb: str, units: Callable[[], list[Unit]], r: Responder) -> Feed:
        """Progress events of this request (``daemon/progress.py``) until it is answered."""
        feed = Feed(self.ops, verb, units, r.event)
        r.on_close(feed.close)
        return feed

    def _selected_units(self, selection: Selection) -> list[Unit]:
        units: list[Unit] = []
        for project_id, names in selection.targets:
            units.extend(self.ops.units(project_id, sorted(names) if names else None))
        return units

    def _result(self, project_ids: list[str], touched: list[Unit]) -> dict[str, Any]:
        now = self.sup.clock()
        problems = [p.to_json() for u in touched for p in unit_problems(u, self.sup.paths)]
        return {
            "projects": project_ids,
            "units": [asdict(unit_status(u, now)) for u in touched],
            "problems": problems,
        }

    # --- start ------------------------------------------------------------------------
    def start(self, req: m.StartRequest, r: Responder) -> None:
        drop = self._drop(req.drop_privileges)
        # Projects with something running before this start: an attached start does not
        # own them (its Ctrl-C stops them but does not unload them).
        running_before = {
            pid
            for pid, rt in self.sup.projects.items()
            if any(u.state.phase in ALIVE for u in rt.units.values())
        }
        within, warnings = (
            self._register(req.config, req.environ, drop) if req.config else (None, ())
        )
        selection = select(self._projects(), req.project, req.service, within=within)
        project_ids = [pid for pid, _ in selection.targets]
        refusal = req.service and refuse_direct(self._selected_units(selection), "start")
        if refusal:
            r.fail(refusal)
            return
        if req.attach:
            self._attach(project_ids, r)
            # First event: which projects this terminal is attached to, so a Ctrl-C that
            # comes before any output stops exactly those.
            owned = [pid for pid in project_ids if pid not in running_before]
            r.event({"kind": "attached", "projects": project_ids, "owned": owned})
        touched: list[Unit] = []
        pending = [len(selection.targets)]
        feeds: list[Feed] = []

        def one_done() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                _close(feeds)
                result = self._result(project_ids, touched)
                result["problems"] = [*(w.to_json() for w in warnings), *result["problems"]]
                if req.attach:
                    r.event({"kind": "started", **result})
                    self._end_attach_when_down(project_ids, result, r)
                else:
                    r.reply(result)

        for project_id, names in selection.targets:
            if drop and project_id in self.sup.projects:
                self.sup.projects[project_id].drop_privileges = True
            touched.extend(self.ops.start(project_id, names or None, one_done))
        if req.progress:
            feeds.append(self._feed("start", lambda: touched, r))

    def _attach(self, project_ids: list[str], r: Responder) -> None:
        wanted = set(project_ids)

        def listener(project: str, service: str, block: bytes) -> None:
            if project in wanted:
                r.event(
                    {
                        "kind": "log",
                        "project": project,
                        "service": service,
                        "data": block.decode("utf-8", "replace"),
                    }
                )

        self.sup.listeners.append(listener)
        self.attached.update(wanted)

        def detach() -> None:
            _discard(self.sup.listeners, listener)
            self.attached.subtract(wanted)
            self.attached += Counter()  # keeps only the positive counts

        r.on_close(detach)

    def _end_attach_when_down(
        self, project_ids: list[str], result: dict[str, Any], r: Responder
    ) -> None:
        def all_down() -> bool:
            if any(self.restarting[pid] for pid in project_ids):
                return False
            for pid in project_ids:
                runtime = self.sup.projects.get(pid)
                if runtime is None:
                    continue
                for unit in runtime.units.values():
                    if unit.state.phase in MAY_COME_UP:
                        return False
            return True

        self.ops.when(all_down, lambda: r.reply(result))

    # --- stop -------------------------------------------------------------------------
    def stop(self, req: m.StopRequest, r: Responder) -> None:
        within = None
        if req.config:
            path = os.path.abspath(req.config)
            within = [
                pid for pid, rt in self.sup.projects.items() if rt.project.manifest_path == path
            ]
        project, service = split_selector(req.project, req.service)
        if not self.sup.projects and project is None and service is None:
            r.reply({"stopped": [], "message": "All services stopped"})
            return
        selection = select(self._projects(), project, service, within=within)
        units = self._selected_units(selection)
        if service is not None:
            message = f"Service '{service}' stopped"
        elif project is not None:
            message = f"Project '{project}' stopped"
        else:
            message = "All services stopped"
        pending = [len(selection.targets)]
        feeds: list[Feed] = []

        def one_done() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                _close(feeds)
                r.reply({"stopped": [u.key for u in units], "message": message})

        if not selection.targets:
            r.reply({"stopped": [], "message": message})
        for project_id, names in selection.targets:
            self.ops.stop(project_id, names or None, one_done)
        if req.progress and selection.targets:
            feeds.append(self._feed("stop", lambda: units, r))

    # --- restart ----------------------------------------------------------------------
    def restart(self, req: m.RestartRequest, r: Responder) -> None:
        environ_override = self._environ(req.environ) if req.environ else None
        drop = self._drop(req.drop_privileges)
        project, service = split_selector(req.project, req.service)
        # Re-read every manifest involved, and validate all of them before touching anything.
        paths: dict[str, dict[str, str]] = {}
        if req.config:
            paths[os.path.abspath(req.config)] = environ_override or dict(os.environ)
        else:
            selection = select(self._projects(), project, service)
            for project_id, _ in selection.targets:
                rt = self.sup.projects[project_id]
                paths[rt.project.manifest_path] = environ_override or rt.environ
        manifests: list[tuple[Manifest, dict[str, str]]] = []
        problems: list[Diagnostic] = []
        warnings: list[Diagnostic] = []
        for path, environ in paths.items():
            try:
                manifest, found = self._load(path, environ)
            except ManifestError as exc:
                problems.extend(exc.diagnostics)
                continue
            manifests.append((manifest, environ))
            warnings.extend(found)
        if problems:
            head = Diagnostic(
                Code.RESTART_INVALID,
                "the manifest is invalid; nothing was changed",
                hint="fix the problems below, check with `sysg validate`, then restart again",
            )
            r.fail(head, *problems)
            return
        new_projects = {p.id: (p, env) for man, env in manifests for p in man.projects}
        if project is not None:
            new_projects = {k: v for k, v in new_projects.items() if k == project}
        touched_ids = list(new_projects)
        pending = [len(new_projects)]
        summaries: list[str] = []
        feeds: list[Feed] = []
        chosen: dict[str, list[str]] = {}  # restart -s: only these units answer for it
        # What this restart's rolling units met (a fallback, a failed new generation): said
        # by this reply only, never by another request's.
        report: list[Diagnostic] = []

        self.restarting.update(touched_ids)
        held = [True]

        def release() -> None:
            if held[0]:
                held[0] = False
                self.restarting.subtract(touched_ids)
                self.restarting += Counter()  # keeps only the positive counts
                self.ops.recheck()  # an attach held by the restart ends if all is down now

        def one_done() -> None:
            pending[0] -= 1
            if pending[0] > 0:
                return
            _close(feeds)
            release()
            units = [u for pid in touched_ids for u in self.ops.units(pid, chosen.get(pid))]
            result = self._result(touched_ids, units)
            rolled = [p.to_json() for p in report]
            said = [w.to_json() for w in warnings]
            result["problems"] = [*said, *rolled, *result["problems"]]
            result["message"] = (
                f"Service '{service}' restarted"
                if service
                else f"Project '{project}' restarted"
                if project
                else "All services restarted"
            )
            result["changes"] = summaries
            r.reply(result)

        if not new_projects:
            release()
            r.reply({"projects": [], "units": [], "problems": [], "message": "nothing to restart"})
            return
        try:
            for project_id, (new, environ) in new_projects.items():
                keep_drop = drop or (
                    project_id in self.sup.projects
                    and self.sup.projects[project_id].drop_privileges
                )
                if service is not None:
                    names = select({project_id: new}, None, service).targets[0][1]
                    if project_id in self.sup.projects:
                        units = self.ops.units(project_id, sorted(names))
                        refusal = refuse_direct(units, "restart")
                        if refusal:
                            release()
                            r.fail(refusal)
                            return
                    if project_id not in self.sup.projects:
                        self.ops.register(new, environ, keep_drop)
                    chosen[project_id] = sorted(names)
                    self.ops.restart(project_id, names, one_done, new=new, report=report)
                    summaries.append(f"{project_id}: restarted {', '.join(sorted(names))}")
                else:
                    summary = self.ops.reconcile(new, environ, keep_drop, one_done, report)
                    summaries.append(f"{project_id}: {summary}")
        except BaseException:
            release()  # the request fails: no attach stays held by it
            raise
        if req.progress:
            feeds.append(
                self._feed(
                    "restart",
                    lambda: [
                        u
                        for pid in touched_ids
                        if pid in self.sup.projects
                        for u in self.ops.units(pid)
                    ],
                    r,
                )
            )

    def run(self, req: m.RunRequest, r: Responder) -> None:
        """``sysg run -s JOB``: one run now; the answer when it ended."""
        if req.config:
            self._register(req.config, req.environ, self._drop(req.drop_privileges))
        units = self._selected_units(select(self._projects(), req.project, req.service))
        if len(units) != 1 or units[0].service.cron is None:
            names = ", ".join(u.key for u in units) or "nothing"
            r.fail(
                Diagnostic(
                    Code.CRON_DIRECT,
                    f"sysg run runs one cron job; the selection is {names}",
                    hint="name a service that has cron: (sysg run -s PROJECT/JOB); start a "
                    "service with sysg start -s",
                )
            )
            return
        unit = units[0]
        self.sup.cron.run(
            unit,
            lambda run: r.reply(
                {"unit": asdict(unit_status(unit, self.sup.clock())), "run": run.to_json()}
            ),
        )

    # --- read-only --------------------------------------------------------------------
    def status(self, req: m.StatusRequest, r: Responder) -> None:
        project, service = split_selector(req.project, req.service)
        units: list[Unit] = []
        if project is not None or service is not None:
            units = self._selected_units(select(self._projects(), project, service))
        else:
            for pid in sorted(self.sup.projects):
                units.extend(self.ops.units(pid))
        attached = frozenset(self.attached)
        reply = snapshot(self.sup, units, self.sup.clock(), attached)
        if not req.view:
            r.reply(reply.to_json())
            return
        from systemg.views.status_text import VIEWS, exit_code, status_text

        if req.view not in VIEWS:
            raise SysgError.of(
                Code.USAGE,
                f"status view {req.view!r} is not one of {', '.join(VIEWS)}",
                hint="leave 'view' empty for the StatusReply itself",
            )
        text, health = status_text(
            reply,
            req.view,
            now=self.sup.clock(),
            color=req.color,
            width=req.width or None,
            filtered=project is not None or service is not None,
        )
        r.reply({"text": text, "health": health, "exit": exit_code(health)})

    def inspect(self, req: m.InspectRequest, r: Responder) -> None:
        project, service = split_selector(req.project, req.service)
        if service is None:
            raise SysgError.of(
                Code.USAGE, "inspect needs a service", hint="sysg inspect -s SERVICE"
            )
        units = self._selected_units(select(self._projects(), project, service))
        unit = units[0]
        from systemg.spawn import observe  # only inspect pays for reading /proc back

        now = self.sup.clock()
        observed: dict[str, object] = {}
        mismatch: tuple[str, ...] = ()
        if unit.state.pid is not None:
            observed = observe.observe(unit.state.pid)
            if unit.plan is not None:
                mismatch = observe.compare(unit.plan, observed)
        r.reply(
            {
                "captured_at": now,
                "unit": asdict(
                    unit_status(
                        unit,
                        now,
                        project_of(self.sup, unit),
                        attached=unit.project_id in self.attached,
                    )
                ),
                "samples": metric_samples(unit),
                "requested": requested(unit),
                "observed": observed,
                "mismatch": list(mismatch),
                "not_applied": list(unit.not_applied),
                "health": health_report(unit),
                "cron_runs": cron_history(unit),
            }
        )

    def logs(self, req: m.LogsRequest, r: Responder) -> None:
        project, service = split_selector(req.project, req.service)
        if project is not None or service is not None:
            selection = select(self._projects(), project, service)
            keys = {
                (pid, n)
                for pid, names in selection.targets
                for n in (names or {s.name for s in self.sup.projects[pid].project.services})
            }
        else:
            keys = None

        def listener(p: str, s: str, block: bytes) -> None:
            if keys is None or (p, s) in keys:
                r.event(
                    {
                        "kind": "log",
                        "project": p,
                        "service": s,
                        "data": block.decode("utf-8", "replace"),
                    }
                )

        self.sup.listeners.append(listener)
        r.on_close(lambda: _discard(self.sup.listeners, listener))
        # From here on every captured line reaches this follower: say so, so the client can
        # read the files' tail only now and miss nothing in between.
        r.event({"kind": "subscribed"})

    # --- supervisor-wide --------------------------------------------------------------
    def shutdown(self, r: Responder) -> None:
        def done() -> None:
            r.reply({"message": "Supervisor stopped"})
            self.request_shutdown()

        self.ops.stop_everything(done)

    def forget(self, req: m.ForgetRequest, r: Responder) -> None:
        project_id = req.project
        if not project_id or project_id not in self.sup.projects:
            removed = self.sup.store.forget(project_id) if project_id else []
            if removed:
                r.reply({"removed": removed})
                return
            raise SysgError.of(Code.PURGE_NO_PROJECT, f"no project state for {project_id!r}")
        alive = [u.key for u in self.ops.units(project_id) if u.state.phase in ALIVE]
        if alive and not req.force:
            raise SysgError.of(
                Code.PURGE_REFUSED,
                f"project '{project_id}' has running services: {', '.join(alive)}",
                hint=f"stop them first (sysg stop -p {project_id}) or use --force",
            )

        def drop() -> None:
            r.reply({"removed": self.sup.store.forget(project_id)})

        self.ops.forget(project_id, drop)


def _binary() -> str:
    """The ``sysg`` this supervisor was started from (``sysg version``'s supervisor_binary).
    Not ``/proc/self/exe``: for a Python program that is the interpreter, the same for every
    install, where an upgraded package and a supervisor still on the old one differ here."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if os.path.isfile(script) else sys.executable


def _close(feeds: list[Feed]) -> None:
    for feed in feeds:
        feed.close()


def _discard(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)
