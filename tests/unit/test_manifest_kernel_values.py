"""Values the kernel cannot take are validation errors, never a crash at start (issue 9).

Every string that reaches ``argv``, ``envp``, a path or a name given to a system call is
checked after ``${VAR}`` expansion: a NUL (written as the YAML escape ``\\0``), text that cannot
be encoded, an argument or ``NAME=VALUE`` of ``MAX_ARG_STRLEN`` bytes, a path of ``PATH_MAX``
bytes. Each is reported with its field path, file, line and column, the value escaped so the
NUL shows as ``\\x00``, and a hint; all problems of a file at once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.kernel import MAX_ARG_STRLEN, PATH_MAX, Kind, problem, shown
from systemg.manifest.load import load_manifest

HEAD = 'version: "2"\nservices:\n  web:\n'


def problems(path: Path, environ: dict[str, str] | None = None) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ=environ or {})
    return [d for d in info.value.diagnostics if d.severity == "error"]


def write(tmp_path: Path, body: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def only(path: Path, environ: dict[str, str] | None = None) -> Diagnostic:
    found = problems(path, environ)
    assert len(found) == 1, found
    assert found[0].hint
    return found[0]


def quoted(text: str) -> str:
    """``text`` as a double-quoted YAML scalar, a NUL written as the escape ``\\0``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\0") + '"'


# --- the case, and where the diagnostic points ---------------------------------------


def test_nul_in_an_exec_argument_is_refused_with_path_position_and_escaped_value(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, HEAD + '    exec: ["sleep", "10\\0x"]\n')
    assert "\\0" in path.read_text()  # the YAML escape, not a raw byte
    d = only(path)
    assert d.code is Code.INVALID_VALUE
    assert (d.path, d.file, d.line, d.column) == ("services.web.exec[1]", str(path), 4, 21)
    assert "'10\\x00x'" in d.message
    assert "NUL" in d.message
    assert "remove the \\0" in d.hint


ALPHABET = st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"))


@st.composite
def argvs_with_nuls(draw: st.DrawFn) -> tuple[list[str], set[int]]:
    argv = draw(st.lists(st.text(ALPHABET, min_size=1, max_size=12), min_size=1, max_size=5))
    spoiled = draw(st.sets(st.integers(0, len(argv) - 1), min_size=1))
    for i in spoiled:
        at = draw(st.integers(0, len(argv[i])))
        argv[i] = argv[i][:at] + "\0" + argv[i][at:]
    return argv, spoiled


@settings(max_examples=60, deadline=None)
@given(argvs_with_nuls())
def test_a_nul_anywhere_in_any_exec_element_is_refused_at_that_element(
    case: tuple[list[str], set[int]],
) -> None:
    argv, spoiled = case
    body = HEAD + "    exec:\n" + "".join(f"      - {quoted(a)}\n" for a in argv)
    with tempfile.TemporaryDirectory() as tmp:
        found = problems(write(Path(tmp), body))
    assert {d.path for d in found} == {f"services.web.exec[{i}]" for i in spoiled}
    for d in found:
        i = int(d.path.rsplit("[", 1)[1].rstrip("]"))
        assert (d.code, d.line, d.column) == (Code.INVALID_VALUE, 5 + i, 9)
        assert "\\x00" in d.message


def test_nul_in_command(tmp_path: Path) -> None:
    d = only(write(tmp_path, HEAD + '    command: "echo a\\0b"\n'))
    assert (d.code, d.path, d.line) == (Code.INVALID_VALUE, "services.web.command", 4)
    assert "'echo a\\x00b'" in d.message


def test_empty_exec_is_refused(tmp_path: Path) -> None:
    d = only(write(tmp_path, HEAD + "    exec: []\n"))
    assert (d.code, d.path) == (Code.INVALID_VALUE, "services.web.exec")


# --- environment -------------------------------------------------------------------------------


def test_nul_in_an_env_value_top_level_and_service(tmp_path: Path) -> None:
    body = (
        'version: "2"\nenv:\n  vars: {TOP: "a\\x00"}\nservices:\n  web:\n'
        '    exec: ["true"]\n    env:\n      vars:\n        TOKEN: "abc\\u0000def"\n'
    )
    found = problems(write(tmp_path, body))
    assert {(d.code, d.path, d.line) for d in found} == {
        (Code.INVALID_VALUE, "env.vars.TOP", 3),
        (Code.INVALID_VALUE, "services.web.env.vars.TOKEN", 9),
    }
    assert all("\\x00" in d.message for d in found)


