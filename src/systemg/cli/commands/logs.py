"""``sysg logs [-s S] [-p P] [-n N] [-f] [--format json] [--path]``.

Reads the files under ``<log_dir>/<project>/<service>.log`` directly, so it works with no
supervisor (post-mortem). ``-f`` prints the last N lines, then follows: through the
supervisor's log stream when one answers on the control socket, else by polling the
files (rotation and truncation handled by ``logfiles.Follower``) until Ctrl-C.

Output: one service → the stored line as is; several → ``service | `` in front (or
``project/service | `` when they span projects), merged by capture time. ``--format json``
→ one compact ``{"ts","stream","project","service","line"}`` object per line.

Imports stay light (no YAML, psutil or daemon): ``sysg logs`` must be instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from systemg.cli.logfiles import (
    Entry,
    Follower,
    LogLine,
    ServiceLogFile,
    discover,
    merged_tail,
    parse_selector,
    select,
    tail,
)
from systemg.errors import Code, SysgError
from systemg.paths import Paths

POLL_INTERVAL = 0.1  # seconds between file polls when following without a supervisor


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--service", help="service name, or project/service")
    parser.add_argument("-p", "--project", help="every service of this project")
    parser.add_argument(
        "-n", "--lines", type=_count, default=100, help="how many last lines to show (default 100)"
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--path", action="store_true", help="print the log file path(s)")


class Printer:
    """Writes entries as text or JSON lines; knows whether to label them."""

    def __init__(self, out: BinaryIO, *, json_lines: bool, label: str) -> None:
        self.out = out
        self.json_lines = json_lines
        self.label = label  # "" (one service) | "service" | "project/service"

    def emit(self, project: str, service: str, line: LogLine) -> None:
        if self.json_lines:
            obj = {
                "ts": line.ts,
                "stream": line.stream,
                "project": project,
                "service": service,
                "line": line.text.decode("utf-8", "replace"),
            }
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
            self.out.write(text.encode() + b"\n")
        elif self.label:
            name = service if self.label == "service" else f"{project}/{service}"
            self.out.write(name.encode() + b" | " + line.raw + b"\n")
        else:
            self.out.write(line.raw + b"\n")

    def emit_entries(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.emit(e.log.project, e.log.service, e.line)
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    # Same mode rules as every command: SG0704 for --sys as non-root, the root checks, and
    # the operator fallback to a reachable system supervisor.
    from systemg.cli.mode import resolve

    paths = resolve(args, "logs").paths
    project, service = parse_selector(args.project, args.service)
    out: BinaryIO = sys.stdout.buffer
    if args.path:
        return _print_paths(out, paths, project, service)

    if not args.follow:
        logs = select(paths.log_dir, project, service)
        _printer(args, out, project, service, logs).emit_entries(merged_tail(logs, args.lines))
        return 0
    from systemg.cli import logclient

    sock = logclient.connect(paths)
    try:
        logs = select(paths.log_dir, project, service, allow_missing=sock is not None)
        printer = _printer(args, out, project, service, logs)
        # With a supervisor, subscribe (and wait for its confirmation) before reading the
        # tail, so no line falls in between; streamed lines the tail already showed are
        # skipped by timestamp.
        if sock is not None:
            events = _subscribe(sock, paths, project, service, logs)
            before = {log.label: _last_ts(log) for log in logs}
            entries = merged_tail(logs, args.lines)
            printer.emit_entries(entries)
            _follow_supervisor(events, printer=printer, seen=_seen(entries, before))
        else:
            # Without one, open the followers first and end the tail where they start: a
            # line appended while the tail is read is shown once, not lost in between.
            followers = {log.label: Follower(log) for log in logs}
            printer.emit_entries(merged_tail(logs, args.lines, followers))
            _follow_files(printer, paths, project, service, followers)
    except KeyboardInterrupt:
        pass
    except SysgError as exc:
        if exc.code is not Code.NO_SUPERVISOR:
            raise
        # The supervisor went away mid-stream: say so, like an attached `start` does.
        from systemg.cli.console import emit

        emit(exc.diagnostics, args)
        return 1
    finally:
        if sock is not None:
            sock.close()
    return 0


def _printer(
    args: argparse.Namespace,
    out: BinaryIO,
    project: str | None,
    service: str | None,
    logs: list[ServiceLogFile],
) -> Printer:
    single = bool(service)  # -s names one service (an ambiguous bare name was refused)
    one_project = bool(project) or len({log.project for log in logs}) == 1
    label = "" if single else ("service" if one_project else "project/service")
    return Printer(out, json_lines=args.format == "json", label=label)


def _print_paths(out: BinaryIO, paths: Paths, project: str | None, service: str | None) -> int:
    if not project and not service:
        out.write(f"{paths.log_dir}\n".encode())
    else:
        for log in select(paths.log_dir, project, service, allow_missing=bool(project and service)):
            out.write(f"{log.path}\n".encode())
    out.flush()
    return 0


def _last_ts(log: ServiceLogFile) -> str:
    last = tail(log.path, 1)
    return LogLine.parse(last[0]).ts if last else ""


def _subscribe(
    sock: Any, paths: Paths, project: str | None, service: str | None, logs: list[ServiceLogFile]
) -> Iterator[dict[str, Any]]:
    from systemg.cli import logclient
    from systemg.protocol.messages import LogsRequest

    if service and not project and len(logs) == 1:
        project = logs[0].project  # a bare -s resolved on disk
    return logclient.subscribe(sock, paths, LogsRequest(project=project, service=service))


# Per log: the newest capture time the tail showed, and the lines it showed with exactly
# that time (None: it showed none of that log, so everything up to that time is old).
Seen = dict[str, tuple[str, "Counter[bytes] | None"]]


def _seen(entries: list[Entry], before: dict[str, str]) -> Seen:
    """What the tail showed, so the stream repeats none of it and skips none after it.

    One read of a service's output is stored with one timestamp, so several lines can
    share it and the tail may have caught only the first of them (a write still landing):
    lines at the tail's last timestamp are told apart by their text, not their time."""
    seen: Seen = {label: (ts, None) for label, ts in before.items()}
    groups: dict[str, tuple[str, Counter[bytes]]] = {}
    for entry in entries:
        label, ts = entry.log.label, entry.line.ts
        newest, shown = groups.get(label, ("", Counter()))
        if not ts or ts < newest:
            continue
        if ts > newest:
            newest, shown = ts, Counter()
        shown[entry.line.raw] += 1
        groups[label] = (newest, shown)
    seen.update(groups)
    return seen


