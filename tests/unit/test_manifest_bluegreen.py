"""``deployment.blue_green`` (docs/manifest.md, "Blue/green"): what loads, how the placeholders
are rendered for both directions, what a launch in a slot runs, and every refusal with its
code, field path and hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.bluegreen import render, slotted
from systemg.manifest.load import load_manifest
from systemg.manifest.model import ProbeKind, Service

HEAD = 'version: "2"\nservices:\n  web:\n    command: python3 server.py\n'
BG = "services.web.deployment.blue_green"
FULL = """\
    deployment:
      strategy: rolling
      blue_green:
        slots: ["8000", "8001"]
        switch_command: sh switch.sh {active_slot} {candidate_slot} {service_name}
        candidate_health_check:
          url: "http://127.0.0.1:{slot}/health"
          interval: 1s
          retries: 4
        switch_verify:
          command: curl -fs http://127.0.0.1:{candidate_slot}/ready
          retries: 2
"""


def load(tmp_path: Path, keys: str, environ: dict[str, str] | None = None) -> Service:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + keys)
    result = load_manifest(path, environ=environ or {})
    return result.manifest.projects[0].services[0]


def load_warnings(tmp_path: Path, keys: str) -> list[Diagnostic]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + keys)
    return list(load_manifest(path, environ={}).warnings)


def refused(tmp_path: Path, keys: str) -> list[Diagnostic]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + keys)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    found = [d for d in info.value.diagnostics if d.severity == "error"]
    assert found
    assert all(d.hint for d in found), found
    return found


def test_both_directions_are_rendered_at_load(tmp_path: Path) -> None:
    bg = load(tmp_path, FULL).blue_green
    assert bg is not None
    assert bg.slots == ("8000", "8001")
    assert bg.env_var == "PORT"
    # switch[i] moves traffic to slots[i] from the other one.
    assert bg.switch == ("sh switch.sh 8001 8000 web", "sh switch.sh 8000 8001 web")
    assert bg.checks is not None
    assert [(c.kind, c.port, c.path, c.retries, c.interval_ms) for c in bg.checks] == [
        (ProbeKind.URL, 8000, "/health", 4, 1000),
        (ProbeKind.URL, 8001, "/health", 4, 1000),
    ]
    assert bg.verify is not None
    assert [v.command for v in bg.verify] == [
        "curl -fs http://127.0.0.1:8000/ready",
        "curl -fs http://127.0.0.1:8001/ready",
    ]
    assert bg.state_path is None


def test_slotted_sets_the_variable_and_the_slots_probe(tmp_path: Path) -> None:
    keys = FULL.replace(
        "    deployment:", "    env:\n      vars: {PORT: '9999', A: b}\n    deployment:"
    )
    service = load(tmp_path, keys)
    for index, port in ((0, 8000), (1, 8001)):
        launched = slotted(service, index)
        env = dict(launched.env.vars)
        assert env == {"A": "b", "PORT": str(port)}  # the slot wins over the manifest's PORT
        assert launched.health_check is not None
        assert launched.health_check.port == port
        assert launched.blue_green == service.blue_green
    plain = load(tmp_path, "    deployment: {strategy: rolling}\n")
    assert slotted(plain, 1) is plain


def test_without_a_candidate_check_the_deployment_check_stays_and_is_warned(
    tmp_path: Path,
) -> None:
    keys = (
        "    deployment:\n      strategy: rolling\n"
        "      health_check: {url: 'http://127.0.0.1:8000/'}\n"
        "      blue_green: {slots: [8000, 8001], switch_command: 'true', env_var: HTTP_PORT}\n"
    )
    service = load(tmp_path, keys)
    assert service.blue_green is not None
    assert service.blue_green.slots == ("8000", "8001")  # numbers taken as written
    assert slotted(service, 1).health_check == service.health_check
    assert dict(slotted(service, 1).env.vars)["HTTP_PORT"] == "8001"
    warned = load_warnings(tmp_path, keys)
    assert [w.path for w in warned] == ["services.web.deployment.health_check"]
    assert "{slot}" in warned[0].hint


def test_state_path_is_made_absolute(tmp_path: Path) -> None:
    keys = FULL.replace("        slots:", "        state_path: run/web.slot\n        slots:")
    bg = load(tmp_path, keys).blue_green
    assert bg is not None
    assert bg.state_path == str(tmp_path / "run" / "web.slot")


def test_unknown_placeholder_is_kept_and_warned(tmp_path: Path) -> None:
    keys = FULL.replace("{service_name}", "{servce} $${HOME}")
    bg = load(tmp_path, keys).blue_green
    assert bg is not None
    assert bg.switch[0] == "sh switch.sh 8001 8000 {servce} ${HOME}"
    warned = load_warnings(tmp_path, keys)
    assert [(w.path, "{servce}" in w.message) for w in warned] == [(f"{BG}.switch_command", True)]


@pytest.mark.parametrize(
    ("keys", "path", "words"),
    [
        (FULL.replace("rolling", "immediate"), BG, "strategy: rolling"),
        (FULL.replace("      strategy: rolling\n", ""), BG, "strategy: rolling"),
        (FULL.replace('["8000", "8001"]', '["8000"]'), f"{BG}.slots", "exactly two"),
        (FULL.replace('["8000", "8001"]', '["8000", "8000"]'), f"{BG}.slots[1]", "both slots"),
        (FULL.replace('"8001"', '"8001; rm -rf /"'), f"{BG}.slots[1]", "shell"),
        (FULL.replace('["8000", "8001"]', "8000"), f"{BG}.slots", "list"),
        (FULL.replace('        slots: ["8000", "8001"]\n', ""), f"{BG}.slots", "two slots"),
        (
            FULL.replace(
                "        switch_command: sh switch.sh {active_slot} "
                "{candidate_slot} {service_name}\n",
                "",
            ),
            f"{BG}.switch_command",
            "moves traffic",
        ),
        (
            FULL.replace("      blue_green:\n", "      blue_green:\n        env_var: 1PORT\n"),
            f"{BG}.env_var",
            "variable name",
        ),
        (
            FULL.replace("      blue_green:\n", "      blue_green:\n        slot: x\n"),
            f"{BG}.slot",
            "unknown key",
        ),
        (
            FULL.replace("http://127.0.0.1:{slot}/health", "http://127.0.0.1:{port}/health"),
            f"{BG}.candidate_health_check.url",
            "port",
        ),
        (
            FULL.replace('["8000", "8001"]', '["8000", "web"]'),
            f"{BG}.candidate_health_check.url",
            "port",
        ),
        (
            FULL.replace("          retries: 2\n", "          retries: 0\n"),
            f"{BG}.switch_verify.retries",
            "",
        ),
    ],
)
def test_refusals(tmp_path: Path, keys: str, path: str, words: str) -> None:
    found = refused(tmp_path, keys)
    assert len(found) == 1, found
    assert found[0].path == path
    assert found[0].code in (Code.INVALID_VALUE, Code.MISSING_KEY, Code.UNKNOWN_KEY)
    assert words in found[0].message + found[0].hint


def test_a_cron_job_has_no_blue_green(tmp_path: Path) -> None:
    keys = FULL + "    cron: {expression: '0 * * * * *'}\n"
    paths = [d.path for d in refused(tmp_path, keys)]
    assert "services.web.deployment.strategy" in paths


SLOT = st.text(alphabet="abc09.:-_", min_size=1, max_size=6)


@given(SLOT, SLOT, st.text(alphabet="{}$ab_", max_size=20))
def test_render_replaces_exactly_the_placeholders(candidate: str, active: str, text: str) -> None:
    template = f"{text} {{slot}}|{{active_slot}}|{{candidate_slot}}|{{service_name}}|${{slot}}"
    out = render(template, candidate=candidate, active=active, service="web")
    assert out == render(text, candidate=candidate, active=active, service="web") + " " + (
        f"{candidate}|{active}|{candidate}|web|${{slot}}"
    )


def test_socket_paths_are_slots(tmp_path: Path) -> None:
    keys = FULL.replace('["8000", "8001"]', '["/run/app-a.sock", "/run/app-b.sock"]').replace(
        'url: "http://127.0.0.1:{slot}/health"', "command: test -S {slot}"
    )
    bg = load(tmp_path, keys).blue_green
    assert bg is not None
    assert bg.switch[1] == "sh switch.sh /run/app-a.sock /run/app-b.sock web"
    assert bg.checks is not None
    assert bg.checks[0].command == "test -S /run/app-a.sock"


def test_a_refused_strategy_is_said_once(tmp_path: Path) -> None:
    found = refused(tmp_path, FULL.replace("strategy: rolling", "strategy: blue-green"))
    assert [d.path for d in found] == ["services.web.deployment.strategy"]


LIVE = "    liveness: {url: 'http://127.0.0.1:{slot}/live', interval: 1s}\n"


def test_liveness_is_rendered_per_slot(tmp_path: Path) -> None:
    service = load(tmp_path, FULL + LIVE)
    bg = service.blue_green
    assert bg is not None
    assert bg.liveness is not None
    assert [lv.probe.port for lv in bg.liveness] == [8000, 8001]
    assert service.liveness == bg.liveness[0]
    assert slotted(service, 1).liveness == bg.liveness[1]
    assert load_warnings(tmp_path, FULL + LIVE) == []


def test_a_fixed_port_liveness_is_warned_and_a_bad_one_refused(tmp_path: Path) -> None:
    fixed = LIVE.replace("{slot}", "8000")
    warned = load_warnings(tmp_path, FULL + fixed)
    assert [w.path for w in warned] == ["services.web.liveness"]
    assert "{slot}" in warned[0].hint
    bad = LIVE.replace("interval: 1s", "interval: 0s")
    assert [d.path for d in refused(tmp_path, FULL + bad)] == ["services.web.liveness.interval"]
    # Without blue_green, {slot} is no placeholder: the url is refused as written.
    plain = "    deployment: {strategy: rolling}\n" + LIVE
    assert [d.path for d in refused(tmp_path, plain)] == ["services.web.liveness.url"]