@pytest.mark.parametrize("name", ['""', '"A=B"', '"A\\0"', '"PATH\\n"'])
def test_unusable_env_names_are_refused(tmp_path: Path, name: str) -> None:
    d = only(write(tmp_path, HEAD + f'    exec: ["true"]\n    env: {{vars: {{{name}: x}}}}\n'))
    assert d.code is Code.INVALID_NAME
    assert d.path.startswith("services.web.env.vars.")


def test_nul_in_an_env_file_value_points_into_the_env_file(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_bytes(b"GOOD=1\nBAD=x\x00y\n")
    d = only(write(tmp_path, HEAD + '    exec: ["true"]\n    env: {file: app.env}\n'))
    assert (d.code, d.path, d.file, d.line) == (
        Code.ENV_FILE,
        "services.web.env.file",
        str(env),
        2,
    )
    assert "BAD" in d.message
    assert "'x\\x00y'" in d.message


def test_nul_in_the_env_file_path_is_refused_not_a_crash(tmp_path: Path) -> None:
    d = only(write(tmp_path, HEAD + '    exec: ["true"]\n    env: {file: "app\\0.env"}\n'))
    assert (d.code, d.path, d.line) == (Code.INVALID_VALUE, "services.web.env.file", 5)
    assert "'app\\x00.env'" in d.message


def test_env_string_too_long_for_execve(tmp_path: Path) -> None:
    # NAME=VALUE with its NUL must fit MAX_ARG_STRLEN: "V=" + value + NUL.
    fits = "x" * (MAX_ARG_STRLEN - 3)
    ok = write(tmp_path, HEAD + f'    exec: ["true"]\n    env: {{vars: {{V: "{fits}"}}}}\n')
    load_manifest(ok, environ={})
    bad = write(tmp_path, HEAD + f'    exec: ["true"]\n    env: {{vars: {{V: "{fits}x"}}}}\n')
    d = only(bad)
    assert (d.code, d.path) == (Code.INVALID_VALUE, "services.web.env.vars.V")
    assert "E2BIG" in d.hint


# --- argv length, encoding, ${VAR} -------------------------------------------------------------


def test_argument_of_max_arg_strlen_bytes_is_refused(tmp_path: Path) -> None:
    fits = "é" * ((MAX_ARG_STRLEN - 1) // 2)  # 2 bytes each: counted in bytes, not characters
    load_manifest(write(tmp_path, HEAD + f'    exec: ["echo", "{fits}"]\n'), environ={})
    d = only(write(tmp_path, HEAD + f'    exec: ["echo", "{fits}é"]\n'))
    assert (d.code, d.path) == (Code.INVALID_VALUE, "services.web.exec[1]")
    assert str(MAX_ARG_STRLEN) in d.message or str(MAX_ARG_STRLEN + 1) in d.message
    assert "MAX_ARG_STRLEN" in d.hint


def test_expanded_variables_are_checked_after_expansion(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '    exec: ["echo", "${BIG}", "${ODD}", "${RAW}"]\n')
    environ = {"BIG": "y" * MAX_ARG_STRLEN, "ODD": "\ud800", "RAW": "\udc80"}
    found = problems(path, environ)
    assert [d.path for d in found] == ["services.web.exec[1]", "services.web.exec[2]"]
    assert "cannot be encoded" in found[1].message
    # U+DC80 is how os.environ carries the byte 0x80: it encodes back, so it is accepted.
    load_manifest(path, environ={**environ, "BIG": "y", "ODD": "o"})


# --- paths and names ---------------------------------------------------------------------------


def test_working_dir_nul_and_length(tmp_path: Path) -> None:
    body = 'version: "2"\nservices:\n'
    body += '  a: {exec: ["true"], working_dir: "/srv\\0/x"}\n'
    body += f'  b: {{exec: ["true"], working_dir: "/{"d/" * (PATH_MAX // 2)}"}}\n'
    body += f'  c: {{exec: ["true"], working_dir: "/srv/{"n" * 256}"}}\n'
    found = {d.path: d for d in problems(write(tmp_path, body))}
    assert set(found) == {f"services.{s}.working_dir" for s in "abc"}
    assert "'/srv\\x00/x'" in found["services.a.working_dir"].message
    assert "PATH_MAX" in found["services.b.working_dir"].hint
    assert "NAME_MAX" in found["services.c.working_dir"].hint


def test_program_path_too_long(tmp_path: Path) -> None:
    d = only(write(tmp_path, HEAD + f'    exec: ["/usr/{"b" * 300}"]\n'))
    assert (d.path, d.code) == ("services.web.exec[0]", Code.INVALID_VALUE)


def test_include_path_with_nul_is_refused_not_a_crash(tmp_path: Path) -> None:
    d = only(write(tmp_path, 'version: "2"\nservices:\n  web: !include "w\\0.yaml"\n'))
    assert (d.code, d.line) == (Code.INVALID_VALUE, 3)
    assert "'w\\x00.yaml'" in d.message


def test_privileged_strings(tmp_path: Path) -> None:
    body = HEAD + (
        '    exec: ["true"]\n'
        '    listen: ["unix:/run/a\\0b.sock"]\n'
        '    limits: {cgroup: {root: "/tmp/cg\\0"}}\n'
        '    isolation: {seccomp: "prof\\0"}\n'
        '    user: "nobody\\n"\n'
        '    supplementary_groups: ["adm\\0"]\n'
    )
    found = {d.path: d for d in problems(write(tmp_path, body))}
    assert set(found) == {
        "services.web.listen[0]",
        "services.web.limits.cgroup.root",
        "services.web.isolation.seccomp",
        "services.web.user",
        "services.web.supplementary_groups[0]",
    }
    assert "'/run/a\\x00b.sock'" in found["services.web.listen[0]"].message
    assert "'/tmp/cg\\x00'" in found["services.web.limits.cgroup.root"].message


def test_service_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    d = only(write(tmp_path, 'version: "2"\nservices:\n  "web\\n": {exec: ["true"]}\n'))
    assert d.code is Code.INVALID_NAME


def test_raw_nul_byte_in_the_yaml_is_located(tmp_path: Path) -> None:
    path = tmp_path / "raw.yaml"
    path.write_bytes(HEAD.encode() + '    exec: ["é", "1\x00"]\n'.encode())
    d = only(path)
    assert (d.code, d.line, d.column) == (Code.INVALID_YAML, 4, 19)  # characters, not bytes
    assert "U+0000" in d.message


def test_every_problem_of_the_file_at_once(tmp_path: Path) -> None:
    body = 'version: "2"\nservices:\n'
    body += '  a: {exec: ["x\\0", "y\\0"]}\n'
    body += '  b: {command: "z\\0", env: {vars: {K: "v\\0"}}, working_dir: "w\\0"}\n'
    body += "  c: {exec: []}\n"
    paths = [d.path for d in problems(write(tmp_path, body))]
    assert paths == [
        "services.a.exec[0]",
        "services.a.exec[1]",
        "services.b.command",
        "services.b.env.vars.K",
        "services.b.working_dir",
        "services.c.exec",
    ]


# --- the helper itself -------------------------------------------------------------------------


def test_problem_kinds() -> None:
    assert problem("fine", Kind.ARG) is None
    assert problem("", Kind.ENV_NAME) is not None
    assert problem("A=B", Kind.ENV_NAME) is not None
    assert problem("x" * (MAX_ARG_STRLEN - 1), Kind.ARG) is None
    assert problem("x" * MAX_ARG_STRLEN, Kind.ARG) is not None
    assert problem("v" * (MAX_ARG_STRLEN - 3), Kind.ENV_VALUE, env_name="N") is None
    assert problem("v" * (MAX_ARG_STRLEN - 2), Kind.ENV_VALUE, env_name="N") is not None
    assert problem("/" + "a" * (PATH_MAX - 2), Kind.PATH) is not None  # 255-byte cap first
    assert problem("/" + "a/" * (PATH_MAX // 2 - 1), Kind.PATH) is None
    assert problem("/" + "a/" * (PATH_MAX // 2), Kind.PATH) is not None


def test_shown_escapes_and_windows_long_values() -> None:
    assert shown("a\0b") == "'a\\x00b'"
    long = "x" * 1000 + "\0" + "y" * 1000
    text = shown(long, 1000)
    assert "\\x00" in text
    assert text.startswith("…")
    assert text.endswith("…")
    assert len(text) < 80
