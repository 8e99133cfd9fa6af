"""build_plan without forking: identity resolution, environment rules, masks, warnings."""

from __future__ import annotations

import pytest

from systemg.errors import Code, SpawnError
from systemg.manifest.model import CgroupSpec, EnvSpec, Isolation, Limits, Service
from systemg.spawn import fault
from systemg.spawn.environ import Account, build_environment
from systemg.spawn.plan import SpawnContext, build_plan, format_cpu_list

SUPERVISOR_ENV = (
    ("PATH", "/opt/bin:/usr/bin"),
    ("SECRET", "s"),
    ("LD_PRELOAD", "x.so"),
    ("SSH_AUTH_SOCK", "/tmp/a"),
    ("DISPLAY", ":0"),
    ("XDG_SESSION_ID", "3"),
    ("LISTEN_FDS", "2"),
)
ROOT = SpawnContext(is_root=True, supervisor_env=SUPERVISOR_ENV)
USER = SpawnContext(is_root=False, supervisor_env=SUPERVISOR_ENV)


def env_of(plan) -> dict[str, str]:
    return dict(e.decode().split("=", 1) for e in plan.env)


def svc(**kwargs) -> Service:
    return Service(name="web", argv=("server", "--x"), **kwargs)


def test_plain_service_inherits_environment_minus_session_and_listen() -> None:
    plan = build_plan(svc(env=EnvSpec(vars=(("A", "1"),))), "p", USER).plan
    assert env_of(plan) == {
        "PATH": "/opt/bin:/usr/bin",
        "SECRET": "s",
        "LD_PRELOAD": "x.so",
        "A": "1",
    }
    assert plan.exec_candidates == ("/opt/bin/server", "/usr/bin/server")
    assert plan.uid is None
    assert plan.cap_mask is None
    assert plan.groups is None
    assert plan.label == "p/web"


def test_switched_service_gets_a_clean_environment() -> None:
    spec = EnvSpec(file_vars=(("F", "file"), ("A", "file")), vars=(("A", "vars"),), strip=("F",))
    plan = build_plan(svc(user="nobody", env=spec), "p", ROOT).plan
    assert env_of(plan) == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "SHELL": "/usr/sbin/nologin",
        "A": "vars",
    }
    assert (plan.uid, plan.gid, plan.groups) == (65534, 65534, (65534,))
    assert plan.cap_mask == 0  # switched, no capabilities: all five sets empty


def test_inherit_env_never_carries_loader_variables() -> None:
    env = dict(
        build_environment(
            EnvSpec(inherit_env=True, clear_session_vars=False),
            SUPERVISOR_ENV,
            Account("nobody", "/nonexistent", "/bin/false"),
            switched=True,
        )
    )
    assert env["SECRET"] == "s"
    assert env["SSH_AUTH_SOCK"] == "/tmp/a"
    assert "LD_PRELOAD" not in env
    assert "LISTEN_FDS" not in env
    assert env["PATH"] == "/opt/bin:/usr/bin"


def test_strip_spares_names_set_in_vars() -> None:
    env = dict(
        build_environment(
            EnvSpec(vars=(("SECRET", "mine"),), strip=("SECRET", "PATH")),
            SUPERVISOR_ENV,
            None,
            switched=False,
        )
    )
    assert env["SECRET"] == "mine"
    assert "PATH" not in env


def test_listen_variables_and_placeholder() -> None:
    plan = build_plan(svc(), "p", USER, inherited_fds=(7, 8), fd_names=("a", "b")).plan
    env = env_of(plan)
    assert env["LISTEN_FDS"] == "2"
    assert env["LISTEN_FDNAMES"] == "a:b"
    assert plan.env[plan.listen_pid_index] == b"LISTEN_PID="


def test_user_switch_without_root_is_permission_denied() -> None:
    with pytest.raises(SpawnError) as info:
        build_plan(svc(group="nogroup"), "p", USER)
    assert info.value.code is Code.PERMISSION_DENIED
    assert str(info.value) == (
        "PermissionDenied: service 'web' requests user/group switching "
        "but sysg is not running as root"
    )


def test_unknown_user_and_group_name_the_field() -> None:
    with pytest.raises(SpawnError) as info:
        build_plan(svc(user="no-such-user-sg"), "p", ROOT)
    assert info.value.diagnostics[0].path == "services.web.user"
    with pytest.raises(SpawnError) as info:
        build_plan(svc(user="nobody", supplementary_groups=("999999",)), "p", ROOT)
    assert info.value.diagnostics[0].path == "services.web.supplementary_groups[0]"


def test_groups_are_primary_plus_listed_only() -> None:
    plan = build_plan(svc(user="nobody", supplementary_groups=("www-data", "1")), "p", ROOT).plan
    assert plan.groups == (65534, 33, 1)


def test_capability_mask_and_lists() -> None:
    plan = build_plan(svc(user="nobody", capabilities=("CAP_NET_BIND_SERVICE",)), "p", ROOT).plan
    assert plan.cap_mask == 1 << 10
    assert plan.ambient == (10,)
    assert 10 not in plan.bounding_drop
    assert 0 in plan.bounding_drop
    assert build_plan(svc(), "p", ROOT).plan.cap_mask is None  # root keeps root's caps


