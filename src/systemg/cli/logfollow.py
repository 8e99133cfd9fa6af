"""Printing and following for ``sysg logs``: the output format and the live part of ``-f``.

``Printer`` writes one stored line as text (as stored, or ``--raw``: the application
text only), behind a ``service | `` label when several services are shown, or as one
compact JSON object. Following comes from the supervisor's stream when one answers
(``follow_supervisor``: skipping what the tail already showed, see ``seen``) or from the
files (``follow_files``: polled, rotation followed, new services picked up). Both apply
the same ``Query`` as the one-shot read, so ``-g``/``-k``/``--since`` hold for followed
lines too.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from systemg.cli import logread
from systemg.cli.logfiles import Entry, Follower, LogLine, ServiceLogFile, discover, tail
from systemg.cli.logquery import Query
from systemg.paths import Paths

POLL_INTERVAL = 0.1  # seconds between file polls when following without a supervisor


class Printer:
    """Writes entries as text, raw text or JSON lines; knows whether to label them."""

    def __init__(self, out: BinaryIO, *, json_lines: bool, label: str, raw: bool = False) -> None:
        self.out = out
        self.json_lines = json_lines
        self.label = label  # "" (one service) | "service" | "project/service"
        self.raw = raw

    @property
    def verbatim(self) -> bool:
        """Lines go out exactly as stored (one service, text, not ``--raw``)."""
        return not (self.json_lines or self.label or self.raw)

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
            return
        body = line.text if self.raw else line.raw
        if self.label:
            name = service if self.label == "service" else f"{project}/{service}"
            self.out.write(name.encode() + b" | " + body + b"\n")
        else:
            self.out.write(body + b"\n")

    def emit_entries(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.emit(e.log.project, e.log.service, e.line)
        self.out.flush()


Selector = tuple[str | None, str | None]


def wanted(selectors: list[Selector], project: str, service: str) -> bool:
    return any((p is None or p == project) and (s is None or s == service) for p, s in selectors)


def held(followers: dict[str, Follower]) -> dict[str, logread.Held]:
    held = {}
    for label, follower in followers.items():
        position = follower.position()
        if position is not None:
            held[label] = logread.Held(*position)
    return held


def last_ts(log: ServiceLogFile) -> str:
    last = tail(log.path, 1)
    return LogLine.parse(last[0]).ts if last else ""


def resolved(selectors: list[Selector], logs: list[ServiceLogFile]) -> list[Selector]:
    """A bare ``-s web`` resolved on disk becomes ``app/web`` (what the supervisor and
    the stream filter need)."""
    out: list[Selector] = []
    for project, service in selectors:
        matches = [log.project for log in logs if log.service == service]
        if service and not project and len(matches) == 1:
            out.append((matches[0], service))
        else:
            out.append((project, service))
    return out


def subscribe(sock: Any, paths: Paths, selectors: list[Selector]) -> Iterator[dict[str, Any]]:
    """One selector is asked of the supervisor as is; several, as their common project
    (or everything), the stream then keeps only what they name (``wanted``)."""
    from systemg.cli import logclient
    from systemg.protocol.messages import LogsRequest

    if len(selectors) == 1:
        project, service = selectors[0]
    else:
        projects = {p for p, _ in selectors}
        project = projects.pop() if len(projects) == 1 else None
        service = None
    return logclient.subscribe(sock, paths, LogsRequest(project=project, service=service))


# Per log: the newest capture time the tail showed, and the lines it showed with exactly
# that time (None: it showed none of that log, so everything up to that time is old).
Seen = dict[str, tuple[str, "Counter[bytes] | None"]]


def seen(entries: list[Entry], before: dict[str, str]) -> Seen:
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


def follow_supervisor(
    events: Iterator[dict[str, Any]],
    *,
    printer: Printer,
    seen: Seen,
    query: Query | None = None,
    wanted: Callable[[str, str], bool] | None = None,
) -> None:
    """Print streamed lines the tail did not show and the query keeps."""
    for event in events:
        if event.get("kind") != "log":
            continue
        proj, svc = str(event.get("project", "")), str(event.get("service", ""))
        if wanted is not None and not wanted(proj, svc):
            continue
        data = str(event.get("data", "")).encode("utf-8", "surrogateescape")
        last, shown = seen.get(f"{proj}/{svc}", ("", None))
        for raw in data.splitlines():
            line = LogLine.parse(raw)
            if last and line.ts and (line.ts < last or (line.ts == last and shown is None)):
                continue  # older than what the tail showed
            if shown is not None and line.ts == last and shown[line.raw] > 0:
                shown[line.raw] -= 1  # this very line was the tail's last
                continue
            if query is None or query.keeps(line.ts, line.stream, line.text):
                printer.emit(proj, svc, line)
        printer.out.flush()


def follow_files(
    printer: Printer,
    paths: Paths,
    selectors: list[Selector],
    followers: dict[str, Follower],
    query: Query,
) -> None:
    # A selection wider than named services also picks up services whose file appears
    # later (a project, or everything).
    grows = any(not service for _, service in selectors)
    try:
        while True:
            if grows:
                for log in discover(paths.log_dir):
                    if log.label not in followers and wanted(selectors, log.project, log.service):
                        followers[log.label] = Follower(log, from_start=True)
            batch = [
                Entry(f.log, line)
                for f in followers.values()
                for line in map(LogLine.parse, f.poll())
                if query.keeps(line.ts, line.stream, line.text)
            ]
            batch.sort(key=lambda e: e.line.ts)  # stable: per-file order is kept
            printer.emit_entries(batch)
            time.sleep(POLL_INTERVAL)
    finally:
        for f in followers.values():
            f.close()
