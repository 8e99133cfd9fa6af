"""``sysg top``'s pure parts: keys, the selection/confirmation state machine, the history,
sparklines, the plain table and the rich screen (printed on a Console writing to a string).
"""

from __future__ import annotations

import io

from systemg.cli.commands.top import outcome
from systemg.cli.render_top import COLUMNS, log_text, render_plain, top_row
from systemg.cli.top_screen import HELP, layout, screen, window
from systemg.cli.top_state import (
    HISTORY,
    Action,
    Command,
    Confirm,
    Samples,
    TopState,
    decode_keys,
    observe,
    press,
    sparkline,
    unit_keys,
    with_units,
)
from systemg.protocol.messages import LastExit, StatusReply, UnitStatus

WEB = ("demo", "web")
DB = ("demo", "db")
JOB = ("demo", "job")


def reply(*units: UnitStatus, health: str = "healthy") -> StatusReply:
    return StatusReply(captured_at=1000.0, supervisor_pid=42, overall_health=health, units=units)


def unit(service: str, **kw: object) -> UnitStatus:
    base: dict[str, object] = {
        "project": "demo",
        "service": service,
        "state": "running",
        "pid": 100,
        "uptime_s": 75.0,
        "cpu_percent": 1.5,
        "rss_bytes": 18 * 1024 * 1024,
    }
    base.update(kw)
    return UnitStatus(**base)  # type: ignore[arg-type]


def replay(state: TopState, keys: str | list[str]) -> tuple[TopState, list[Command]]:
    commands = []
    for key in keys:
        state, command = press(state, key)
        if command is not None:
            commands.append(command)
    return state, commands


THREE = with_units(TopState(), (WEB, DB, JOB))


# --- keys -------------------------------------------------------------------------------


def test_decode_keys_arrows_letters_and_unknown_sequences() -> None:
    assert decode_keys(b"\x1b[A\x1b[Bjk") == ("up", "down", "j", "k")
    assert decode_keys(b"\x1bOA\x1bOB") == ("up", "down")  # application cursor mode
    assert decode_keys(b"\x1b[15~q") == ("q",)  # F5: dropped whole
    assert decode_keys(b"\x1b") == ("esc",)
    assert decode_keys(b"\r\x03\x7f") == ("enter", "ctrl-c")


# --- selection and confirmation ---------------------------------------------------------


def test_first_snapshot_selects_the_first_service() -> None:
    assert THREE.selected == WEB
    assert with_units(TopState(), ()).selected is None


def test_arrows_and_jk_move_and_stop_at_the_ends() -> None:
    state, _ = replay(THREE, ["down", "j"])
    assert state.selected == JOB
    state, _ = replay(state, ["down"])
    assert state.selected == JOB
    state, _ = replay(state, ["k", "up", "up"])
    assert state.selected == WEB
    state, _ = replay(state, ["G"])
    assert state.selected == JOB
    state, _ = replay(state, ["home"])
    assert state.selected == WEB


def test_selection_survives_a_new_snapshot_and_a_removed_service() -> None:
    state, _ = replay(THREE, "j")
    assert with_units(state, (JOB, DB, WEB)).selected == DB  # same service, new place
    gone = with_units(state, (WEB, JOB))
    assert gone.selected == JOB  # the one below moved up into its place
    assert with_units(gone, ()).selected is None


def test_restart_needs_y_and_names_the_selected_service() -> None:
    state, commands = replay(THREE, "jr")
    assert state.confirm == Confirm(Action.RESTART, DB)
    assert state.confirm.prompt == "restart demo/db? (y/n)"
    assert commands == []
    state, commands = replay(state, "y")
    assert commands == [Command(Action.RESTART, DB)]
    assert state.confirm is None
    assert state.notice == "restarting demo/db…"


def test_any_key_but_y_cancels_even_q_and_down() -> None:
    for key in ["n", "esc", "q", "down", "s"]:
        state, commands = replay(THREE, ["s", key])
        assert commands == [], key
        assert state.confirm is None
        assert state.notice == "cancelled"
        assert state.selected == WEB  # the cancelling key did nothing else


def test_stop_confirmed_quit_and_ctrl_c() -> None:
    _, commands = replay(THREE, "sy")
    assert commands == [Command(Action.STOP, WEB)]
    assert replay(THREE, "q")[1] == [Command(Action.QUIT)]
    assert replay(THREE, ["r", "ctrl-c"])[1] == [Command(Action.QUIT)]


def test_no_action_without_a_service_and_l_toggles_the_log() -> None:
    empty = with_units(TopState(), ())
    assert replay(empty, "ry") == (empty, [])
    state, _ = replay(THREE, "l")
    assert state.follow is False
    assert replay(state, "l")[0].follow is True


# --- history and sparklines -------------------------------------------------------------


def test_history_keeps_the_last_samples_and_forgets_gone_services() -> None:
    history: dict = {}
    for i in range(HISTORY + 5):
        history = observe(history, reply(unit("web", cpu_percent=float(i), rss_bytes=i)))
    assert len(history[WEB].cpu) == HISTORY
    assert history[WEB].cpu[-1] == HISTORY + 4.0
    # A rolling restart's second row does not add a second sample.
    history = observe(history, reply(unit("web"), unit("web", state="starting", pid=7)))
    assert history[WEB].cpu[-1] == 1.5
    assert observe(history, reply(unit("db"))).keys() == {DB}


