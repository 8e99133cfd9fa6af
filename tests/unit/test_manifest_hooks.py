"""The keys of issue 10 that run something around a service (docs/manifest.md, "Service keys";
docs/manifest.md, "Readiness"; docs/manifest.md, "Liveness, pre_start, hooks, skip"):
liveness, deployment.pre_start, hooks and skip — what loads, with its defaults, and every
refusal with its code, field path and position."""

from __future__ import annotations

from pathlib import Path

import pytest

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import (
    DEFAULT_HOOK_TIMEOUT_MS,
    PRE_START_TIMEOUT_MS,
    Hook,
    Hooks,
    Liveness,
    ProbeKind,
    ProbeSpec,
    Service,
)

HEAD = 'version: "2"\nservices:\n'
LV = "services.web.liveness"
HK = "services.web.hooks"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    return path


def web(tmp_path: Path, keys: str, environ: dict[str, str] | None = None) -> Service:
    result = load_manifest(write(tmp_path, "  web:\n    command: ./api\n" + keys), environ=environ)
    return {s.name: s for s in result.manifest.projects[0].services}["web"]


def problems(tmp_path: Path, keys: str) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, "  web:\n    command: ./api\n" + keys), environ={})
    found = [d for d in info.value.diagnostics if d.severity == "error"]
    assert all(d.hint and d.message.startswith(d.path + ": ") for d in found), found
    return found


def one(tmp_path: Path, keys: str) -> Diagnostic:
    found = problems(tmp_path, keys)
    assert len(found) == 1, found
    return found[0]


# --- accepted, with defaults --------------------------------------------------------------


def test_absent_keys_leave_an_existing_service_unchanged(tmp_path: Path) -> None:
    svc = web(tmp_path, "")
    assert (svc.liveness, svc.pre_start, svc.hooks) == (None, None, Hooks())
    assert (svc.skip, svc.skip_command) == (False, None)
    assert svc == Service("web", svc.argv, command=svc.command, working_dir=svc.working_dir)


def test_constants() -> None:
    assert PRE_START_TIMEOUT_MS == DEFAULT_HOOK_TIMEOUT_MS == 300_000


def test_liveness_defaults(tmp_path: Path) -> None:
    svc = web(tmp_path, "    liveness: {url: 'http://127.0.0.1:8080/healthz'}\n")
    probe = ProbeSpec(
        ProbeKind.URL,
        host="127.0.0.1",
        port=8080,
        path="/healthz",
        interval_ms=10_000,
        attempt_timeout_ms=2_000,
        raw="http://127.0.0.1:8080/healthz",
    )
    assert svc.liveness == Liveness(probe, failures=3)
    assert svc.health_check is None


def test_liveness_every_key(tmp_path: Path) -> None:
    keys = "    liveness:\n      tcp: db:5432\n      interval: 30s\n"
    keys += "      attempt_timeout: 500ms\n      failures: 1\n"
    live = web(tmp_path, keys).liveness
    assert live is not None
    assert (live.probe.kind, live.probe.host, live.probe.port) == (ProbeKind.TCP, "db", 5432)
    assert (live.probe.interval_ms, live.probe.attempt_timeout_ms) == (30_000, 500)
    assert live.failures == 1
    cmd = web(tmp_path, "    liveness: {command: pg_isready -q}\n").liveness
    assert cmd is not None
    assert (cmd.probe.kind, cmd.probe.command) == (ProbeKind.COMMAND, "pg_isready -q")


def test_liveness_and_health_check_together(tmp_path: Path) -> None:
    keys = "    deployment: {health_check: {tcp: 'h:1'}}\n    liveness: {tcp: 'h:1'}\n"
    svc = web(tmp_path, keys)
    assert svc.health_check is not None
    assert svc.liveness is not None
    assert svc.health_check.interval_ms == 2000
    assert svc.liveness.probe.interval_ms == 10_000


def test_pre_start(tmp_path: Path) -> None:
    svc = web(tmp_path, "    deployment:\n      pre_start: ./migrate.sh --up\n")
    assert svc.pre_start == "./migrate.sh --up"
    assert svc.health_check is None
    svc = web(tmp_path, "    deployment: {pre_start: './m.sh', health_check: {tcp: 'h:1'}}\n")
    assert svc.pre_start == "./m.sh"
    assert svc.health_check is not None