def _follow_supervisor(events: Iterator[dict[str, Any]], *, printer: Printer, seen: Seen) -> None:
    for event in events:
        if event.get("kind") != "log":
            continue
        proj, svc = str(event.get("project", "")), str(event.get("service", ""))
        data = str(event.get("data", "")).encode("utf-8", "surrogateescape")
        last, shown = seen.get(f"{proj}/{svc}", ("", None))
        for raw in data.splitlines():
            line = LogLine.parse(raw)
            if last and line.ts and (line.ts < last or (line.ts == last and shown is None)):
                continue  # older than what the tail showed
            if shown is not None and line.ts == last and shown[line.raw] > 0:
                shown[line.raw] -= 1  # this very line was the tail's last
                continue
            printer.emit(proj, svc, line)
        printer.out.flush()


def _follow_files(
    printer: Printer,
    paths: Paths,
    project: str | None,
    service: str | None,
    followers: dict[str, Follower],
) -> None:
    # A selection wider than one service also picks up services whose file appears later.
    grows = not (project and service) and not service
    try:
        while True:
            if grows:
                for log in discover(paths.log_dir):
                    if log.label not in followers and (not project or log.project == project):
                        followers[log.label] = Follower(log, from_start=True)
            batch = [
                Entry(f.log, LogLine.parse(raw)) for f in followers.values() for raw in f.poll()
            ]
            batch.sort(key=lambda e: e.line.ts)  # stable: per-file order is kept
            printer.emit_entries(batch)
            time.sleep(POLL_INTERVAL)
    finally:
        for f in followers.values():
            f.close()