def test_sparkline() -> None:
    assert sparkline([0, 50, 100], 3, ceiling=100) == "▁▅█"
    assert sparkline([1, 2], 4, ceiling=100) == "  ▁▁"  # right-aligned, idle stays low
    assert sparkline([None, 10, None], 3, ceiling=100) == " ▂ "
    assert sparkline([], 3) == "   "
    assert sparkline([100, 101, 102], 3, floor=None) == "▁▅█"  # from its own minimum
    assert sparkline([5, 5], 2, floor=None) == "▁▁"
    assert sparkline(range(10), 4, ceiling=9) == "▆▆▇█"


# --- rendering --------------------------------------------------------------------------


def test_row_cells() -> None:
    cells = top_row(
        unit("web", restarts=2, last_exit=LastExit(signal=9)),
        Samples(cpu=(0.0, 100.0), rss=(1, 2)),
        now=0.0,
        spark_width=3,
    )
    assert dict(zip(COLUMNS, cells, strict=True)) == {
        "SERVICE": "demo/web",
        "STATE": "running",
        "HEALTH": "-",
        "PID": "100",
        "CPU%": "1.5",
        "CPU HISTORY": " ▁█",
        "RSS": "18.0M",
        "RSS HISTORY": " ▁█",
        "RESTARTS": "2",
        "LAST EXIT": "SIGKILL",
        "UPTIME": "1m15s",
    }
    stopped = top_row(unit("db", state="stopped", pid=None, cpu_percent=None), None, 0.0)
    assert stopped[3:5] == ("-", "-")


def test_plain_snapshot_is_a_header_a_table_and_a_blank_line() -> None:
    snap = reply(unit("web"), unit("db", state="backoff", pid=None, cpu_percent=None))
    text = render_plain(snap, observe({}, snap), now=1000.0)
    lines = text.split("\n")
    assert lines[0].startswith("sysg top · ")
    assert lines[0].endswith("supervisor pid 42 (user mode) · healthy · 2 services")
    assert lines[1].split()[:3] == ["SERVICE", "STATE", "HEALTH"]
    assert lines[2].split()[:4] == ["demo/web", "running", "-", "100"]
    assert lines[3].split()[:4] == ["demo/db", "backoff", "-", "-"]
    assert text.endswith("\n\n")
    assert "No units being supervised" in render_plain(reply(), {}, now=0.0)


def test_log_text_shortens_the_stored_timestamp() -> None:
    assert log_text(b"2026-05-14T02:03:04.000005Z stdout hello\n") == "02:03:04 stdout hello"
    assert log_text(b"not a stored line") == "not a stored line"
    # Shown, never obeyed: a service cannot move the cursor or recolour the screen.
    assert log_text(b"\x1b[2Jred\rbell\x07\ttab\xc2\x9b") == "^[[2Jred^Mbell^G    tab\ufffd"


def test_outcome_prefers_the_first_problem() -> None:
    assert outcome("restart demo/web", {"message": "Service 'web' restarted"}) == (
        "Service 'web' restarted"
    )
    failed = {"message": "x", "problems": [{"message": "exited with status 1"}]}
    assert outcome("restart demo/web", failed) == "restart demo/web: exited with status 1"


def printed(renderable: object, width: int = 110, height: int = 20) -> list[str]:
    from rich.console import Console

    sink = io.StringIO()
    console = Console(file=sink, width=width, height=height, color_system=None, highlight=False)
    console.print(renderable)
    return sink.getvalue().splitlines()


def test_layout_and_window() -> None:
    assert layout(2, 20, True) == (2, 13)  # 20 - header, columns, footer - 2 borders - 2 rows
    assert layout(50, 20, True) == (12, 3)  # the log keeps MIN_LOG lines
    assert layout(50, 20, False) == (17, 0)
    assert window(5, 0, 10) == (0, 5)
    assert window(50, 0, 10) == (0, 10)
    assert window(50, 25, 10) == (20, 30)
    assert window(50, 49, 10) == (40, 50)


def test_screen_shows_table_log_pane_and_prompt() -> None:
    snap = reply(unit("web", pid=4250), unit("db", pid=4251))
    state, _ = replay(with_units(TopState(), unit_keys(snap)), "jr")
    lines = printed(
        screen(snap, state, observe({}, snap), ["12:00:00 stdout hi"], now=1000.0, height=20)
    )
    assert len(lines) == 20
    assert "supervisor pid 42 (user mode) · healthy · 2 services" in lines[0]
    assert lines[1].split()[:4] == ["SERVICE", "STATE", "HEALTH", "PID"]
    assert lines[2].split()[:4] == ["demo/web", "running", "-", "4250"]
    assert lines[3].split()[:4] == ["demo/db", "running", "-", "4251"]
    assert lines[4].startswith("╭─ log · demo/db ")
    assert "12:00:00 stdout hi" in lines[5]
    assert lines[-1] == "restart demo/db? (y/n)"


def test_screen_without_log_pane_and_with_a_problem() -> None:
    snap = reply(unit("web"))
    state = replace_follow(with_units(TopState(), unit_keys(snap)))
    lines = printed(
        screen(snap, state, {}, None, now=0.0, height=10, problem="supervisor went away")
    )
    assert lines[0].endswith("· supervisor went away")
    assert not any(line.startswith("╭─ log") for line in lines)
    assert lines[-1] == HELP
    assert (
        "No units being supervised"
        in printed(screen(reply(), TopState(), {}, None, now=0.0, height=10))[1]
    )


def replace_follow(state: TopState) -> TopState:
    return replay(state, "l")[0]
