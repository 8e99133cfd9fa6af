"""The pure mapping of ``systemg.export``: model values -> unit lines, one rule at a time."""

from __future__ import annotations

import pytest

from systemg.export import quoting
from systemg.export.calendar import CalendarError, on_calendar
from systemg.export.project import Options, export_project
from systemg.export.units import Export
from systemg.manifest.model import (
    CronSpec,
    Hook,
    Hooks,
    Isolation,
    ListenKind,
    ListenSpec,
    Project,
    RestartPolicy,
    Service,
)


def _export(*services: Service, loose: bool = False, **options: object) -> Export:
    project = Project("p", "P", services, "/srv/p/systemg.yaml", loose=loose)
    return export_project(project, Options(**options))  # type: ignore[arg-type]


def _lines(exported: Export, unit: str) -> list[str]:
    text = next(u.text for u in exported.units if u.name == unit)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _svc(name: str = "web", **kw: object) -> Service:
    return Service(name=name, argv=("/bin/sleep", "60"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "bounding", "ambient"),
    [
        ({}, None, None),  # root, no key: keeps root's capabilities
        ({"user": "root"}, None, None),
        ({"group": "www-data"}, None, None),  # a group switch keeps uid 0
        ({"user": "www-data"}, "", None),  # non-root, no key: every set empty
        ({"user": "33"}, "", None),
        ({"user": "www-data", "capabilities": ()}, "", None),
        (
            {"capabilities": ("CAP_NET_BIND_SERVICE",)},
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BIND_SERVICE",
        ),
        (
            {"user": "nobody", "capabilities": ("CAP_NET_BIND_SERVICE", "CAP_CHOWN")},
            "CAP_NET_BIND_SERVICE CAP_CHOWN",
            "CAP_NET_BIND_SERVICE CAP_CHOWN",
        ),
    ],
)
def test_capabilities_follow_the_spawn_plan(
    kw: dict[str, object], bounding: str | None, ambient: str | None
) -> None:
    lines = _lines(_export(_svc(**kw)), "p-web.service")
    found = {k: v for k, _, v in (line.partition("=") for line in lines)}
    assert found.get("CapabilityBoundingSet") == bounding
    assert found.get("AmbientCapabilities") == ambient


@pytest.mark.parametrize(
    ("kw", "nnp"),
    [
        ({"isolation": Isolation(seccomp=("@system-service",))}, False),  # root keeps SYS_ADMIN
        ({"user": "www-data", "isolation": Isolation(seccomp=("@system-service",))}, True),
        (
            {
                "capabilities": ("CAP_SYS_ADMIN",),
                "isolation": Isolation(address_families=("AF_UNIX",)),
            },
            False,
        ),
        ({"capabilities": (), "isolation": Isolation(address_families=("AF_UNIX",))}, True),
        ({"isolation": Isolation(no_new_privileges=True)}, True),
    ],
)
def test_a_filter_implies_no_new_privileges_unless_cap_sys_admin_is_kept(
    kw: dict[str, object], nnp: bool
) -> None:
    assert ("NoNewPrivileges=yes" in _lines(_export(_svc(**kw)), "p-web.service")) is nnp


def test_seccomp_entries_keep_their_order_and_baseline_is_system_service() -> None:
    iso = Isolation(seccomp=("baseline-v1", "~@mount", "ptrace"), seccomp_action="kill")
    lines = _lines(_export(_svc(isolation=iso)), "p-web.service")
    assert [line for line in lines if line.startswith("SystemCall")] == [
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@mount",
        "SystemCallFilter=ptrace",
        "SystemCallArchitectures=native",  # an allow list denies other ABIs in sysg too
    ]  # kill is systemd's default action: no SystemCallErrorNumber=


def test_what_the_filter_guarantees_is_said_the_systemd_way() -> None:
    strict = Isolation(seccomp=("@system-service", "~@resources", "~personality"))
    lines = _lines(_export(_svc(isolation=strict)), "p-web.service")
    assert {"SystemCallArchitectures=native", "RestrictRealtime=yes", "LockPersonality=yes"} <= set(
        lines
    )
    loose = Isolation(seccomp=("~@mount",))  # a deny list: other ABIs and sched_* still pass
    lines = _lines(_export(_svc(isolation=loose)), "p-web.service")
    assert not any(
        line.startswith(("SystemCallArchitectures", "RestrictRealtime", "LockPersonality"))
        for line in lines
    )


def test_pid_namespace_is_dropped_but_its_mount_namespace_is_kept() -> None:
    exported = _export(_svc(isolation=Isolation(pid=True)))
    assert "PrivateMounts=yes" in _lines(exported, "p-web.service")
    assert [d.path for d in exported.dropped] == ["projects.p.services.web.isolation.pid"]


