"""``sysg top``'s decisions, pure: keys in, a new view state (and maybe a command) out.

Nothing here reads the terminal, the clock or the socket: ``commands/top.py`` feeds it the
bytes it read from the keyboard (``decode_keys``), each status snapshot (``observe``,
``with_units``) and acts on the ``Command`` that ``press`` returns. So the whole key
protocol — select with arrows or j/k, ``l`` to show or hide the log, ``r``/``s`` ask for a
confirmation that only ``y`` accepts, ``q`` quits — is tested by replaying key sequences.

The CPU and RSS history behind the sparklines lives here too, client-side: the supervisor
keeps no history and does no work for ``sysg top`` beyond answering ``status``.
Invariants: ``selected`` is always one of ``keys`` (or None when there are none); a
``Confirm`` is only ever resolved by the next key; a history never exceeds ``HISTORY``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from systemg.protocol.messages import StatusReply

UnitKey = tuple[str, str]  # (project, service)

HISTORY = 30  # samples per unit: 30 s at the default interval
SPARKS = "▁▂▃▄▅▆▇█"

# Escape sequences of the keys we use: normal and application cursor mode (``ESC O A``).
_SEQUENCES = {
    b"\x1b[A": "up",
    b"\x1bOA": "up",
    b"\x1b[B": "down",
    b"\x1bOB": "down",
    b"\x1b[H": "home",
    b"\x1bOH": "home",
    b"\x1b[F": "end",
    b"\x1bOF": "end",
}
_SINGLE = {b"\x03": "ctrl-c", b"\r": "enter", b"\n": "enter", b"\x1b": "esc"}


def decode_keys(data: bytes) -> tuple[str, ...]:
    """Bytes read from a terminal in cbreak mode → key names (``up``, ``j``, ``esc``...).

    An escape sequence we do not know is dropped whole (its ``[`` and letters are not keys).
    """
    keys: list[str] = []
    i = 0
    while i < len(data):
        for seq, name in _SEQUENCES.items():
            if data.startswith(seq, i):
                keys.append(name)
                i += len(seq)
                break
        else:
            if data.startswith(b"\x1b[", i) or data.startswith(b"\x1bO", i):
                j = i + 2
                while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                    j += 1
                i = j + 1
                continue
            byte = data[i : i + 1]
            if byte in _SINGLE:
                keys.append(_SINGLE[byte])
            elif 0x20 <= byte[0] < 0x7F:
                keys.append(byte.decode())
            i += 1
    return tuple(keys)


class Action(enum.Enum):
    RESTART = "restart"
    STOP = "stop"
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class Command:
    """What the loop must do after a key: send a request about ``key``, or quit."""

    action: Action
    key: UnitKey | None = None


@dataclass(frozen=True, slots=True)
class Confirm:
    action: Action  # RESTART or STOP
    key: UnitKey

    @property
    def prompt(self) -> str:
        return f"{self.action.value} {label(self.key)}? (y/n)"


@dataclass(frozen=True, slots=True)
class TopState:
    keys: tuple[UnitKey, ...] = ()  # the services of the last snapshot, in its order
    selected: UnitKey | None = None
    follow: bool = True  # show the selected service's log under the table
    confirm: Confirm | None = None
    notice: str = ""  # the outcome of the last action, until the next key


def label(key: UnitKey) -> str:
    return f"{key[0]}/{key[1]}"


def unit_keys(reply: StatusReply) -> tuple[UnitKey, ...]:
    """One key per service, in the reply's order (a rolling restart's second row is the
    same service, not a second one)."""
    return tuple(dict.fromkeys((u.project, u.service) for u in reply.units))


def with_units(state: TopState, keys: tuple[UnitKey, ...]) -> TopState:
    """Take a new snapshot's services: keep the selection if it is still there, else keep
    its place in the list (the service below moves up), else the first one."""
    selected = state.selected
    if selected not in keys:
        if not keys:
            selected = None
        elif selected in state.keys:
            selected = keys[min(state.keys.index(selected), len(keys) - 1)]
        else:
            selected = keys[0]
    return replace(state, keys=keys, selected=selected)


def _move(state: TopState, step: int) -> TopState:
    if not state.keys:
        return state
    if state.selected not in state.keys:
        return replace(state, selected=state.keys[0])
    i = state.keys.index(state.selected)
    i = max(0, min(len(state.keys) - 1, i + step))
    return replace(state, selected=state.keys[i])


def press(state: TopState, key: str) -> tuple[TopState, Command | None]:
    """One key. While a confirmation is asked, ``y`` carries it out and any other key
    (``n``, ``esc``, ``q``...) cancels it: a stray key never stops a service."""
    if key == "ctrl-c":
        return state, Command(Action.QUIT)
    if state.confirm is not None:
        confirm = state.confirm
        state = replace(state, confirm=None)
        if key in ("y", "Y"):
            what = "restarting" if confirm.action is Action.RESTART else "stopping"
            notice = f"{what} {label(confirm.key)}…"
            return replace(state, notice=notice), Command(confirm.action, confirm.key)
        return replace(state, notice="cancelled"), None
    state = replace(state, notice="")
    match key:
        case "q" | "Q":
            return state, Command(Action.QUIT)
        case "up" | "k":
            return _move(state, -1), None
        case "down" | "j":
            return _move(state, 1), None
        case "home" | "g":
            return _move(state, -len(state.keys)), None
        case "end" | "G":
            return _move(state, len(state.keys)), None
        case "l" | "enter":
            return replace(state, follow=not state.follow), None
        case "r" | "s" if state.selected is not None:
            action = Action.RESTART if key == "r" else Action.STOP
            return replace(state, confirm=Confirm(action, state.selected)), None
        case _:
            return state, None


def finished(state: TopState, notice: str) -> TopState:
    """An action's request was answered (``notice`` says how)."""
    return replace(state, notice=notice)