def test_hooks(tmp_path: Path) -> None:
    keys = (
        "    hooks:\n"
        "      onstart: {command: ./notify-up.sh, timeout: 30s}\n"
        "      onerr:   {command: ./page.sh}\n"
        "      onstop:  {command: ./cleanup.sh, timeout: 500ms}\n"
    )
    assert web(tmp_path, keys).hooks == Hooks(
        onstart=Hook("./notify-up.sh", 30_000),
        onerr=Hook("./page.sh", DEFAULT_HOOK_TIMEOUT_MS),
        onstop=Hook("./cleanup.sh", 500),
    )
    assert web(tmp_path, "    hooks: {onerr: {command: x}}\n").hooks == Hooks(onerr=Hook("x"))
    assert web(tmp_path, "    hooks: {}\n").hooks == Hooks()


@pytest.mark.parametrize(
    ("value", "skip", "command"),
    [
        ("true", True, None),
        ("false", False, None),
        ("yes", True, None),
        ('"test -f /etc/maintenance"', False, "test -f /etc/maintenance"),
        ('"${MAINT:-false}"', False, None),
        ('"${ON}"', True, None),
    ],
)
def test_skip_forms(tmp_path: Path, value: str, skip: bool, command: str | None) -> None:
    svc = web(tmp_path, f"    skip: {value}\n", environ={"ON": "true"})
    assert (svc.skip, svc.skip_command) == (skip, command)


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["retries", "total_timeout", "timeout"])
def test_liveness_refuses_readiness_budgets(tmp_path: Path, key: str) -> None:
    d = one(tmp_path, f"    liveness:\n      tcp: 'h:1'\n      {key}: 3\n")
    assert (d.code, d.path, d.line, d.column) == (Code.UNKNOWN_KEY, f"{LV}.{key}", 7, 7)
    assert "failures" in d.hint


@pytest.mark.parametrize(
    ("keys", "code", "path"),
    [
        ("    liveness: {tcp: 'h:1', failures: 0}\n", Code.INVALID_VALUE, f"{LV}.failures"),
        ("    liveness: {tcp: 'h:1', failures: x}\n", Code.INVALID_VALUE, f"{LV}.failures"),
        ("    liveness: {tcp: 'h:1', interval: 0}\n", Code.INVALID_VALUE, f"{LV}.interval"),
        (
            "    liveness: {tcp: 'h:1', attempt_timeout: 1.5s}\n",
            Code.INVALID_VALUE,
            f"{LV}.attempt_timeout",
        ),
        ("    liveness: {url: 'https://h/'}\n", Code.INVALID_VALUE, f"{LV}.url"),
        ("    liveness: {tcp: 'h:1', command: x}\n", Code.INVALID_VALUE, f"{LV}.command"),
        ("    liveness: {interval: 2s}\n", Code.MISSING_KEY, LV),
        ("    liveness: {tcp: 'h:1', intervl: 2s}\n", Code.UNKNOWN_KEY, f"{LV}.intervl"),
        ("    liveness: tcp\n", Code.INVALID_VALUE, LV),
        (
            "    deployment: {pre_start: ''}\n",
            Code.INVALID_VALUE,
            "services.web.deployment.pre_start",
        ),
        (
            '    deployment: {pre_start: "a\\0b"}\n',
            Code.INVALID_VALUE,
            "services.web.deployment.pre_start",
        ),
        (
            "    deployment: {pre_start: [a]}\n",
            Code.INVALID_VALUE,
            "services.web.deployment.pre_start",
        ),
        (
            "    deployment: {pre_start_timeout: 5s}\n",
            Code.UNKNOWN_KEY,
            "services.web.deployment.pre_start_timeout",
        ),
        ("    hooks: [onstart]\n", Code.INVALID_VALUE, HK),
        ("    hooks: {onstart: ./up.sh}\n", Code.INVALID_VALUE, f"{HK}.onstart"),
        ("    hooks: {onerr: {timeout: 5s}}\n", Code.MISSING_KEY, f"{HK}.onerr.command"),
        ("    hooks: {onerr: {command: ''}}\n", Code.INVALID_VALUE, f"{HK}.onerr.command"),
        ('    hooks: {onerr: {command: "a\\0b"}}\n', Code.INVALID_VALUE, f"{HK}.onerr.command"),
        (
            "    hooks: {onstop: {command: x, timeout: 0}}\n",
            Code.INVALID_VALUE,
            f"{HK}.onstop.timeout",
        ),
        (
            "    hooks: {onstop: {command: x, timeout: -1s}}\n",
            Code.INVALID_VALUE,
            f"{HK}.onstop.timeout",
        ),
        ("    skip: ''\n", Code.INVALID_VALUE, "services.web.skip"),
        ("    skip:\n", Code.INVALID_VALUE, "services.web.skip"),
        ("    skip: 1\n", Code.INVALID_VALUE, "services.web.skip"),
        ("    skip: [a]\n", Code.INVALID_VALUE, "services.web.skip"),
        ('    skip: "a\\0b"\n', Code.INVALID_VALUE, "services.web.skip"),
    ],
)
def test_refusals(tmp_path: Path, keys: str, code: Code, path: str) -> None:
    d = one(tmp_path, keys)
    assert (d.code, d.path, d.line) == (code, path, 5)


