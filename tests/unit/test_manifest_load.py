"""load_manifest on valid manifests: the resolved model other layers code against."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from systemg.errors import Code, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import UNLIMITED, CpuMax, ListenKind, LogSink, RestartPolicy
from systemg.manifest.parse import loose_project_id

GOOD = Path(__file__).parents[1] / "data" / "good"


def write(tmp_path: Path, text: str, name: str = "systemg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_example_resolves_every_key() -> None:
    result = load_manifest(GOOD / "full.yaml", environ={})
    m = result.manifest
    assert next(p.id for p in m.projects) == "api"
    api = m.projects[0]
    assert api.name == "API"
    assert not api.loose
    web = api.service("web")
    db = api.service("db")
    assert web is not None
    assert db is not None
    assert web.argv == ("python3", "-m", "http.server", "8080")  # one simple command: no shell
    assert web.command == "python3 -m http.server 8080"
    assert db.argv == ("sleep", "3600")
    assert db.command is None
    assert db.restart_policy is RestartPolicy.ON_FAILURE
    assert db.backoff_ms == 500
    assert db.stop_timeout_ms == 5000
    assert web.working_dir == str(GOOD / "_files")
    assert db.working_dir == str(GOOD)
    assert web.depends_on == ("db",)
    assert web.restart_policy is RestartPolicy.ALWAYS
    assert web.max_restarts == 5
    assert web.logs.sink is LogSink.NONE
    assert web.logs.max_bytes == 2**20
    assert web.logs.max_files == 3
    assert dict(web.env.vars) == {"APP_ENV": "production", "PORT": "8080", "DEBUG": "no"}
    assert web.env.file == str(GOOD / "_files" / "api.env")
    assert dict(web.env.file_vars) == {
        "DB_HOST": "localhost",
        "DB_NAME": "app",
        "GREETING": "hello world",
    }
    assert web.env.strip == ("AWS_SECRET_ACCESS_KEY",)
    assert (web.user, web.group, web.supplementary_groups) == ("daemon", "65534", ("adm",))
    assert web.capabilities == ("CAP_NET_BIND_SERVICE", "CAP_CHOWN")
    assert db.capabilities is None
    lim = web.limits
    assert (lim.nofile, lim.nproc, lim.memlock, lim.nice) == (65536, 4096, UNLIMITED, 5)
    assert lim.cpu_affinity == (0,)
    assert lim.cgroup is not None
    assert lim.cgroup.memory_max == 512 * 2**20
    assert lim.cgroup.cpu_max == CpuMax(200_000, 100_000)
    assert lim.cgroup.root == "/sys/fs/cgroup"
    assert web.isolation.private_tmp
    assert web.isolation.no_new_privileges
    assert not web.isolation.network
    assert [s.kind for s in web.listen] == [
        ListenKind.TCP,
        ListenKind.TCP,
        ListenKind.UNIX,
        ListenKind.FD,
    ]
    loose = m.projects[1]
    assert loose.loose
    assert loose.name == "full"
    worker = loose.service("worker")
    assert worker is not None
    assert worker.depends_on == ("helper",)
    assert result.warnings == ()


def test_loose_project_id_is_stem_slug_and_path_hash(tmp_path: Path) -> None:
    path = write(tmp_path, 'version: "2"\nservices:\n  a: {command: x}\n', "my app!.yaml")
    project = load_manifest(path, environ={}).manifest.projects[0]
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    assert project.id == f"my-app--{digest}" == loose_project_id(str(path))
    assert project.name == "my app!"


def test_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 2\nservices:\n  a:\n    exec: [sleep, 1]\n")
    svc = load_manifest(path, environ={}).manifest.projects[0].services[0]
    assert svc.argv == ("sleep", "1")
    assert svc.working_dir == str(tmp_path)
    assert svc.restart_policy is RestartPolicy.NEVER
    assert (svc.backoff_ms, svc.stop_timeout_ms, svc.max_restarts) == (1000, 10_000, None)
    assert svc.env.clear_session_vars
    assert not svc.env.inherit_env
    assert svc.capabilities is None
    assert svc.limits.cgroup is None


def test_env_merge_top_project_service(tmp_path: Path) -> None:
    (tmp_path / "top.env").write_text("T=1\n")
    (tmp_path / "svc.env").write_text("S=1\n")
    path = write(
        tmp_path,
        "version: '2'\n"
        "env: {vars: {A: top, B: top}, file: top.env, strip: [X], inherit_env: true}\n"
        "projects:\n"
        "  p:\n"
        "    env: {vars: {B: project}, strip: [Y], clear_session_vars: false}\n"
        "    services:\n"
        "      one: {command: x, env: {vars: {C: svc}, strip: [X, Z]}}\n"
        "      two: {command: x, env: {file: svc.env, inherit_env: false}}\n",
    )
    p = load_manifest(path, environ={}).manifest.projects[0]
    one, two = p.services
    assert dict(one.env.vars) == {"A": "top", "B": "project", "C": "svc"}
    assert one.env.strip == ("X", "Y", "Z")
    assert one.env.file == str(tmp_path / "top.env")
    assert dict(one.env.file_vars) == {"T": "1"}
    assert one.env.inherit_env
    assert not one.env.clear_session_vars
    assert two.env.file == str(tmp_path / "svc.env")
    assert dict(two.env.file_vars) == {"S": "1"}
    assert not two.env.inherit_env


def test_logs_merge_service_over_project_over_top(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nlogs: {max_files: 9, max_bytes: 1K}\n"
        "projects:\n  p:\n    logs: {max_bytes: 2K}\n    services:\n"
        "      a: {command: x, logs: {sink: none}}\n",
    )
    logs = load_manifest(path, environ={}).manifest.projects[0].services[0].logs
    assert (logs.sink, logs.max_bytes, logs.max_files) == (LogSink.NONE, 2048, 9)


def test_variable_expansion_uses_given_environ(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nservices:\n  a:\n    command: run ${WHO}\n"
        "    limits: {nice: '${NICE}'}\n    env: {vars: {K: '${WHO}'}}\n",
    )
    svc = load_manifest(path, environ={"WHO": "me", "NICE": "3"}).manifest.projects[0].services[0]
    assert svc.argv == ("run", "me")
    assert svc.command == "run me"
    assert svc.limits.nice == 3
    assert dict(svc.env.vars) == {"K": "me"}


def test_include_splices_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "services.yaml").write_text("web: !include web.yaml\n")
    (tmp_path / "sub" / "web.yaml").write_text("command: serve\n")
    path = write(tmp_path, "version: '2'\nservices: !include sub/services.yaml\n")
    svc = load_manifest(path, environ={}).manifest.projects[0].services[0]
    assert svc.name == "web"
    assert svc.command == "serve"


def test_sandbox_keys_load_without_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nservices:\n  a:\n    command: x\n    isolation:\n"
        "      seccomp: [baseline-v1, '~@privileged']\n      seccomp_action: kill\n"
        "      address_families: ['~AF_PACKET']\n      protect_system: strict\n"
        "      protect_home: read-only\n      read_write_paths: [/var/lib/a, -/srv/a/]\n"
        "      apparmor_profile: -p\n      selinux_context: c\n",
    )
    result = load_manifest(path, environ={})
    # Only the SELinux context (no "-"): SELinux is not active here, so start would refuse it.
    assert [(w.code, w.path) for w in result.warnings] == [
        (Code.LSM, "services.a.isolation.selinux_context")
    ]
    iso = result.manifest.projects[0].services[0].isolation
    assert iso.seccomp == ("@system-service", "~@privileged")
    assert (iso.seccomp_action, iso.address_families, iso.address_families_deny) == (
        "kill",
        ("AF_PACKET",),
        True,
    )
    assert (iso.protect_system, iso.protect_home) == ("strict", "read-only")
    assert iso.read_write_paths == ("/var/lib/a", "-/srv/a")
    assert (iso.apparmor_profile, iso.selinux_context) == ("-p", "c")


def test_merge_keys_and_extension_blocks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nx-base: &base {restart_policy: always, backoff: 2s}\n"
        "services:\n  a:\n    <<: *base\n    command: x\n    backoff: 3s\n",
    )
    svc = load_manifest(path, environ={}).manifest.projects[0].services[0]
    assert svc.restart_policy is RestartPolicy.ALWAYS
    assert svc.backoff_ms == 3000


def test_capabilities_empty_list_means_none(tmp_path: Path) -> None:
    path = write(tmp_path, "version: '2'\nservices:\n  a: {command: x, capabilities: []}\n")
    assert load_manifest(path, environ={}).manifest.projects[0].services[0].capabilities == ()


def test_projects_and_loose_services_coexist(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nprojects:\n  p1: {services: {a: {command: x}}}\n"
        "  p2: {services: {a: {command: y}}}\nservices:\n  b: {command: z}\n",
    )
    ids = [p.id for p in load_manifest(path, environ={}).manifest.projects]
    assert ids[:2] == ["p1", "p2"]
    assert ids[2].startswith("systemg-")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nservices:\n  a:\n    command: x\n    backoff: 1.5s\n"
        "    limits: {nice: 99, nofle: 3}\n  b:\n    restart_policy: sometimes\n",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    found = {(d.code, d.path, d.line) for d in info.value.diagnostics}
    assert found == {
        (Code.INVALID_VALUE, "services.a.backoff", 5),
        (Code.INVALID_VALUE, "services.a.limits.nice", 6),
        (Code.UNKNOWN_KEY, "services.a.limits.nofle", 6),
        (Code.INVALID_VALUE, "services.b.restart_policy", 8),
        (Code.MISSING_KEY, "services.b", 8),
    }
    assert all(d.file == str(path) and d.hint for d in info.value.diagnostics)


def test_accepts_pathlike_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "version: '2'\nservices:\n  a: {command: x}\n")
    monkeypatch.chdir(tmp_path)
    assert load_manifest("systemg.yaml", environ=os.environ).manifest.path == str(
        tmp_path / "systemg.yaml"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("20", 20), ('"20"', 20), ("max", "max"), ('"${P}"', 64), ("4194304", 4194304)],
)
def test_cgroup_pids_max(tmp_path: Path, text: str, value: object) -> None:
    body = (
        f"version: '2'\nservices:\n  a: {{command: x, limits: {{cgroup: {{pids_max: {text}}}}}}}\n"
    )
    svc = load_manifest(write(tmp_path, body), environ={"P": "64"}).manifest.projects[0].services[0]
    assert svc.limits.cgroup is not None
    assert svc.limits.cgroup.pids_max == value


@pytest.mark.parametrize("text", ["0", "-1", "true", "1.5", "4194305", "lots", "[1]", "MAX"])
def test_cgroup_pids_max_refused(tmp_path: Path, text: str) -> None:
    body = (
        f"version: '2'\nservices:\n  a: {{command: x, limits: {{cgroup: {{pids_max: {text}}}}}}}\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, body), environ={})
    (d,) = info.value.diagnostics
    assert (d.code, d.path, d.line) == (Code.INVALID_VALUE, "services.a.limits.cgroup.pids_max", 3)
    assert "max" in d.hint


def test_bare_env_keys_are_variables_and_near_misses_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: '2'\nservices:\n"
        "  one: {command: x, env: {GREETING: hello, A: bare, vars: {A: vars}, strip: [X],"
        " PROFILE: dev, START: now, FILES: '3'}}\n",
    )
    one = load_manifest(path, environ={}).manifest.projects[0].services[0]
    assert dict(one.env.vars) == {
        "GREETING": "hello",
        "PROFILE": "dev",  # capitals: a variable, however close to profile/strip/file
        "START": "now",
        "FILES": "3",
        "A": "vars",
    }
    assert one.env.strip == ("X",)
    for typo, meant in (("varss", "vars"), ("File", "file")):
        bad = write(
            tmp_path, f"version: '2'\nservices:\n  one: {{command: x, env: {{{typo}: y}}}}\n"
        )
        with pytest.raises(ManifestError) as info:
            load_manifest(bad, environ={})
        [problem] = info.value.diagnostics
        assert problem.path == f"services.one.env.{typo}"
        assert f"did you mean '{meant}'" in problem.message