# --- history and sparklines -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Samples:
    """The last ``HISTORY`` CPU % and RSS readings of one service; None: not running."""

    cpu: tuple[float | None, ...] = ()
    rss: tuple[int | None, ...] = ()


def observe(history: Mapping[UnitKey, Samples], reply: StatusReply) -> dict[UnitKey, Samples]:
    """The history with this snapshot appended: one sample per service (its own row, not
    a rolling restart's second one); services gone from the reply are forgotten."""
    out: dict[UnitKey, Samples] = {}
    for unit in reply.units:
        key = (unit.project, unit.service)
        if key in out:
            continue
        old = history.get(key, Samples())
        out[key] = Samples(
            cpu=(*old.cpu, unit.cpu_percent)[-HISTORY:],
            rss=(*old.rss, unit.rss_bytes)[-HISTORY:],
        )
    return out


def sparkline(
    values: Iterable[float | None],
    width: int,
    *,
    floor: float | None = 0.0,
    ceiling: float | None = None,
) -> str:
    """The last ``width`` values as bars, right-aligned; a missing value is a space.

    Scaled from ``floor`` to ``ceiling`` (default: the largest value). With ``floor`` None
    the smallest value is the floor, so a small change of a large number still shows.
    """
    shown = list(values)[-width:] if width > 0 else []
    present = [v for v in shown if v is not None]
    if not present:
        return " " * width
    lo = min(present) if floor is None else floor
    hi = max(present) if ceiling is None else max(ceiling, *present)
    span = hi - lo
    bars = []
    for v in shown:
        if v is None:
            bars.append(" ")
        elif span <= 0:
            bars.append(SPARKS[0])
        else:
            level = round((v - lo) / span * (len(SPARKS) - 1))
            bars.append(SPARKS[max(0, min(len(SPARKS) - 1, level))])
    return "".join(bars).rjust(width)