def test_a_completed_dependency_is_a_oneshot_and_restart_always_cannot_follow() -> None:
    migrate = _svc("migrate", restart_policy=RestartPolicy.ALWAYS)
    web = _svc(depends_on=("migrate",), completed_deps=("migrate",))
    exported = _export(migrate, web)
    lines = _lines(exported, "p-migrate.service")
    assert "Type=oneshot" in lines
    assert "RemainAfterExit=yes" in lines
    assert not [line for line in lines if line.startswith("Restart=")]
    assert exported.dropped[0].path == "projects.p.services.migrate.restart_policy"
    web_lines = _lines(exported, "p-web.service")
    assert "Requires=p-migrate.service" in web_lines
    assert "After=p-migrate.service" in web_lines


def test_max_restarts_is_a_start_limit_and_unlimited_disables_it() -> None:
    capped = _svc(restart_policy=RestartPolicy.ON_FAILURE, backoff_ms=1000, max_restarts=5)
    lines = _lines(_export(capped), "p-web.service")
    assert "StartLimitBurst=6" in lines
    assert "StartLimitIntervalSec=365s" in lines  # 5 x 1 s backoff + 6 x 60 s up
    free = _svc(restart_policy=RestartPolicy.ALWAYS)
    assert "StartLimitIntervalSec=0" in _lines(_export(free), "p-web.service")
    never = _lines(_export(_svc()), "p-web.service")
    assert "Restart=no" in never
    assert not [line for line in never if line.startswith("StartLimit")]


def test_relative_program_is_resolved_against_working_dir_and_sh_c_is_kept() -> None:
    rel = Service(name="web", argv=("./bin/api", "--port", "80"), working_dir="/srv/app")
    assert "ExecStart=/srv/app/bin/api --port 80" in _lines(_export(rel), "p-web.service")
    sh = Service(name="web", argv=("/bin/sh", "-c", "echo $HOME 5%"), command="echo $HOME 5%")
    assert 'ExecStart=/bin/sh -c "echo $$HOME 5%%"' in _lines(_export(sh), "p-web.service")


def test_env_file_values_are_inlined_below_explicit_vars_and_the_unit_is_private() -> None:
    from systemg.manifest.model import EnvSpec

    env = EnvSpec(
        vars=(("A", "explicit"),),
        file="/srv/p/app.env",
        file_vars=(("A", "from-file"), ("B", "b")),
        strip=("A", "SECRET"),
    )
    exported = _export(_svc(env=env))
    lines = _lines(exported, "p-web.service")
    assert 'Environment="A=explicit"' in lines
    assert 'Environment="B=b"' in lines
    assert "UnsetEnvironment=SECRET" in lines  # strip never removes a var set in env.vars
    assert exported.units[0].mode == 0o600


def test_listen_names_unresolvable_hosts_and_fd_entries() -> None:
    listen = (
        ListenSpec(ListenKind.TCP, "db.internal:5432", host="db.internal", port=5432),
        ListenSpec(ListenKind.UNIX, "unix:/run/web.sock", path="/run/web.sock"),
        ListenSpec(ListenKind.FD, "fd:web", fd_name="web"),
    )
    exported = _export(_svc(user="www-data", group="www-data", listen=listen))
    sock = _lines(exported, "p-web.socket")
    assert "ListenStream=/run/web.sock" in sock
    assert "SocketUser=www-data" in sock
    assert "SocketGroup=www-data" in sock
    assert "FileDescriptorName=web" in sock
    assert [d.path for d in exported.dropped] == [
        "projects.p.services.web.listen[0]",
        "projects.p.services.web.listen[2]",
    ]
    resolved = _export(
        _svc(listen=listen[:1]), resolve_host=lambda h: "10.0.0.5" if h == "db.internal" else None
    )
    assert "ListenStream=10.0.0.5:5432" in _lines(resolved, "p-web.socket")


def test_a_socket_with_no_usable_entry_leaves_its_comments_in_the_service() -> None:
    exported = _export(_svc(listen=(ListenSpec(ListenKind.FD, "fd:0", fd_name="0"),)))
    assert [u.name for u in exported.units] == ["p-web.service", "p.target"]
    text = exported.units[0].text
    assert "# sysg: projects.p.services.web.listen[0] = fd:0: no systemd equivalent" in text
    assert "Requires=" not in text


