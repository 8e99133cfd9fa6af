"""``cron`` and ``persistent`` (docs/manifest.md, "Scheduled jobs"): what loads, every refusal with
its field
path, and when a job is due — daylight saving time included, computed, not waited for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import CronSpec, Service
from systemg.manifest.schedule import ScheduleError, next_due, normalize

HEAD = 'version: "2"\nservices:\n'
BERLIN = ZoneInfo("Europe/Berlin")


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    return path


def job(tmp_path: Path, keys: str) -> Service:
    result = load_manifest(write(tmp_path, "  job:\n    command: ./report\n" + keys), environ={})
    return {s.name: s for s in result.manifest.projects[0].services}["job"]


def problems(tmp_path: Path, body: str) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, body), environ={})
    found = [d for d in info.value.diagnostics if d.severity == "error"]
    assert all(d.hint and d.message.startswith(d.path + ": ") for d in found), found
    return found


def one(tmp_path: Path, keys: str) -> Diagnostic:
    found = problems(tmp_path, "  job:\n    command: ./report\n" + keys)
    assert len(found) == 1, found
    return found[0]


def test_six_and_five_fields(tmp_path: Path) -> None:
    six = job(tmp_path, '    cron: {expression: "0 30 2 * * *", timezone: Europe/Berlin}\n')
    assert six.cron == CronSpec("0 30 2 * * *", "Europe/Berlin", written="0 30 2 * * *")
    five = job(tmp_path, '    cron: {expression: "*/5 * * * *"}\n    persistent: true\n')
    assert five.cron == CronSpec("0 */5 * * * *", "local", written="*/5 * * * *")
    assert five.persistent is True
    assert job(tmp_path, "    cron: {expression: '0 0 1 * * * *', timezone: UTC}\n").cron == (
        CronSpec("0 0 1 * * *", "UTC", written="0 0 1 * * * *")
    )  # a 7th (year) field `*` is tolerated, as upstream
    assert job(tmp_path, "").cron is None


@pytest.mark.parametrize(
    ("keys", "code", "path", "words"),
    [
        ('    cron: {expression: "61 * * * * *"}\n', Code.INVALID_VALUE, "cron.expression", "Bad"),
        ('    cron: {expression: "* * *"}\n', Code.INVALID_VALUE, "cron.expression", "3 fields"),
        (
            '    cron: {expression: "* * * * *", timezone: Mars/Olympus}\n',
            Code.INVALID_VALUE,
            "cron.timezone",
            "not a time zone",
        ),
        ("    cron: {timezone: UTC}\n", Code.MISSING_KEY, "cron.expression", "needs an"),
        (
            '    cron: {expression: "* * * * *", when: now}\n',
            Code.UNKNOWN_KEY,
            "cron.when",
            "unknown",
        ),
        ("    persistent: true\n", Code.INVALID_VALUE, "persistent", "cron jobs only"),
        ('    cron: {expression: "* * * * *"}\n    persistent: 2\n', Code.INVALID_VALUE, "", ""),
    ],
)
def test_refused(tmp_path: Path, keys: str, code: Code, path: str, words: str) -> None:
    found = one(tmp_path, keys)
    assert found.code in (code, Code.INVALID_VALUE)
    assert found.path.startswith("services.job." + path)
    assert words in found.message


def test_nothing_depends_on_a_job(tmp_path: Path) -> None:
    [found] = problems(
        tmp_path,
        '  job:\n    command: ./r\n    cron: {expression: "* * * * *"}\n'
        "  web:\n    command: ./w\n    depends_on: [job]\n",
    )
    assert found.code is Code.INVALID_VALUE
    assert found.path == "services.web.depends_on[0]"
    assert "'job' is a cron job" in found.message


def test_normalize() -> None:
    assert normalize("* * * * *") == "0 * * * * *"
    assert normalize(" 5  4 * * * * ") == "5 4 * * * *"
    with pytest.raises(ScheduleError):
        normalize("1 2 3 4 5 6 2030")


def runs_on(day: datetime, expression: str) -> list[datetime]:
    """Every due time of ``expression`` (Europe/Berlin) during the local calendar ``day``."""
    moment = day.replace(hour=0, minute=0, second=0, tzinfo=BERLIN)
    start = moment.astimezone(UTC)
    out = []
    current = datetime.fromtimestamp(start.timestamp() - 1, UTC)
    while True:
        current = next_due(expression, "Europe/Berlin", current)
        if current.astimezone(BERLIN).date() != day.date():
            return out
        out.append(current)


def test_spring_forward_runs_once_after_the_gap() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    [run] = runs_on(datetime(2026, 3, 29), "0 30 2 * * *")
    assert run.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    [before] = runs_on(datetime(2026, 3, 28), "0 30 2 * * *")
    assert before.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CET"


def test_fall_back_runs_once_not_twice() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice; one run.
    [run] = runs_on(datetime(2026, 10, 25), "0 30 2 * * *")
    assert run.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"
    assert run.astimezone(UTC).strftime("%H:%M") == "00:30"
    [after] = runs_on(datetime(2026, 10, 26), "0 30 2 * * *")
    assert after.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CET"


def test_an_hourly_job_keeps_its_count_across_both_transitions() -> None:
    # Wall-clock hours that exist: 23 on the spring day, 25 on the fall day (cron semantics
    # run at every existing HH:00 once — 23 and 24 runs respectively).
    assert len(runs_on(datetime(2026, 3, 29), "0 0 * * * *")) == 23
    assert len(runs_on(datetime(2026, 10, 25), "0 0 * * * *")) in (24, 25)


def test_next_due_is_strictly_after_and_in_utc_when_asked() -> None:
    at = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    assert next_due("0 0 10 * * *", "UTC", at) == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert next_due("*/3 * * * * *", "UTC", at).second == 3


def test_a_job_has_no_rolling_strategy(tmp_path: Path) -> None:
    found = one(
        tmp_path,
        '    cron: {expression: "* * * * *"}\n    deployment: {strategy: rolling}\n',
    )
    assert found.code is Code.INVALID_VALUE
    assert found.path == "services.job.deployment.strategy"
    assert job(
        tmp_path, '    cron: {expression: "* * * * *"}\n    deployment: {strategy: immediate}\n'
    ).cron


@pytest.mark.parametrize("policy", ["always", "on-failure", "never"])
def test_a_restart_policy_on_a_job_is_ignored_with_a_warning(tmp_path: Path, policy: str) -> None:
    result = load_manifest(
        write(
            tmp_path,
            '  job:\n    command: ./r\n    cron: {expression: "* * * * *"}\n'
            f"    restart_policy: {policy}\n",
        ),
        environ={},
    )
    [svc] = [s for p in result.manifest.projects for s in p.services]
    assert svc.restart_policy is Service.__dataclass_fields__["restart_policy"].default
    [warning] = result.warnings
    assert warning.severity == "warning"
    assert warning.path == "services.job.restart_policy"
    assert "ignored on a cron job" in warning.message