def test_hook_without_command_names_the_field(tmp_path: Path) -> None:
    d = one(tmp_path, "    hooks:\n      onerr:\n        timeout: 30s\n")
    assert (d.code, d.path, d.line, d.column) == (Code.MISSING_KEY, f"{HK}.onerr.command", 7, 9)
    assert d.message == f"{HK}.onerr.command: the hook has no command"
    assert "onerr: {command:" in d.hint


@pytest.mark.parametrize(
    ("keys", "path", "guess"),
    [
        ("    hooks: {onerror: {command: x}}\n", f"{HK}.onerror", "onerr"),
        ("    hooks: {on_start: {command: x}}\n", f"{HK}.on_start", "onstart"),
        ("    hooks: {onstop: {command: x, timout: 1s}}\n", f"{HK}.onstop.timout", "timeout"),
        ("    hooks: {onstop: {comand: x}}\n", f"{HK}.onstop.comand", "command"),
        ("    hook: {onstop: {command: x}}\n", "services.web.hook", "hooks"),
        ("    livenes: {tcp: 'h:1'}\n", "services.web.livenes", "liveness"),
        ("    deployment: {prestart: x}\n", "services.web.deployment.prestart", "pre_start"),
    ],
)
def test_unknown_keys_did_you_mean(tmp_path: Path, keys: str, path: str, guess: str) -> None:
    found = problems(tmp_path, keys)
    unknown = [d for d in found if d.code == Code.UNKNOWN_KEY]
    assert [d.path for d in unknown] == [path]
    assert f"did you mean '{guess}'?" in unknown[0].message


def test_every_problem_at_once(tmp_path: Path) -> None:
    keys = (
        "    liveness: {tcp: 'h:1', retries: 3, failures: 0}\n"
        "    deployment: {pre_start: ''}\n"
        "    hooks: {onstart: {timeout: 0}, onerr: {command: x, when: now}}\n"
        "    skip: ''\n"
    )
    assert [(d.code, d.path) for d in problems(tmp_path, keys)] == [
        (Code.UNKNOWN_KEY, f"{LV}.retries"),
        (Code.INVALID_VALUE, f"{LV}.failures"),
        (Code.INVALID_VALUE, "services.web.deployment.pre_start"),
        (Code.MISSING_KEY, f"{HK}.onstart.command"),
        (Code.INVALID_VALUE, f"{HK}.onstart.timeout"),
        (Code.UNKNOWN_KEY, f"{HK}.onerr.when"),
        (Code.INVALID_VALUE, "services.web.skip"),
    ]


def test_pre_start_budget_override() -> None:
    from systemg.daemon.hooks import pre_start_budget_s

    assert pre_start_budget_s({}) == PRE_START_TIMEOUT_MS / 1000.0
    assert pre_start_budget_s({"SYSG_PRE_START_TIMEOUT_SECS": "3"}) == 3.0
    for bad in ("0", "-1", "1.5", "soon", ""):
        assert pre_start_budget_s({"SYSG_PRE_START_TIMEOUT_SECS": bad}) == 300.0
