"""``sysg logs``: show, follow (``-f``), locate (``--path``), prune (``--prune``) or empty
(``--purge``) service logs, or show the supervisor's own (``--supervisor``).

Reads the files under ``<log_dir>/<project>/<service>.log`` directly, so it works with no
supervisor (post-mortem). What is shown is a ``Query`` (``--since``/``--until``, ``-g``,
``-k``; ``logquery.py``) over a selection (``-s`` repeatable, ``-p``, or everything):
the last ``-n`` kept lines read backwards, or with a time range or ``-a`` every kept
line read forwards after a binary search for the range (``logread.py``). ``-f`` prints
the last N lines, then follows: through the supervisor's log stream when one answers on
the control socket, else by polling the files (``logfollow.py``) until Ctrl-C.

Output: one service → the stored line as is (``--raw``: its text only); several →
``service | `` in front (or ``project/service | `` when they span projects), merged by
capture time. ``--format json`` → one compact ``{"ts","stream","project","service",
"line"}`` object per line. The modes (show, ``-f``, ``--path``, ``--prune``) exclude each
other (``SG0204``).

Imports stay light (no YAML, psutil or daemon): ``sysg logs`` must be instant.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import BinaryIO

from systemg.cli import logfollow, logread
from systemg.cli.logfiles import STREAM_LABELS, Follower, ServiceLogFile, parse_selector, select
from systemg.cli.logfollow import Printer, Selector
from systemg.cli.logquery import Query
from systemg.cli.selectors import CONFIG_HELP, explicit_config
from systemg.errors import Code, SysgError
from systemg.paths import Paths


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


_REDRAW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


class _StreamOrRedraw(argparse.Action):
    """``-k``/``--kind``/``--stream LABEL`` filters by stream label (repeatable); the
    upstream's ``--stream DURATION`` (a number: labels are words) redraws instead."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        text = str(values)
        found = _REDRAW.match(text) if option_string == "--stream" else None
        if found:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[found.group(2) or "s"]
            namespace.redraw = max(0.1, float(found.group(1)) * scale)
            return
        labels = list(getattr(namespace, self.dest, None) or [])
        labels.append(text)
        setattr(namespace, self.dest, labels)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(redraw=None)
    parser.add_argument(
        "-s",
        "--service",
        action="append",
        help="service name, or project/service (repeat for several)",
    )
    parser.add_argument("-p", "--project", help="every service of this project")
    parser.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument(
        "-n",
        "-l",
        "--lines",
        type=_count,
        default=None,
        help="how many last lines to show (default 100; every line of the range with "
        "--since/--until/--all)",
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument(
        "--no-follow", dest="follow", action="store_false", help="do not follow (the default)"
    )
    parser.add_argument("--since", metavar="TIME", help="lines captured at or after TIME")
    parser.add_argument("--until", metavar="TIME", help="lines captured at or before TIME")
    parser.add_argument(
        "-g", "--grep", metavar="RE", help="lines whose text matches this Python regex"
    )
    parser.add_argument(
        "-k",
        "--kind",
        "--stream",
        action=_StreamOrRedraw,
        dest="stream",
        metavar="LABEL",
        help=f"only this stream ({', '.join(STREAM_LABELS)}); repeat for several. "
        "`--stream DURATION` (a number, e.g. 1 or 2s): redraw the last lines every "
        "DURATION until Ctrl-C, as the upstream's",
    )
    parser.add_argument(
        "-a", "--all", action="store_true", help="the whole history: rotated files, then active"
    )
    parser.add_argument("--raw", action="store_true", help="the application text only")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--path", action="store_true", help="print the log file path(s)")
    parser.add_argument(
        "--supervisor", action="store_true", help="the supervisor's own log (supervisor.log)"
    )
    parser.add_argument(
        "--purge",
        action="store_true",
        help="empty the selected logs (every service and the supervisor's when none is "
        "selected) and remove their rotated files",
    )
    parser.add_argument("--prune", action="store_true", help="remove rotated files")
    parser.add_argument("--max-size", metavar="SIZE", help="--prune: keep at most SIZE of them")
    parser.add_argument("--max-age", metavar="AGE", help="--prune: remove those older than AGE")


def run(args: argparse.Namespace) -> int:
    # Same mode rules as every command: SG0704 for --sys as non-root, the root checks, and
    # the operator fallback to a reachable system supervisor.
    from systemg.cli.mode import resolve

    _check_modes(args)
    query = _query(args)
    paths = resolve(args, "logs").paths
    explicit_config(args, paths)  # SG0203 if it is not a file; it does not narrow
    selectors = [parse_selector(args.project, s) for s in (args.service or [None])]
    out: BinaryIO = sys.stdout.buffer
    if args.supervisor:
        return _supervisor_log(out, args, paths)
    if args.path:
        return _print_paths(out, paths, selectors)
    if args.purge:
        return _purge(out, paths, selectors)
    if args.prune:
        return _prune(out, args, _select(paths, selectors))
    if args.redraw is not None:
        return _redraw(out, args, paths, selectors, query)

    if not args.follow:
        logs = _select(paths, selectors)
        printer = _printer(args, out, selectors, logs)
        n = _how_many(args, query)
        if (
            n is None
            and printer.verbatim
            and len(logs) == 1
            and query.grep is None
            and not query.streams
        ):
            # One service shown as stored, no per-line filter: copy the range's bytes.
            for chunk in logread.forward_bytes(logs[0], query):
                out.write(chunk)
            out.flush()
        elif n is None:
            printer.emit_entries(logread.merge(logread.forward(log, query) for log in logs))
        else:
            printer.emit_entries(logread.merged_last_n(logs, query, n))
        return 0
    from systemg.cli import logclient

    n = _how_many(args, query)
    n = UNBOUNDED if n is None else n
    sock = logclient.connect(paths)
    try:
        logs = _select(paths, selectors, allow_missing=sock is not None)
        printer = _printer(args, out, selectors, logs)
        # With a supervisor, subscribe (and wait for its confirmation) before reading the
        # tail, so no line falls in between; streamed lines the tail already showed are
        # skipped by timestamp.
        if sock is not None:
            selectors = logfollow.resolved(selectors, logs)
            events = logfollow.subscribe(sock, paths, selectors)
            before = {log.label: logfollow.last_ts(log) for log in logs}
            entries = logread.merged_last_n(logs, query, n)
            printer.emit_entries(entries)
            logfollow.follow_supervisor(
                events,
                printer=printer,
                seen=logfollow.seen(entries, before),
                query=query,
                wanted=lambda p, s: logfollow.wanted(selectors, p, s),
            )
        else:
            # Without one, open the followers first and end the tail where they start: a
            # line appended while the tail is read is shown once, not lost in between.
            followers = {log.label: Follower(log) for log in logs}
            printer.emit_entries(logread.merged_last_n(logs, query, n, logfollow.held(followers)))
            logfollow.follow_files(printer, paths, selectors, followers, query)
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


UNBOUNDED = sys.maxsize  # follow after the whole range: "every line" as a count


def _check_modes(args: argparse.Namespace) -> None:
    modes = [
        name
        for name, on in (("--path", args.path), ("--prune", args.prune), ("--purge", args.purge))
        if on
    ]
    if args.follow:
        modes.append("-f")
    if args.redraw is not None:
        modes.append("--stream DURATION")
    if args.supervisor and (args.service or args.project):
        raise SysgError.of(
            Code.LOGS_SUPERVISOR_SELECTOR,
            "--supervisor cannot be combined with -s or -p",
            hint="the supervisor's log is one file: `sysg logs --supervisor`; a service's: "
            "`sysg logs -s NAME`",
        )
    if len(modes) > 1:
        raise SysgError.of(
            Code.LOGS_MODE_CONFLICT,
            f"{' and '.join(modes)} cannot be combined",
            hint="show (the default), follow (-f), --path, --prune and --purge are separate "
            "modes: give one",
        )
    if args.follow and args.until:
        raise SysgError.of(
            Code.LOGS_MODE_CONFLICT,
            "-f follows new lines; --until ends them",
            path="--until",
            hint="drop -f to show the range, or --until to follow",
        )
    if (args.max_size or args.max_age) and not args.prune:
        raise SysgError.of(
            Code.USAGE,
            "--max-size and --max-age are bounds for --prune",
            hint="e.g. `sysg logs --prune --max-age 7d`",
        )
    if args.raw and args.format == "json":
        raise SysgError.of(
            Code.USAGE,
            "--raw and --format json are two different outputs",
            hint='JSON already carries the application text alone in its "line" field',
        )


def _query(args: argparse.Namespace) -> Query:
    import time as clock

    from systemg.cli.logquery import compile_grep, parse_time

    now = clock.time()
    streams = frozenset(args.stream or ())
    unknown = sorted(streams - set(STREAM_LABELS))
    if unknown:
        raise SysgError.of(
            Code.INVALID_VALUE,
            f"-k {unknown[0]!r} is not a stream label",
            path="--stream",
            hint=f"stored lines are labelled {', '.join(STREAM_LABELS)}",
        )
    return Query(
        since=parse_time(args.since, now, flag="--since") if args.since else None,
        until=parse_time(args.until, now, flag="--until") if args.until else None,
        grep=compile_grep(args.grep) if args.grep is not None else None,
        streams=streams,
    )


def _how_many(args: argparse.Namespace, query: Query) -> int | None:
    """``None``: every line of the range (``-a``, or a time range without ``-n``)."""
    if args.all:
        return None
    if args.lines is not None:
        return int(args.lines)
    return None if query.ranged else 100


def _select(
    paths: Paths, selectors: list[Selector], *, allow_missing: bool = False
) -> list[ServiceLogFile]:
    chosen: dict[str, ServiceLogFile] = {}
    for project, service in selectors:
        for log in select(paths.log_dir, project, service, allow_missing=allow_missing):
            chosen.setdefault(log.label, log)
    return list(chosen.values())


def _printer(
    args: argparse.Namespace,
    out: BinaryIO,
    selectors: list[Selector],
    logs: list[ServiceLogFile],
) -> Printer:
    # One -s names one service (an ambiguous bare name was refused).
    single = len(selectors) == 1 and bool(selectors[0][1])
    projects = {p for p, _ in selectors}
    one_project = (len(projects) == 1 and None not in projects) or len(
        {log.project for log in logs}
    ) == 1
    label = "" if single else ("service" if one_project else "project/service")
    return Printer(out, json_lines=args.format == "json", label=label, raw=args.raw)


def _prune(out: BinaryIO, args: argparse.Namespace, logs: list[ServiceLogFile]) -> int:
    import time as clock

    from systemg.cli import logprune
    from systemg.cli.logquery import parse_age, parse_size
    from systemg.views.render_status import human_bytes

    if not args.max_size and not args.max_age:
        raise SysgError.of(
            Code.LOGS_PRUNE_NO_BOUND,
            "--prune needs a bound",
            hint="say what to keep: --max-age 7d (remove older), --max-size 500M (keep at "
            "most that much), or both",
        )
    max_size = parse_size(args.max_size) if args.max_size else None
    max_age = parse_age(args.max_age) if args.max_age else None
    backups = [b for log in logs for b in logprune.backups_of(log)]
    chosen = logprune.plan(backups, max_size=max_size, max_age=max_age, now=clock.time())
    removed = logprune.remove(chosen)
    for backup in removed:
        out.write(f"removed {backup.path} ({human_bytes(backup.size)})\n".encode())
    kept = len(backups) - len(removed)
    freed = human_bytes(sum(b.size for b in removed))
    out.write(f"pruned {len(removed)} rotated file(s), {freed}; {kept} kept\n".encode())
    out.flush()
    return 0


def _print_paths(out: BinaryIO, paths: Paths, selectors: list[Selector]) -> int:
    for project, service in selectors:
        if not project and not service:
            out.write(f"{paths.log_dir}\n".encode())
            continue
        found = select(paths.log_dir, project, service, allow_missing=bool(project and service))
        for log in found:
            out.write(f"{log.path}\n".encode())
    out.flush()
    return 0


def _supervisor_log(out: BinaryIO, args: argparse.Namespace, paths: Paths) -> int:
    """``--supervisor``: the last lines of ``supervisor.log`` (``--path``: where it is;
    ``-f``: then every new line until Ctrl-C)."""
    import time as clock

    from systemg.cli.logfiles import tail

    log = paths.supervisor_log
    if args.path:
        out.write(f"{log}\n".encode())
        out.flush()
        return 0
    if not log.is_file():
        raise SysgError.of(
            Code.NOT_FOUND,
            f"no supervisor log at {log}",
            hint="a supervisor writes it from its first start: `sysg start --daemonize`",
        )
    n = 100 if args.lines is None else int(args.lines)
    with open(log, "rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        lines = tail(log, n) if n else []
        out.write(b"".join(line + b"\n" for line in lines))
        out.flush()
        if not args.follow:
            return 0
        fh.seek(end)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                else:
                    clock.sleep(0.2)
        except KeyboardInterrupt:
            return 0


def _purge(out: BinaryIO, paths: Paths, selectors: list[Selector]) -> int:
    """``--purge``: empty the selected active logs and remove their rotated files. The
    supervisor appends (``O_APPEND``), so a running service's next line lands at the start
    of the emptied file; nothing of the purged content is served again."""
    import contextlib
    import os

    from systemg.cli import logprune

    everything = all(not p and not s for p, s in selectors)
    logs = _select(paths, selectors, allow_missing=everything)
    files = [log.path for log in logs]
    if everything:
        files.append(paths.supervisor_log)
    emptied = removed = 0
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(path, 0)
            emptied += 1
    for log in logs:
        for backup in logprune.backups_of(log):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(backup.path)
                removed += 1
    what = "every log" if everything else ", ".join(log.label for log in logs)
    out.write(f"Logs purged: {what} ({emptied} emptied, {removed} rotated removed)\n".encode())
    out.flush()
    return 0


def _redraw(
    out: BinaryIO,
    args: argparse.Namespace,
    paths: Paths,
    selectors: list[Selector],
    query: Query,
) -> int:
    """``--stream DURATION``: clear the screen and show the last ``-n`` lines, again every
    DURATION, until Ctrl-C (the upstream's ``--stream``; ``-f`` appends instead)."""
    import time as clock

    n = _how_many(args, query)
    n = 100 if n is None else n
    try:
        while True:
            logs = _select(paths, selectors, allow_missing=True)
            printer = _printer(args, out, selectors, logs)
            out.write(b"\x1b[2J\x1b[H")
            printer.emit_entries(logread.merged_last_n(logs, query, n))
            out.flush()
            clock.sleep(args.redraw)
    except KeyboardInterrupt:
        return 0