def test_hooks_skip_and_their_environment() -> None:
    hooks = Hooks(onerr=Hook("page.sh"), onstop=Hook("cleanup.sh", timeout_ms=5000))
    exported = _export(_svc(hooks=hooks, skip_command="test -f /maint"), loose=True)
    lines = _lines(exported, "p-web.service")
    stop = [line for line in lines if line.startswith("ExecStopPost=")]
    assert stop[0].startswith("ExecStopPost=-/usr/bin/env SYSG_SERVICE_NAME=web SYSG_PROJECT=p")
    assert '"$$SERVICE_RESULT" != success' in stop[0].replace('\\"', '"')
    assert stop[1].endswith("/bin/sh -c cleanup.sh")
    assert [d.path for d in exported.dropped] == ["services.web.hooks.onstop.timeout"]
    cond = next(line for line in lines if line.startswith("ExecCondition="))
    assert "if test -f /maint\\nthen exit 1\\nfi\\nexit 0" in cond


def test_a_cron_job_is_a_oneshot_started_by_its_timer_only() -> None:
    job = _svc("report", cron=CronSpec("0 30 2 * * *", "UTC", "30 2 * * *"), persistent=True)
    exported = _export(job)
    assert "Type=oneshot" in _lines(exported, "p-report.service")
    assert "TimeoutStartSec=infinity" in _lines(exported, "p-report.service")
    timer = _lines(exported, "p-report.timer")
    assert "OnCalendar=*-*-* 02:30:00 UTC" in timer
    assert "Persistent=yes" in timer
    assert "Wants=p-report.timer" in _lines(exported, "p.target")


def test_a_cron_rule_systemd_cannot_write_drops_the_timer_with_a_comment() -> None:
    with pytest.raises(CalendarError):
        on_calendar("0 0 0 */2 * 5L", "UTC")  # cron's AND of a day list and a last weekday
    on_calendar("0 0 0 1,2 * 5L", "UTC")  # either day: two expressions, fine
    job = _svc("odd", cron=CronSpec("0 0 0 */2 * 5L", "UTC"))
    exported = _export(job)
    assert [u.name for u in exported.units] == ["p-odd.service", "p.target"]
    assert exported.dropped[0].path == "projects.p.services.odd.cron.expression"


@pytest.mark.parametrize(
    ("arg", "written"),
    [
        ("plain", "plain"),
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("two words", '"two words"'),
        ("$HOME", '"$$HOME"'),
        ("100%", '"100%%"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("bell\x07", '"bell\\x07"'),
        (";", "\\;"),
        ("", '""'),
    ],
)
def test_exec_words(arg: str, written: str) -> None:
    assert quoting.exec_word(arg) == written


def test_a_first_word_that_looks_like_a_systemd_prefix_is_quoted() -> None:
    assert quoting.exec_line(["-weird", "-x"]) == '"-weird" -x'
    assert quoting.exec_line(["/bin/true"], "-") == "-/bin/true"


def test_environment_assignments_are_quoted_without_dollar_doubling() -> None:
    assert quoting.assignment("A", 'x $y "z" 5%') == '"A=x $y \\"z\\" 5%%"'


def test_free_text_and_control_characters_never_break_a_unit_line() -> None:
    project = Project("p", "Two\nlines 100%", (_svc(working_dir="/srv/a\nb"),), "/m.yaml")
    exported = export_project(project)
    target = exported.units[-1].text
    assert "Description=sysg project p (Two lines 100%%)\n" in target
    service = exported.units[0].text
    assert "WorkingDirectory=" not in service
    assert [d.path for d in exported.dropped] == ["p-web.service: WorkingDirectory"]
    assert all(line.startswith(("#", "[", "")) or "=" in line for line in service.splitlines())


def test_blue_green_runs_in_its_first_slot_and_the_switch_is_dropped() -> None:
    from systemg.manifest.model import BlueGreen, EnvSpec, ProbeKind, ProbeSpec, Strategy

    checks = tuple(
        ProbeSpec(ProbeKind.URL, host="127.0.0.1", port=p, raw=f"http://127.0.0.1:{p}/")
        for p in (8001, 8002)
    )
    bg = BlueGreen(
        slots=("8001", "8002"),
        switch_command="sh switch.sh {candidate_slot}",
        switch=("sh switch.sh 8001", "sh switch.sh 8002"),
        env_var="HTTP_PORT",
        checks=(checks[0], checks[1]),
    )
    svc = _svc(
        env=EnvSpec(vars=(("HTTP_PORT", "1"), ("A", "a"))),
        strategy=Strategy.ROLLING,
        blue_green=bg,
    )
    exported = _export(svc)
    lines = _lines(exported, "p-web.service")
    assert 'Environment="HTTP_PORT=8001"' in lines
    assert 'Environment="HTTP_PORT=1"' not in lines
    assert 'Environment="A=a"' in lines
    dropped = {d.path: d for d in exported.dropped}
    where = "projects.p.services.web.deployment"
    assert set(dropped) == {f"{where}.strategy", f"{where}.blue_green", f"{where}.health_check"}
    assert "http://127.0.0.1:8001/" in dropped[f"{where}.health_check"].value
    assert "slot 8001" in dropped[f"{where}.blue_green"].reason
