"""The readiness keys of issue 10 (docs/manifest.md, "Service keys"): notify, watchdog,
start_timeout,
deployment.health_check and the two forms of depends_on — what loads, and every refusal with
its code, field path and position."""

from __future__ import annotations

from pathlib import Path

import pytest

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.load import load_manifest
from systemg.manifest.model import Condition, ProbeKind, ProbeSpec, Service, Strategy
from systemg.manifest.probe import parse_probe_tcp, parse_probe_url
from systemg.manifest.values import GrammarError

HEAD = 'version: "2"\nservices:\n'
HC = "services.web.deployment.health_check"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    return path


def services(tmp_path: Path, body: str) -> dict[str, Service]:
    result = load_manifest(write(tmp_path, body), environ={"PORT": "9090"})
    return {s.name: s for s in result.manifest.projects[0].services}


def web(tmp_path: Path, keys: str) -> Service:
    return services(tmp_path, "  web:\n    command: ./api\n" + keys)["web"]


def probe(tmp_path: Path, block: str) -> ProbeSpec:
    svc = web(tmp_path, f"    deployment:\n      health_check: {block}\n")
    assert svc.health_check is not None
    return svc.health_check


def problems(tmp_path: Path, body: str) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, body), environ={})
    return [d for d in info.value.diagnostics if d.severity == "error"]


def refused(tmp_path: Path, keys: str) -> list[tuple[str, str]]:
    """(code, path) of every problem of a ``web`` service with ``keys``; each has a hint."""
    found = problems(tmp_path, "  web:\n    command: ./api\n" + keys)
    assert all(d.hint for d in found), found
    return [(d.code, d.path) for d in found]


def one(tmp_path: Path, keys: str) -> Diagnostic:
    found = problems(tmp_path, "  web:\n    command: ./api\n" + keys)
    assert len(found) == 1, found
    assert found[0].hint
    return found[0]


# --- defaults and accepted values ---------------------------------------------------------


def test_defaults_leave_an_existing_service_unchanged(tmp_path: Path) -> None:
    svc = web(tmp_path, "")
    assert (svc.notify, svc.watchdog_ms, svc.start_timeout_ms) == (False, None, 90_000)
    assert svc.health_check is None
    assert svc.completed_deps == ()
    bare = Service("web", svc.argv, command=svc.command, working_dir=svc.working_dir)
    assert svc == bare


def test_notify_watchdog_start_timeout(tmp_path: Path) -> None:
    svc = web(tmp_path, "    notify: true\n    watchdog: 30s\n    start_timeout: 500ms\n")
    assert (svc.notify, svc.watchdog_ms, svc.start_timeout_ms) == (True, 30_000, 500)
    assert web(tmp_path, "    notify: false\n").notify is False


def test_health_check_defaults(tmp_path: Path) -> None:
    hc = probe(tmp_path, "{tcp: 127.0.0.1:5432}")
    assert hc == ProbeSpec(ProbeKind.TCP, host="127.0.0.1", port=5432, raw="127.0.0.1:5432")
    assert (hc.interval_ms, hc.attempt_timeout_ms, hc.total_timeout_ms, hc.retries) == (
        2000,
        30_000,
        None,
        3,
    )


def test_health_check_every_key(tmp_path: Path) -> None:
    hc = probe(
        tmp_path,
        "{url: 'http://127.0.0.1:${PORT}/healthz', interval: 500ms, attempt_timeout: 2s,"
        " total_timeout: 1m, retries: 10}",
    )
    assert (hc.kind, hc.host, hc.port, hc.path) == (ProbeKind.URL, "127.0.0.1", 9090, "/healthz")
    assert hc.raw == "http://127.0.0.1:9090/healthz"
    assert (hc.interval_ms, hc.attempt_timeout_ms, hc.total_timeout_ms, hc.retries) == (
        500,
        2000,
        60_000,
        10,
    )


