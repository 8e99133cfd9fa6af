"""The sandbox grammars (manifest.sandbox) and where protections apply (spawn.protect)."""

from __future__ import annotations

import subprocess

import pytest

from systemg.manifest import sandbox
from systemg.manifest.model import Isolation
from systemg.manifest.syscall_groups import GROUPS
from systemg.manifest.values import GrammarError
from systemg.spawn.protect import ProtectPlan, build, decides


def test_allow_list_starts_from_default_and_applies_entries_in_order() -> None:
    s = sandbox.resolve(("@system-service", "~@privileged", "sethostname"))
    assert s.allow
    assert s.permits("read")
    assert s.permits("clock_gettime")
    assert not s.permits("chown")  # in @privileged (through @chown): taken away
    assert s.permits("sethostname")  # added back by the later entry
    assert not s.permits("reboot")  # never in the list


def test_deny_list_allows_everything_else_and_later_allow_entries_take_back() -> None:
    s = sandbox.resolve(("~@mount", "~@reboot", "umount2"))
    assert not s.allow
    assert not s.permits("mount")
    assert not s.permits("reboot")
    assert s.permits("umount2")
    assert s.permits("mkdir")


def test_group_members_expand_nested_groups_like_systemd() -> None:
    members = sandbox.members("@system-service")
    assert "@basic-io" in GROUPS["@system-service"]
    assert {"read", "write", "openat", "socket", "execve"} <= members
    assert "reboot" not in members


def test_systemd_prints_the_same_members() -> None:
    """The table is systemd's own: compare one group with the installed systemd-analyze."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "@clock", "--no-pager"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip("systemd-analyze is not installed")
    listed = {
        line.strip() for line in out.stdout.splitlines()[1:] if line.strip() and "#" not in line
    }
    assert listed == set(GROUPS["@clock"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("@system-service", "@system-service"), ("~@privileged", "~@privileged"),
     (" mkdir ", "mkdir"), ("~ mkdir", "~mkdir"), ("baseline-v1", "@system-service")],
)  # fmt: skip
def test_entries(text: str, expected: str) -> None:
    assert sandbox.parse_seccomp_entry(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("@system-servic", "@system-service"), ("~@resourcs", "@resources"), ("mkdri", "mkdir")],
)
def test_unknown_names_suggest(text: str, hint: str) -> None:
    with pytest.raises(GrammarError) as err:
        sandbox.parse_seccomp_entry(text)
    assert hint in err.value.hint


def test_actions_and_errno_names() -> None:
    assert sandbox.parse_seccomp_action("errno") == ("errno", "EPERM")
    assert sandbox.parse_seccomp_action("kill") == ("kill", "EPERM")
    assert sandbox.parse_seccomp_action("EACCES") == ("errno", "EACCES")
    with pytest.raises(GrammarError):
        sandbox.parse_seccomp_action("explode")


def test_families() -> None:
    assert sandbox.parse_family("af_inet6") == "AF_INET6"
    assert sandbox.parse_family("AF_LOCAL") == "AF_UNIX"
    assert sandbox.denied_families(("AF_PACKET",), True) == (17,)
    refused = sandbox.denied_families(("AF_UNIX", "AF_INET"), False)
    assert 1 not in refused
    assert 2 not in refused
    assert 17 in refused
    assert 10 in refused
    with pytest.raises(GrammarError) as err:
        sandbox.parse_family("AF_INETT")
    assert "AF_INET" in err.value.hint


def test_protect_values() -> None:
    assert sandbox.parse_protect(True, sandbox.PROTECT_SYSTEM, "protect_system") == "true"
    assert sandbox.parse_protect("Strict", sandbox.PROTECT_SYSTEM, "protect_system") == "strict"
    with pytest.raises(GrammarError):
        sandbox.parse_protect("tmpfs", sandbox.PROTECT_SYSTEM, "protect_system")
    assert sandbox.parse_sandbox_path("-/var//cache/") == "-/var/cache"
    with pytest.raises(GrammarError):
        sandbox.parse_sandbox_path("relative/path")


def test_most_specific_path_decides() -> None:
    plan = ProtectPlan(read_only=("/", "/srv/app/conf"), keep=("/srv/app", "/proc", "/dev"))
    assert decides("/", plan)
    assert decides("/usr", plan)
    assert decides("/srvx", plan)
    assert not decides("/srv/app", plan)
    assert not decides("/srv/app/data", plan)
    assert decides("/srv/app/conf", plan)
    assert decides("/srv/app/conf/x", plan)
    assert not decides("/proc", plan)
    assert not decides("/dev/shm", plan)


def test_build_roots_and_missing_paths() -> None:
    strict = build(Isolation(protect_system="strict", read_write_paths=("/tmp",)), "s", "")
    assert strict is not None
    assert strict.read_only[0] == "/"
    assert "/tmp" in strict.keep
    assert "/proc" in strict.keep
    full = build(Isolation(protect_system="full"), "s", "")
    assert full is not None
    assert "/etc" in full.read_only
    assert "/" not in full.read_only
    assert build(Isolation(), "s", "") is None
    assert build(Isolation(read_only_paths=("-/no/such",)), "s", "") == ProtectPlan()
    from systemg.errors import SpawnError

    with pytest.raises(SpawnError) as err:
        build(Isolation(inaccessible_paths=("/no/such",)), "services.web", "")
    assert err.value.diagnostics[0].path == "services.web.isolation.inaccessible_paths[0]"
