"""Golden strings for the ``sysg status`` table (pure: time, colour and width are inputs)."""

from __future__ import annotations

from systemg.protocol.messages import LastExit, StatusReply, UnitStatus
from systemg.views.render_status import (
    EMPTY,
    NO_MATCH,
    human_bytes,
    human_duration,
    last_exit_text,
    render_status,
)

NOW = 1_700_000_000.0


def _reply(*units: UnitStatus, health: str = "healthy") -> StatusReply:
    return StatusReply(
        captured_at=NOW, supervisor_pid=4242, mode="user", overall_health=health, units=units
    )


WEB = UnitStatus(
    project="hello",
    service="web",
    state="running",
    pid=4250,
    started_at=NOW - 192,
    restarts=0,
    cpu_percent=0.25,
    rss_bytes=19_084_492,
)
WORKER = UnitStatus(
    project="hello",
    service="worker",
    state="backoff",
    restarts=4,
    last_exit=LastExit(code=1, at=NOW - 1),
    message="exited with status 1; next start in 8s",
)


def test_empty() -> None:
    assert render_status(_reply(), now=NOW) == (
        f"supervisor pid 4242 (user mode) · healthy · 0 services\n{EMPTY}\n"
    )
    assert render_status(_reply(), now=NOW, filtered=True).endswith(f"{NO_MATCH}\n")


def test_table_golden() -> None:
    text = render_status(_reply(WEB, WORKER, health="degraded"), now=NOW)
    assert text == (
        "supervisor pid 4242 (user mode) · degraded · 2 services\n"
        "Project: hello · daemon · 2 services\n"
        "\n"
        "PROJECT  SERVICE  STATE     PID  UPTIME  RESTARTS  LAST EXIT  CPU%    RSS\n"
        "hello    web      running  4250  3m12s          0  -           0.2  18.2M\n"
        "hello    worker   backoff     -  -              4  1             -      -\n"
        "\n"
        "  hello/worker: exited with status 1; next start in 8s\n"
    )


def test_partial_enforcement_marker_and_note() -> None:
    partial = UnitStatus(
        project="p",
        service="api",
        state="running",
        pid=7,
        uptime_s=3725,
        restarts=2,
        last_exit=LastExit(signal=9),
        enforcement="partial",
        not_applied=("isolation.network: EPERM",),
    )
    assert render_status(_reply(partial), now=NOW) == (
        "supervisor pid 4242 (user mode) · healthy · 1 service\n"
        "Project: p · daemon · 1 service\n"
        "\n"
        "PROJECT  SERVICE  STATE     PID  UPTIME  RESTARTS  LAST EXIT  CPU%  RSS\n"
        "p        api      running!    7  1h02m          2  SIGKILL       -    -\n"
        "\n"
        "! partial: some requested settings were not applied (see `sysg inspect -s p/api`)\n"
    )


def test_width_clips_long_lines() -> None:
    text = render_status(_reply(WEB), now=NOW, width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert "…" in text


def test_colour_paints_state_but_keeps_alignment() -> None:
    plain = render_status(_reply(WEB), now=NOW)
    colored = render_status(_reply(WEB), now=NOW, color=True)
    assert "\x1b[32m" in colored
    stripped = colored
    for code in ("\x1b[32m", "\x1b[1m", "\x1b[0m"):
        stripped = stripped.replace(code, "")
    assert stripped == plain


def test_helpers() -> None:
    assert [human_duration(s) for s in (0, 59, 60, 3599, 3600, 90061)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "1d01h",
    ]
    assert [human_bytes(n) for n in (512, 2048, 5 * 1024**3)] == ["512B", "2.0K", "5.0G"]
    assert last_exit_text(None) == "-"
    assert last_exit_text(LastExit(code=0)) == "0"
    assert last_exit_text(LastExit(signal=15)) == "SIGTERM"
    assert last_exit_text(LastExit(signal=9, oom_killed=True)) == "oom"


def test_one_project_line_each_with_name_and_mode() -> None:
    from systemg.protocol.messages import UnitStatus
    from systemg.views.render_status import project_lines

    units = (
        UnitStatus(project="aa", service="x", state="running", project_name="AA", attached=True),
        UnitStatus(project="shop", service="web", state="running", project_name="shop"),
        UnitStatus(project="shop", service="db", state="stopped"),
    )
    assert project_lines(units) == [
        "Project: AA (aa) · foreground · 1 service",
        "Project: shop · daemon · 2 services",
    ]