def test_timeout_is_an_alias_of_total_timeout(tmp_path: Path) -> None:
    assert probe(tmp_path, "{tcp: 'localhost:80', timeout: 45s}").total_timeout_ms == 45_000
    assert probe(tmp_path, "{tcp: 'localhost:80', total_timeout: 0}").total_timeout_ms == 0


def test_command_probe(tmp_path: Path) -> None:
    hc = probe(tmp_path, "{command: 'pg_isready -q'}")
    assert (hc.kind, hc.command, hc.raw, hc.host, hc.port) == (
        ProbeKind.COMMAND,
        "pg_isready -q",
        "pg_isready -q",
        "",
        0,
    )


def test_tcp_ipv6_and_host_name(tmp_path: Path) -> None:
    assert parse_probe_tcp("[::1]:8080") == ("::1", 8080)
    assert parse_probe_tcp("db.internal:5432") == ("db.internal", 5432)
    assert parse_probe_tcp(" LocalHost:1 ") == ("localhost", 1)


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("http://127.0.0.1:8080/healthz", ("127.0.0.1", 8080, "/healthz")),
        ("http://localhost", ("localhost", 80, "/")),
        ("http://localhost/", ("localhost", 80, "/")),
        ("http://api.example:81", ("api.example", 81, "/")),
        ("http://h/ready?deep=1&x=y", ("h", 80, "/ready?deep=1&x=y")),
        ("http://h?x=1", ("h", 80, "/?x=1")),
        ("http://h/a#fragment", ("h", 80, "/a")),
        ("HTTP://Example.COM:/x", ("example.com", 80, "/x")),
        ("http://[::1]:9000/h", ("::1", 9000, "/h")),
        ("http://[::1]/", ("::1", 80, "/")),
        ("http://h/a b/é", ("h", 80, "/a%20b/%C3%A9")),
        ("http://h/%7Euser/a%20b", ("h", 80, "/%7Euser/a%20b")),
    ],
)
def test_url_parsing(url: str, parsed: tuple[str, int, str]) -> None:
    assert parse_probe_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1/", "https probes are not supported; use http or tcp"),
        ("127.0.0.1:8080/healthz", "'127.0.0.1:8080/healthz' is not a url"),
        ("ftp://h/", "'ftp://' is not a probe scheme"),
        ("http:///x", "names no host"),
        ("http://user:pw@h/", "has credentials"),
        ("http://h:0/", "port '0' is not in 1..65535"),
        ("http://h:99999/", "port '99999' is not in 1..65535"),
        ("http://h:8o/", "port '8o' is not in 1..65535"),
        ("http://::1/", "needs brackets"),
        ("http://[::g]/", "'::g' is not an IPv6 address"),
        ("http://[::1/", "unclosed '['"),
        ("http://127.0.0.256/", "'127.0.0.256' is not an IPv4 address"),
        ("http://*/", "'*' is not a host name or address"),
        ("http://a_b/", "'a_b' is not a host name or address"),
        ("http://h/a\nb", "contains a control character"),
    ],
)
def test_url_refusals(url: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_probe_url(url)
    assert message in info.value.message
    assert info.value.hint


@pytest.mark.parametrize(
    ("tcp", "message"),
    [
        ("5432", "'5432' is not a HOST:PORT address"),
        ("::1:80", "needs brackets"),
        ("*:80", "'*' is not a host name or address"),
        ("http://h:80", "is a url"),
        ("h:65536", "not in 1..65535"),
        ("h:²", "not in 1..65535"),
    ],
)
def test_tcp_refusals(tcp: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_probe_tcp(tcp)
    assert message in info.value.message


def test_depends_on_both_forms(tmp_path: Path) -> None:
    body = (
        "  db: {command: x}\n  migrate: {command: x}\n  cache: {command: x}\n"
        "  web:\n    command: x\n    depends_on:\n      - db\n"
        "      - {service: migrate, condition: completed}\n"
        "      - {service: cache, condition: started}\n"
        "      - {service: db}\n"
    )
    svc = services(tmp_path, body)["web"]
    assert svc.depends_on == ("db", "migrate", "cache")
    assert svc.completed_deps == ("migrate",)
    assert [svc.condition(d) for d in svc.depends_on] == [
        Condition.STARTED,
        Condition.COMPLETED,
        Condition.STARTED,
    ]


# --- refusals, each with its field path ---------------------------------------------------


def test_watchdog_without_notify(tmp_path: Path) -> None:
    for keys in ("    watchdog: 30s\n", "    notify: false\n    watchdog: 30s\n"):
        d = one(tmp_path, keys)
        assert (d.code, d.path) == (Code.INVALID_VALUE, "services.web.watchdog")
        assert "needs notify: true" in d.message
        assert "notify: true" in d.hint
        assert d.line == 5 + keys.count("notify")


@pytest.mark.parametrize(
    ("keys", "path"),
    [
        ("    notify: maybe\n", "services.web.notify"),
        ("    notify: true\n    watchdog: 0\n", "services.web.watchdog"),
        ("    start_timeout: 0s\n", "services.web.start_timeout"),
        ("    start_timeout: 1.5s\n", "services.web.start_timeout"),
        ("    deployment: {health_check: {tcp: 'h:1', interval: 0}}\n", f"{HC}.interval"),
        (
            "    deployment: {health_check: {tcp: 'h:1', attempt_timeout: 0}}\n",
            f"{HC}.attempt_timeout",
        ),
        ("    deployment: {health_check: {tcp: 'h:1', timeout: -1s}}\n", f"{HC}.timeout"),
        ("    deployment: {health_check: {tcp: 'h:1', retries: 0}}\n", f"{HC}.retries"),
        ("    deployment: {health_check: {tcp: 'h:1', retries: two}}\n", f"{HC}.retries"),
        ("    deployment: {health_check: {url: 'https://h/'}}\n", f"{HC}.url"),
        ("    deployment: {health_check: {tcp: 8080}}\n", f"{HC}.tcp"),
        ('    deployment: {health_check: {command: "a\\0b"}}\n', f"{HC}.command"),
        ("    deployment: {health_check: {command: ''}}\n", f"{HC}.command"),
        ("    deployment: [health_check]\n", "services.web.deployment"),
        ("    deployment: {health_check: url}\n", HC),
    ],
)
def test_invalid_values(tmp_path: Path, keys: str, path: str) -> None:
    d = one(tmp_path, keys)
    assert (d.code, d.path) == (Code.INVALID_VALUE, path)
    assert d.message.startswith(path + ": ")


def test_retries_zero(tmp_path: Path) -> None:
    d = one(tmp_path, "    deployment:\n      health_check: {tcp: 'h:1', retries: 0}\n")
    assert (d.code, d.path, d.line) == (Code.INVALID_VALUE, f"{HC}.retries", 6)
    assert "≥ 1" in d.message


def test_https_is_refused_with_its_hint(tmp_path: Path) -> None:
    d = one(tmp_path, "    deployment:\n      health_check:\n        url: https://h:443/x\n")
    assert (d.code, d.path, d.line, d.column) == (Code.INVALID_VALUE, f"{HC}.url", 7, 14)
    assert d.message == f"{HC}.url: https probes are not supported; use http or tcp"
    assert "tcp" in d.hint


def test_two_probe_kinds(tmp_path: Path) -> None:
    keys = "    deployment:\n      health_check:\n        url: http://h/\n        tcp: h:80\n"
    d = one(tmp_path, keys)
    assert (d.code, d.path, d.line) == (Code.INVALID_VALUE, f"{HC}.tcp", 8)
    assert "url and tcp are both set" in d.message
    three = keys + "        command: 'true'\n"
    d = one(tmp_path, three)
    assert "url, tcp and command are all set" in d.message


def test_two_probe_kinds_still_checks_each(tmp_path: Path) -> None:
    keys = "    deployment: {health_check: {url: 'https://h/', command: x}}\n"
    assert refused(tmp_path, keys) == [
        (Code.INVALID_VALUE, f"{HC}.url"),
        (Code.INVALID_VALUE, f"{HC}.command"),
    ]


def test_no_probe_kind(tmp_path: Path) -> None:
    d = one(tmp_path, "    deployment:\n      health_check: {interval: 2s}\n")
    assert (d.code, d.path) == (Code.MISSING_KEY, HC)
    assert "url, tcp or command" in d.message


def test_total_timeout_and_timeout_together(tmp_path: Path) -> None:
    d = one(
        tmp_path, "    deployment: {health_check: {tcp: 'h:1', total_timeout: 1s, timeout: 2s}}\n"
    )
    assert (d.code, d.path) == (Code.INVALID_VALUE, f"{HC}.timeout")
    assert "alias" in d.message


@pytest.mark.parametrize(
    ("keys", "path", "guess"),
    [
        ("    notfy: true\n", "services.web.notfy", "notify"),
        (
            "    deployment: {health_check: {tcp: 'h:1', intervall: 2s}}\n",
            f"{HC}.intervall",
            "interval",
        ),
    ],
)
def test_misspelt_keys_stay_unknown(tmp_path: Path, keys: str, path: str, guess: str) -> None:
    d = one(tmp_path, keys)
    assert (d.code, d.path) == (Code.UNKNOWN_KEY, path)
    if guess:
        assert f"did you mean '{guess}'?" in d.message


def test_strategy_and_grace_period(tmp_path: Path) -> None:
    default = web(tmp_path, "")
    assert (default.strategy, default.grace_period_ms) == (Strategy.IMMEDIATE, 5000)
    svc = web(tmp_path, "    deployment: {strategy: rolling, grace_period: 250ms}\n")
    assert (svc.strategy, svc.grace_period_ms) == (Strategy.ROLLING, 250)
    assert web(tmp_path, "    deployment: {grace_period: 0}\n").grace_period_ms == 0


def test_strategy_and_grace_period_refusals(tmp_path: Path) -> None:
    keys = "    deployment: {strategy: rollin, grace_period: 5x}\n"
    assert refused(tmp_path, keys) == [
        (Code.INVALID_VALUE, "services.web.deployment.strategy"),
        (Code.INVALID_VALUE, "services.web.deployment.grace_period"),
    ]
    assert "did you mean 'rolling'" in one(tmp_path, "    deployment: {strategy: rollin}\n").hint


def test_depends_on_refusals(tmp_path: Path) -> None:
    body = (
        "  db: {command: x}\n  web:\n    command: x\n    depends_on:\n"
        "      - {service: db, condition: complete}\n"
        "      - {condition: started}\n"
        "      - {service: db, when: now}\n"
        "      - {service: dbx}\n"
    )
    found = problems(tmp_path, body)
    assert [(d.code, d.path) for d in found] == [
        (Code.INVALID_VALUE, "services.web.depends_on[0].condition"),
        (Code.MISSING_KEY, "services.web.depends_on[1]"),
        (Code.UNKNOWN_KEY, "services.web.depends_on[2].when"),
        (Code.UNKNOWN_DEPENDENCY, "services.web.depends_on[3]"),
    ]
    assert "did you mean 'completed'?" in found[0].hint
    assert "did you mean 'db'?" in found[3].message
    assert (found[3].line, found[3].column) == (10, 19)  # the service value


def test_depends_on_conflicting_conditions(tmp_path: Path) -> None:
    body = (
        "  db: {command: x}\n  web:\n    command: x\n"
        "    depends_on: [db, {service: db, condition: completed}]\n"
    )
    found = problems(tmp_path, body)
    assert [(d.code, d.path) for d in found] == [(Code.INVALID_VALUE, "services.web.depends_on[1]")]


def test_graph_checks_see_both_forms(tmp_path: Path) -> None:
    body = (
        "  a: {command: x, depends_on: [{service: b, condition: completed}]}\n"
        "  b: {command: x, depends_on: [a]}\n"
    )
    found = problems(tmp_path, body)
    assert [(d.code, d.path) for d in found] == [(Code.DEPENDENCY_CYCLE, "services.a.depends_on")]
    assert "a -> b -> a" in found[0].message
