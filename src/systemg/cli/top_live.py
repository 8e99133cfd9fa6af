"""``sysg top`` on a terminal: the one loop that reads keys, refreshes and redraws.

One thread, one ``select``: on the keyboard, on the connections of pending restart/stop
requests, and a timeout that is the next refresh. Decisions are ``top_state.press``;
drawing is ``top_screen.screen`` handed to ``rich.live.Live`` on the alternate screen.
The terminal is put in cbreak mode (keys one at a time, no echo; Ctrl-C still interrupts)
and restored however the loop ends, including an exception or Ctrl-C.
"""

from __future__ import annotations

import argparse
import select
import sys
import termios
import time
import tty

from rich.console import Console
from rich.live import Live

from systemg.cli.commands.top import Pending, action_request, fetch, log_tail, read_keys
from systemg.cli.console import use_color
from systemg.cli.render_top import log_pane_lines
from systemg.cli.top_screen import layout, screen
from systemg.cli.top_state import (
    Action,
    Samples,
    TopState,
    UnitKey,
    decode_keys,
    finished,
    label,
    observe,
    press,
    unit_keys,
    with_units,
)
from systemg.errors import SysgError
from systemg.paths import Paths
from systemg.protocol.messages import StatusReply, StatusRequest


def live(paths: Paths, request: StatusRequest, first: StatusReply, args: argparse.Namespace) -> int:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    console = Console(highlight=False, no_color=not use_color(args, sys.stdout))
    tty.setcbreak(fd)
    try:
        with Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as view:
            return _loop(view, console, fd, paths=paths, request=request, reply=first, args=args)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _loop(
    view: Live,
    console: Console,
    fd: int,
    *,
    paths: Paths,
    request: StatusRequest,
    reply: StatusReply,
    args: argparse.Namespace,
) -> int:
    interval: float = args.interval
    count: int = args.count
    state = with_units(TopState(), unit_keys(reply))
    history: dict[UnitKey, Samples] = observe({}, reply)
    problem = ""
    fetched = 1
    next_at = time.monotonic() + interval
    pending: list[Pending] = []
    try:
        while True:
            height = console.size.height
            lines = None
            if state.follow and state.selected is not None:
                rows = layout(len(reply.units), height, True)[1]
                lines = log_pane_lines(log_tail(paths, state.selected, rows))
            view.update(
                screen(
                    reply, state, history, lines, now=time.time(), height=height, problem=problem
                ),
                refresh=True,
            )
            if count and fetched >= count and not pending:
                return 0
            wait = max(0.0, next_at - time.monotonic())
            ready, _, _ = select.select([fd, *(p.fileno() for p in pending)], [], [], wait)
            for p in [p for p in pending if p.fileno() in ready]:
                said = p.read()
                if said is not None:
                    pending.remove(p)
                    state = finished(state, said)
                    next_at = 0.0  # show what the action did at once
            if fd in ready:
                data = read_keys(fd)
                if not data:
                    return 0  # the terminal went away
                for key in decode_keys(data):
                    state, command = press(state, key)
                    if command is None:
                        continue
                    if command.action is Action.QUIT:
                        return 0
                    assert command.key is not None
                    what = f"{command.action.value} {label(command.key)}"
                    sent = Pending.send(
                        paths, action_request(command.action.value, command.key), what
                    )
                    if isinstance(sent, str):
                        state = finished(state, sent)
                    else:
                        pending.append(sent)
            if time.monotonic() >= next_at:
                try:
                    reply = fetch(paths, request)
                except SysgError as exc:
                    problem = exc.diagnostics[0].message
                else:
                    problem = ""
                    history = observe(history, reply)
                    state = with_units(state, unit_keys(reply))
                fetched += 1
                next_at = time.monotonic() + interval
    finally:
        for p in pending:
            p.close()
