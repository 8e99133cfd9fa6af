"""``${VAR}`` expansion and the env file format (manifest/env.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.manifest.env import MissingVariableError, expand, parse_env_file


def test_expand_forms() -> None:
    env = {"PORT": "8080", "EMPTY": ""}
    assert expand("--port ${PORT}", env) == "--port 8080"
    assert expand("${NOPE:-3000}", env) == "3000"
    assert expand("${EMPTY:-x}", env) == ""
    assert expand("$${PORT} $HOME $(date) ${#x}", env) == "${PORT} $HOME $(date) ${#x}"


def test_expand_missing_names_the_variable() -> None:
    with pytest.raises(MissingVariableError) as info:
        expand("a ${MISSING_ONE} b", {})
    assert info.value.name == "MISSING_ONE"


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_expand_leaves_text_without_dollar(text: str) -> None:
    assert expand(text, {}) == text


def test_env_file_format() -> None:
    text = (
        "# comment\n\nA=1\nexport B = two \nC=\"quoted value\"\nD='single'\nE=a=b\nF=\n"
        "   # indented comment\n"
    )
    pairs, problems = parse_env_file(text)
    assert problems == ()
    assert dict(pairs) == {
        "A": "1",
        "B": "two",
        "C": "quoted value",
        "D": "single",
        "E": "a=b",
        "F": "",
    }


def test_env_file_reports_every_bad_line() -> None:
    _, problems = parse_env_file('OK=1\nno equals\n1BAD=x\nQ="open\n')
    assert [p.line for p in problems] == [2, 3, 4]


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
        st.text(alphabet=st.characters(whitelist_categories=("L", "N")), max_size=20),
        max_size=8,
    )
)
def test_env_file_round_trip(values: dict[str, str]) -> None:
    text = "".join(f'{k}="{v}"\n' for k, v in values.items())
    pairs, problems = parse_env_file(text)
    assert problems == ()
    assert dict(pairs) == values
