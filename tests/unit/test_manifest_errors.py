"""One test per diagnostic code the manifest layer emits, checking code, path, line and hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.load import load_manifest

IS_ROOT = os.geteuid() == 0
HEAD = "version: '2'\nservices:\n"


def problems(path: Path, environ: dict[str, str] | None = None, **kw: bool) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ=environ or {}, **kw)
    assert all(d.severity == "error" for d in info.value.diagnostics if d.code != Code.NOT_ENFORCED)
    return list(info.value.diagnostics)


def only(path: Path, code: Code, **kw: bool) -> Diagnostic:
    found = problems(path, **kw)
    assert [d.code for d in found] == [code], found
    assert found[0].hint
    return found[0]


def manifest(tmp_path: Path, body: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_config_unreadable(tmp_path: Path) -> None:
    d = only(tmp_path / "missing.yaml", Code.CONFIG_UNREADABLE)
    assert "no such file" in d.message
    assert only(tmp_path, Code.CONFIG_UNREADABLE).message.endswith("is a directory")


def test_include_missing_carries_chain(tmp_path: Path) -> None:
    manifest(tmp_path, "command: x\nenv: !include nope.yaml\n", "a.yaml")
    path = manifest(tmp_path, HEAD + "  web: !include a.yaml\n")
    d = only(path, Code.INCLUDE_MISSING)
    assert "m.yaml -> a.yaml -> nope.yaml" in d.message
    assert (d.file, d.line) == (str(tmp_path / "a.yaml"), 2)


def test_include_cycle_shows_chain(tmp_path: Path) -> None:
    manifest(tmp_path, "command: x\nenv: !include b.yaml\n", "a.yaml")
    manifest(tmp_path, "vars: !include a.yaml\n", "b.yaml")
    path = manifest(tmp_path, HEAD + "  web: !include a.yaml\n")
    d = only(path, Code.INCLUDE_CYCLE)
    assert "a.yaml -> b.yaml -> a.yaml" in d.message


def test_include_depth_limit(tmp_path: Path) -> None:
    for i in range(12):
        manifest(tmp_path, f"!include f{i + 1}.yaml\n", f"f{i}.yaml")
    manifest(tmp_path, "command: x\n", "f12.yaml")
    path = manifest(tmp_path, HEAD + "  web: !include f0.yaml\n")
    assert "deeper than 10" in only(path, Code.INCLUDE_LIMIT).message


def test_include_total_size_limit(tmp_path: Path) -> None:
    filler = "# " + "x" * 1000 + "\n"
    manifest(tmp_path, filler * 3500 + "command: x\n", "big.yaml")
    path = manifest(tmp_path, HEAD + "".join(f"  s{i}: !include big.yaml\n" for i in range(3)))
    only(path, Code.INCLUDE_LIMIT)


def test_invalid_value(tmp_path: Path) -> None:
    d = only(
        manifest(tmp_path, HEAD + "  web:\n    command: x\n    max_restarts: lots\n"),
        Code.INVALID_VALUE,
    )
    assert (d.path, d.line, d.column) == ("services.web.max_restarts", 5, 19)


def test_invalid_yaml_has_position(tmp_path: Path) -> None:
    d = only(manifest(tmp_path, HEAD + "  web: [unclosed\n"), Code.INVALID_YAML)
    assert d.line is not None
    assert d.column is not None


def test_invalid_yaml_tabs_hint(tmp_path: Path) -> None:
    d = only(manifest(tmp_path, HEAD + "  web:\n\tcommand: x\n"), Code.INVALID_YAML)
    assert "tabs" in d.hint
    assert d.line == 4


def test_alias_bomb_refused_without_expanding(tmp_path: Path) -> None:
    lines = ["version: '2'", "l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 12)]
    lines += ["services:", "  web: {command: x, env: {strip: *l11}}"]
    d = only(manifest(tmp_path, "\n".join(lines) + "\n"), Code.INVALID_YAML)
    assert "alias" in d.message


def test_unknown_key_did_you_mean_at_every_depth(tmp_path: Path) -> None:
    body = (
        "version: '2'\nservice: {}\nprojects:\n  p:\n    servics: {}\n    services:\n"
        "      web:\n        comand: x\n        command: x\n"
        "        limits: {nofle: 1, cgroup: {memory_mx: 1}}\n"
        "        isolation: {netwrk: true}\n        env: {varz: {}}\n        logs: {sinc: none}\n"
    )
    found = {
        (d.path, d.message.split(": ", 1)[1])
        for d in problems(manifest(tmp_path, body))
        if d.code is Code.UNKNOWN_KEY
    }
    assert found == {
        ("service", "unknown key (did you mean 'services'?)"),
        ("projects.p.servics", "unknown key (did you mean 'services'?)"),
        ("projects.p.services.web.comand", "unknown key (did you mean 'command'?)"),
        ("projects.p.services.web.limits.nofle", "unknown key (did you mean 'nofile'?)"),
        (
            "projects.p.services.web.limits.cgroup.memory_mx",
            "unknown key (did you mean 'memory_max'?)",
        ),
        ("projects.p.services.web.isolation.netwrk", "unknown key (did you mean 'network'?)"),
        ("projects.p.services.web.env.varz", "unknown key (did you mean 'vars'?)"),
        ("projects.p.services.web.logs.sinc", "unknown key (did you mean 'sink'?)"),
    }


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("on_error", "hooks.onerr"),  # the upstream's config-unknown-key-refused report
        ("onerr", "hooks.onerr"),
        ("on_start", "hooks.onstart"),  # not max_restarts, the closer top-level spelling
        ("health_check", "deployment.health_check"),
        ("expression", "cron.expression"),
        ("max_byte", "logs.max_bytes"),
    ],
)
def test_a_key_of_a_nested_block_written_on_the_service_says_where_it_goes(
    tmp_path: Path, key: str, where: str
) -> None:
    d = only(manifest(tmp_path, HEAD + f"  web: {{command: x, {key}: y}}\n"), Code.UNKNOWN_KEY)
    assert d.path == f"services.web.{key}"
    assert d.message.endswith(f"unknown key (did you mean {where}?)")
    block, leaf = where.split(".")
    assert d.hint.startswith(f"'{leaf}' is a key of {block}: write {block}: {{{leaf}: ...}}")


@pytest.mark.parametrize("key", ["env_file", "onfailure", "workdir"])
def test_no_nested_block_is_guessed_from_a_distant_spelling(tmp_path: Path, key: str) -> None:
    d = only(manifest(tmp_path, HEAD + f"  web: {{command: x, {key}: y}}\n"), Code.UNKNOWN_KEY)
    assert " is a key of " not in d.hint


def test_missing_key(tmp_path: Path) -> None:
    d = only(manifest(tmp_path, HEAD + "  web: {restart_policy: never}\n"), Code.MISSING_KEY)
    assert d.path == "services.web"
    assert "command" in d.hint
    assert only(manifest(tmp_path, ""), Code.MISSING_KEY).path == "version"


@pytest.mark.parametrize(
    ("version", "hint"),
    [("'1'", "`sysg migrate FILE`"), ("1", "--in-place"), ("'3'", '"2"'), ("2.0", '"2"')],
)
def test_unsupported_version(tmp_path: Path, version: str, hint: str) -> None:
    path = manifest(tmp_path, f"version: {version}\nservices:\n  web: {{bogus: 1}}\n")
    d = only(path, Code.UNSUPPORTED_VERSION)
    assert hint in d.hint
    assert d.path == "version"
    assert d.line == 1


def test_unknown_dependency(tmp_path: Path) -> None:
    body = HEAD + "  db: {command: x}\n  web: {command: x, depends_on: [dbb]}\n"
    d = only(manifest(tmp_path, body), Code.UNKNOWN_DEPENDENCY)
    assert d.path == "services.web.depends_on[0]"
    assert "did you mean 'db'" in d.message


def test_dependency_cycle(tmp_path: Path) -> None:
    body = HEAD + "  a: {command: x, depends_on: [b]}\n  b: {command: x, depends_on: [c]}\n"
    body += "  c: {command: x, depends_on: [a]}\n  d: {command: x, depends_on: [d]}\n"
    found = problems(manifest(tmp_path, body))
    assert sorted(d.message for d in found) == [
        "services.a.depends_on: dependency cycle: a -> b -> c -> a",
        "services.d.depends_on: dependency cycle: d -> d",
    ]
    assert {d.code for d in found} == {Code.DEPENDENCY_CYCLE}


def test_missing_env_var(tmp_path: Path) -> None:
    d = only(
        manifest(tmp_path, HEAD + "  web:\n    command: run ${NOT_SET_X}\n"), Code.MISSING_ENV_VAR
    )
    assert "'NOT_SET_X'" in d.message
    assert (d.path, d.line) == ("services.web.command", 4)


def test_env_file_problems(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("A=1\nbroken\nB='x\n")
    body = HEAD + "  web:\n    command: x\n    env: {file: app.env}\n"
    found = problems(manifest(tmp_path, body))
    assert [(d.code, d.file, d.line) for d in found] == [
        (Code.ENV_FILE, str(tmp_path / "app.env"), 2),
        (Code.ENV_FILE, str(tmp_path / "app.env"), 3),
    ]
    body = HEAD + "  web:\n    command: x\n    env: {file: missing.env}\n"
    assert only(manifest(tmp_path, body), Code.ENV_FILE).path == "services.web.env.file"


def test_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: costs no disk, and is never read
    assert "limit is 4 MiB" in only(path, Code.FILE_TOO_LARGE).message


def test_not_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: '2'\nservices:\n  web: {command: caf\xe9}\n")
    d = only(path, Code.NOT_UTF8)
    assert (d.line, d.column) == (3, 21)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("projects:\n  'a b': {services: {}}\n", "projects.a b"),
        ("projects:\n  '..': {services: {}}\n", "projects..."),
        ("services:\n  'web/x': {command: x}\n", "services.web/x"),
        ("services:\n  w: {command: x, env: {vars: {1X: y}}}\n", "services.w.env.vars.1X"),
    ],
)
def test_invalid_name(tmp_path: Path, body: str, path: str) -> None:
    assert only(manifest(tmp_path, "version: '2'\n" + body), Code.INVALID_NAME).path == path


@pytest.mark.skipif(not IS_ROOT, reason="needs root: the trust check wants root-owned files")
def test_untrusted_config(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\n")
    manifest(tmp_path, "command: x\nenv: {file: a.env}\n", "web.yaml")
    path = manifest(tmp_path, HEAD + "  web: !include web.yaml\n")
    assert load_manifest(path, environ={}, require_trusted=True).manifest
    os.chmod(tmp_path / "a.env", 0o666)
    assert "writable" in only(path, Code.UNTRUSTED_CONFIG, require_trusted=True).message
    os.chmod(tmp_path / "a.env", 0o644)
    os.chown(tmp_path / "web.yaml", 65534, 65534)
    assert "uid 65534" in only(path, Code.UNTRUSTED_CONFIG, require_trusted=True).message
    assert load_manifest(path, environ={}).manifest  # untrusted mode does not care
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    assert "symbolic link" in only(link, Code.UNTRUSTED_CONFIG, require_trusted=True).message


def test_untrusted_when_not_root_owned_or_writable(tmp_path: Path) -> None:
    path = manifest(tmp_path, HEAD + "  web: {command: x}\n")
    os.chmod(path, 0o664)
    if not IS_ROOT:
        assert "not root" in only(path, Code.UNTRUSTED_CONFIG, require_trusted=True).message
    else:
        assert "writable" in only(path, Code.UNTRUSTED_CONFIG, require_trusted=True).message


def test_an_unknown_seccomp_name_is_an_error_with_its_path(tmp_path: Path) -> None:
    path = manifest(
        tmp_path, HEAD + "  web: {command: x, isolation: {seccomp: [read, '@privileged', mkdri]}}\n"
    )
    problem = only(path, Code.INVALID_VALUE)
    assert problem.path == "services.web.isolation.seccomp[2]"
    assert "unknown system call 'mkdri'" in problem.message
    assert "mkdir" in problem.hint


def test_too_many_nodes_refused_before_composing(tmp_path: Path) -> None:
    path = manifest(tmp_path, "version: '2'\nx: [" + ",".join(["a"] * 300_000) + "]\n")
    assert "more than" in only(path, Code.INVALID_YAML).message
