"""One ``model.Project`` -> its units: a ``.service`` per service, a ``.socket`` for a
service's ``listen`` entries, a ``.timer`` per cron job, and ``<prefix>.target`` that wants
them all (``systemctl enable --now <prefix>.target`` starts the project). Pure: host names
in ``listen`` are resolved by the ``resolve_host`` function given (the CLI passes the
supervisor's own, which reads ``/etc/hosts`` and never DNS).

Unit names are ``<prefix>-<service>``; the prefix defaults to the project id.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from systemg.export import quoting
from systemg.export.calendar import CalendarError, on_calendar
from systemg.export.service import Where, map_service
from systemg.export.units import Draft, Dropped, Export, UnitFile
from systemg.manifest.model import ListenKind, Project, Service

Resolver = Callable[[str], "str | None"]


def literal_only(host: str) -> str | None:
    """The default resolver: an IP literal or ``localhost`` only."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "127.0.0.1" if host == "localhost" else None


@dataclass(frozen=True, slots=True)
class Options:
    prefix: str | None = None  # default: the project id
    services: tuple[str, ...] | None = None  # None = every service of the project
    resolve_host: Resolver = literal_only


def service_path(project: Project, service: Service) -> str:
    base = "services" if project.loose else f"projects.{project.id}.services"
    return f"{base}.{service.name}"


def export_project(project: Project, options: Options = Options()) -> Export:
    prefix = options.prefix or project.id
    target = f"{prefix}.target"
    unit_of = {s.name: f"{prefix}-{s.name}" for s in project.services}
    waited_on = {dep for s in project.services for dep in s.completed_deps}
    chosen = [s for s in project.services if options.services is None or s.name in options.services]
    units: list[UnitFile] = []
    dropped: list[Dropped] = []
    wants: list[str] = []
    for service in chosen:
        base = unit_of[service.name]
        path = service_path(project, service)
        socket = _socket(project, service, base=base, target=target, options=options, path=path)
        has_socket = socket is not None and socket.listens
        where = Where(
            project=project.id,
            path=path,
            target=target,
            unit_of=unit_of,
            oneshot=service.cron is not None or service.name in waited_on,
            socket=f"{base}.socket" if has_socket else None,
        )
        draft = Draft(f"{base}.service", project.manifest_path, "Unit", "Service")
        map_service(draft, service, where)
        timer = _timer(project, service, base=base, target=target, unit=draft, path=path)
        if socket is not None and not socket.listens:
            for lost in socket.dropped:  # no entry left: the comments go to the service
                draft.drop("Service", lost.path, lost.value, lost.reason)
            socket = None
        units.append(draft.render())
        dropped.extend(draft.dropped)
        if socket is not None:
            units.append(socket.render())
            dropped.extend(socket.dropped)
            wants.append(socket.name)
        if timer is not None:
            units.append(timer.render())
            wants.append(timer.name)
        if service.cron is None:
            wants.append(f"{base}.service")
    units.append(_target(project, target, wants))
    return Export(tuple(units), tuple(dropped))


def _target(project: Project, target: str, wants: list[str]) -> UnitFile:
    d = Draft(target, project.manifest_path, "Unit", "Install")
    d.set("Unit", "Description", quoting.description(f"sysg project {project.id} ({project.name})"))
    if wants:
        d.set("Unit", "Wants", " ".join(wants))
    d.set("Install", "WantedBy", "multi-user.target")
    return d.render()


def _socket(
    project: Project, service: Service, *, base: str, target: str, options: Options, path: str
) -> Draft | None:
    """The ``.socket`` of the ``HOST:PORT`` and ``unix:`` entries, in manifest order (the
    fds arrive as 3.. in that order, all named after the service, as sysg names them).
    ``fd:NAME`` entries adopt a socket sysg itself inherited: written as comments."""
    if not service.listen:
        return None
    d = Draft(f"{base}.socket", project.manifest_path, "Unit", "Socket")
    d.set("Unit", "Description", quoting.description(f"sysg {project.id}/{service.name} sockets"))
    d.set("Unit", "PartOf", target)
    unix = False
    for i, spec in enumerate(service.listen):
        where = f"{path}.listen[{i}]"
        match spec.kind:
            case ListenKind.TCP:
                host = options.resolve_host(spec.host.strip("[]") or "0.0.0.0")
                if host is None:
                    d.drop("Socket", where, spec.raw, "ListenStream= takes an address, not a name")
                    continue
                d.set(
                    "Socket",
                    "ListenStream",
                    f"[{host}]:{spec.port}" if ":" in host else f"{host}:{spec.port}",
                )
            case ListenKind.UNIX:
                unix = True
                d.set("Socket", "ListenStream", spec.path)
            case ListenKind.FD:
                d.drop(
                    "Socket",
                    where,
                    spec.raw,
                    "it names a socket handed to the supervisor; declare one in a .socket unit",
                )
                continue
        d.listens += 1
    if not d.listens:
        d.sections["Socket"].lines.clear()  # comments only: no unit; they go to the service
        return d
    if unix:
        d.set("Socket", "SocketMode", "0660")
        if service.user is not None:
            d.set("Socket", "SocketUser", service.user)
        if service.group is not None:
            d.set("Socket", "SocketGroup", service.group)
    d.set("Socket", "FileDescriptorName", service.name)
    d.set("Socket", "Service", f"{base}.service")
    return d


def _timer(
    project: Project, service: Service, *, base: str, target: str, unit: Draft, path: str
) -> Draft | None:
    cron = service.cron
    if cron is None:
        return None
    try:
        calendars = on_calendar(cron.expression, cron.timezone)
    except CalendarError as exc:
        unit.drop("Service", f"{path}.cron.expression", cron.written or cron.expression, str(exc))
        return None
    d = Draft(f"{base}.timer", project.manifest_path, "Unit", "Timer")
    d.set("Unit", "Description", quoting.description(f"sysg {project.id}/{service.name} schedule"))
    d.set("Unit", "PartOf", target)
    d.note("Timer", f"cron: {cron.written or cron.expression} ({cron.timezone})")
    for text in calendars:
        d.set("Timer", "OnCalendar", text)
    d.set("Timer", "AccuracySec", "1s")  # cron has a seconds field; systemd's default is 1min
    if service.persistent:
        d.set("Timer", "Persistent", "yes")
    return d
