"""The fast path of ``sysg status`` (``cli/quick.py``): which calls it takes, and that what
it computes by itself (the state root, the frame) is what the full path would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg import layout
from systemg.cli import quick
from systemg.paths import Mode, Paths
from systemg.protocol import codec
from systemg.protocol.messages import PROTOCOL_VERSION, StatusRequest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status"], (False, "table", False)),
        (["--sys", "status"], (True, "table", False)),
        (["status", "--sys"], (True, "table", False)),
        (["status", "--format", "json"], (False, "json", False)),
        (["status", "--format=table"], (False, "table", False)),
        (["status", "--format"], (False, "json", False)),  # alone: json
        (["status", "--format", "--plain"], (False, "json", True)),
        (["status", "--no-color", "--live"], (False, "table", True)),
        (["--plain", "--sys", "status"], (True, "table", True)),
    ],
)
def test_the_common_calls_take_the_fast_path(
    args: list[str], expected: tuple[bool, str, bool]
) -> None:
    assert quick.parse(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["status", "-s", "web"],
        ["status", "-p", "shop"],
        ["status", "-c", "systemg.yaml"],
        ["status", "-v"],
        ["status", "--drop-privileges"],
        ["status", "--format", "yaml"],  # argparse's error, from the full path
        ["status", "--format=yaml"],
        ["status", "--frmat", "json"],
        ["status", "status"],
        ["status", "--help"],
        ["--plain"],
        [],
        # status's own flags before the verb: argparse refuses them, so the full path says so
        ["--live", "status"],
        ["--no-color", "status"],
        ["--format", "status"],
    ],
)
def test_everything_else_takes_the_full_path(args: list[str]) -> None:
    assert quick.parse(args) is None


_segment = st.text(alphabet="abc/.", min_size=0, max_size=6)
_value = st.one_of(st.none(), st.just(""), _segment.map(lambda s: "/" + s))


@given(
    system=st.booleans(),
    home=_value,
    xdg=_value,
    state=st.one_of(_value, _segment.filter(bool)),
)
def test_the_fast_paths_state_dir_is_the_one_paths_gives(
    system: bool, home: str | None, xdg: str | None, state: str | None
) -> None:
    env = {
        k: v
        for k, v in {"HOME": home, "XDG_DATA_HOME": xdg, "SYSTEMG_STATE_DIR": state}.items()
        if v is not None
    }
    mode = Mode.SYSTEM if system else Mode.USER
    assert Path(layout.state_dir(system, env)) == Paths.for_mode(mode, env).state_dir


def test_the_frame_is_a_status_request_with_a_view() -> None:
    assert quick.PROTOCOL_VERSION == PROTOCOL_VERSION
    frame = quick.frame("status", {"view": "table", "color": True, "width": 132})
    request = codec.decode_request(frame)
    assert request == StatusRequest(view="table", color=True, width=132)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["stop"], (False, False)),
        (["--sys", "stop"], (True, False)),
        (["stop", "--plain"], (False, True)),
        (["stop", "-s", "web"], None),
        (["stop", "-p", "shop"], None),
        (["stop", "--supervisor"], None),
        (["stop", "--timeout", "0"], None),
        (["stop", "-c", "systemg.yaml"], None),
        (["stop", "stop"], None),
        (["stop", "--sys", "--sys"], None),
        (["stop", "-v"], None),
    ],
)
def test_only_a_plain_stop_takes_the_fast_path(
    args: list[str], expected: tuple[bool, bool] | None
) -> None:
    assert quick.parse_stop(args) == expected


def test_the_stop_deadline_is_the_full_paths() -> None:
    from systemg.cli.deadlines import MUTATING

    assert quick.MUTATING == MUTATING