def test_not_root_warns_and_skips_privileged_keys() -> None:
    service = svc(
        capabilities=("CAP_NET_BIND_SERVICE",),
        isolation=Isolation(network=True, apparmor_profile="-x", protect_system="strict"),
        limits=Limits(nofile=100, cgroup=CgroupSpec(memory_max=1 << 20)),
    )
    result = build_plan(service, "p", USER)
    assert result.not_applied == (
        "capabilities: sysg is not running as root",
        "isolation.network: sysg is not running as root",
        "isolation.protect_system: sysg is not running as root",
        "isolation.apparmor_profile: AppArmor is not active on this host "
        "(no /proc/self/attr/apparmor/)",
        "limits.cgroup: sysg is not running as root",
    )
    assert all(w.severity == "warning" for w in result.warnings)
    assert result.warnings[1].code is Code.NOT_ENFORCED
    plan = result.plan
    assert plan.cap_mask is None
    assert not plan.network
    assert plan.cgroup is None
    assert [r.value for r in plan.rlimits] == [100]  # rlimits still apply


def test_seccomp_applies_without_root_and_implies_no_new_privs() -> None:
    iso = Isolation(seccomp=("@system-service",), address_families=("AF_UNIX",))
    plan = build_plan(svc(isolation=iso), "p", USER).plan
    assert len(plan.seccomp_programs) == 2
    assert all(p and len(p) % 8 == 0 for p in plan.seccomp_programs)  # struct sock_filter[]
    assert plan.no_new_privs
    root = build_plan(svc(isolation=iso), "p", ROOT).plan  # keeps CAP_SYS_ADMIN: no NNP
    assert not root.no_new_privs
    dropped = build_plan(svc(isolation=iso, capabilities=()), "p", ROOT).plan
    assert dropped.no_new_privs


def test_lsm_key_on_a_host_without_the_lsm_fails_naming_it() -> None:
    with pytest.raises(SpawnError) as err:
        build_plan(svc(isolation=Isolation(selinux_context="u:r:t:s0")), "p", ROOT)
    diag = err.value.diagnostics[0]
    assert diag.code is Code.LSM
    assert diag.path == "services.web.isolation.selinux_context"
    assert "SELinux is not active" in diag.message


def test_drop_privileges_makes_nobody() -> None:
    ctx = SpawnContext(is_root=True, drop_privileges=True, supervisor_env=())
    plan = build_plan(svc(), "p", ctx).plan
    assert (plan.uid, plan.gid, plan.user_name) == (65534, 65534, "nobody")
    ignored = build_plan(svc(), "p", SpawnContext(False, True, ())).plan
    assert ignored.uid is None


def test_pid_namespace_implies_a_mount_namespace() -> None:
    plan = build_plan(svc(isolation=Isolation(pid=True)), "p", ROOT).plan
    assert plan.pid
    assert plan.mount


def test_fault_record_round_trips() -> None:
    data = fault.encode(fault.Step.SETUID, 1)
    assert len(data) == fault.RECORD.size
    assert fault.decode(data) == (fault.Step.SETUID, 1)
    assert fault.decode(b"") is None
    assert fault.Step.SETUID.code is Code.SETUID
    assert fault.Step.RLIMIT_NOFILE.code is Code.RLIMIT


def test_pid_namespace_records_in_either_order() -> None:
    # The intermediate's FORKED record and the service's fault come from two processes.
    forked, failed = fault.encode_forked(4242), fault.encode(fault.Step.CHDIR, 2)
    assert fault.decode_all(forked) == (4242, None)
    assert fault.decode_all(forked + failed) == (4242, (fault.Step.CHDIR, 2))
    assert fault.decode_all(failed + forked) == (4242, (fault.Step.CHDIR, 2))
    assert fault.decode_all(failed) == (None, (fault.Step.CHDIR, 2))
    assert fault.decode_all(b"") == (None, None)
    assert fault.decode_all(forked + b"\x01") == (4242, (fault.Step.INTERNAL, 0))


def test_cpu_list_format() -> None:
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


def test_the_supervisors_own_notify_socket_never_reaches_a_service() -> None:
    # A supervisor run by systemd with Type=notify has these; a service must not inherit
    # them (it would report to systemd as if it were the supervisor).
    inherited = (
        *SUPERVISOR_ENV,
        ("NOTIFY_SOCKET", "/run/systemd/notify"),
        ("WATCHDOG_USEC", "30000000"),
        ("WATCHDOG_PID", "1"),
    )
    for ctx in (
        SpawnContext(is_root=False, supervisor_env=inherited),
        SpawnContext(is_root=True, supervisor_env=inherited),
    ):
        spec = EnvSpec(inherit_env=True)
        env = (
            env_of(build_plan(svc(user="nobody", env=spec), "p", ctx).plan)
            if ctx.is_root
            else (env_of(build_plan(svc(), "p", ctx).plan))
        )
        assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} & env.keys()


def test_lsm_label_written_on_exec_where_the_lsm_is_active(monkeypatch) -> None:
    """The applying path, reviewed here since these hosts have neither LSM: the plan names the
    exact /proc/self/attr file and text the child writes just before the filters and exec."""
    from systemg.spawn import sandbox_plan

    monkeypatch.setattr(sandbox_plan, "lsm_active", lambda name: "")
    aa = build_plan(svc(isolation=Isolation(apparmor_profile="-web")), "p", ROOT).plan
    assert aa.lsm_attr == ("/proc/self/attr/apparmor/exec", "exec web")
    se = build_plan(svc(isolation=Isolation(selinux_context="u:r:web_t:s0")), "p", ROOT).plan
    assert se.lsm_attr == ("/proc/self/attr/exec", "u:r:web_t:s0")
    assert aa.not_applied == se.not_applied == ()
