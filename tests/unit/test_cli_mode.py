"""Mode resolution rules (docs/security.md §1), decided purely from their inputs."""

from __future__ import annotations

import pytest

from systemg.cli.mode import decide, system_paths
from systemg.errors import Code, SysgError
from systemg.paths import Mode


def _decide(
    *,
    command: str = "status",
    sys_flag: bool = False,
    drop: bool = False,
    euid: int = 1000,
    environ: dict[str, str] | None = None,
    system_state: bool = False,
):
    calls: list[int] = []

    def probe() -> bool:
        calls.append(1)
        return system_state

    decision = decide(
        command=command,
        sys_flag=sys_flag,
        drop_privileges=drop,
        euid=euid,
        environ=environ or {},
        system_state=probe,
    )
    return decision, calls


def test_user_mode_for_a_normal_user_without_warnings() -> None:
    decision, calls = _decide()
    assert decision.mode is Mode.USER
    assert decision.warnings == ()
    assert calls == []  # the disk is not even looked at


def test_sys_as_non_root_is_sg0704() -> None:
    with pytest.raises(SysgError) as info:
        _decide(sys_flag=True, euid=65534)
    assert info.value.code is Code.SYS_REQUIRES_ROOT
    assert str(info.value) == "--sys requires root"
    assert "sudo sysg --sys" in info.value.hint


def test_sys_as_root_is_system_mode() -> None:
    decision, calls = _decide(sys_flag=True, euid=0, drop=True)
    assert decision.mode is Mode.SYSTEM
    assert decision.drop_privileges is True
    assert decision.warnings == ()
    assert calls == []


def test_root_without_sys_and_no_system_state_warns_sg0701_once() -> None:
    decision, _ = _decide(euid=0, environ={"HOME": "/root"})
    assert decision.mode is Mode.USER
    assert [w.code for w in decision.warnings] == [Code.ROOT_WITHOUT_SYS]
    assert decision.warnings[0].severity == "warning"
    assert "/root/.local/share/systemg" in decision.warnings[0].message


def test_sg0701_names_the_state_dir_actually_used() -> None:
    decision, _ = _decide(euid=0, environ={"HOME": "/root", "XDG_DATA_HOME": "/srv/data"})
    assert "state goes to /srv/data/systemg" in decision.warnings[0].message


@pytest.mark.parametrize("command", ["start", "status", "stop", "logs", "version"])
def test_root_without_sys_while_system_state_exists_is_sg0702(command: str) -> None:
    with pytest.raises(SysgError) as info:
        _decide(command=command, euid=0, system_state=True)
    assert info.value.code is Code.SYSTEM_STATE_EXISTS
    assert f"sudo sysg --sys {command}" in info.value.hint


def test_purge_is_excepted_from_sg0702_and_sg0701() -> None:
    decision, calls = _decide(command="purge", euid=0, system_state=True)
    assert decision.mode is Mode.USER
    assert decision.warnings == ()
    assert calls == []


def test_explicit_state_dir_skips_the_cross_mode_check() -> None:
    decision, calls = _decide(euid=0, environ={"SYSTEMG_STATE_DIR": "/tmp/x"}, system_state=True)
    assert decision.warnings == ()
    assert calls == []


def test_drop_privileges_as_non_root_is_one_warning_and_forwarded_to_be_logged() -> None:
    # The supervisor logs the same warning in supervisor.log and ignores the flag.
    decision, _ = _decide(drop=True, euid=1000)
    assert decision.drop_privileges is True
    assert len(decision.warnings) == 1
    assert decision.warnings[0].severity == "warning"
    assert "--drop-privileges" in decision.warnings[0].message


def test_drop_privileges_as_root_is_forwarded() -> None:
    decision, _ = _decide(drop=True, euid=0, environ={"SYSTEMG_STATE_DIR": "/tmp/x"})
    assert decision.drop_privileges is True


def test_system_paths_default_and_override() -> None:
    default = system_paths({"SYSTEMG_STATE_DIR": "/tmp/ignored"})
    assert str(default.state_dir) == "/var/lib/systemg"
    assert str(default.log_dir) == "/var/log/systemg"
    moved = system_paths({"SYSTEMG_SYSTEM_STATE_DIR": "/tmp/s", "SYSTEMG_SYSTEM_LOG_DIR": "/tmp/l"})
    assert str(moved.socket) == "/tmp/s/control.sock"
    assert str(moved.supervisor_log) == "/tmp/l/supervisor.log"
    assert moved.mode is Mode.SYSTEM
