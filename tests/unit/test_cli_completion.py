"""The completion table comes from the real parser, so it cannot drift from it."""

from __future__ import annotations

import argparse

from systemg.cli.complete import names
from systemg.cli.completion import FILES, PROJECTS, SERVICES, bash_script, spec_of, zsh_script
from systemg.cli.main import COMMANDS, build_parser


def _parser() -> argparse.ArgumentParser:
    return build_parser(None, every=True)


def test_every_command_and_every_flag_of_the_parser_is_in_the_table() -> None:
    spec = spec_of(_parser())
    assert [c.name for c in spec.commands] == list(COMMANDS)
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in spec.commands:
        flags = {s for a in sub.choices[command.name]._actions for s in a.option_strings}
        assert {n for o in command.options for n in o.names} == flags, command.name
    assert {"--sys", "--plain", "--version", "-v"} <= {n for o in spec.options for n in o.names}


def test_value_kinds() -> None:
    spec = {c.name: c for c in spec_of(_parser()).commands}

    def kind(command: str, flag: str) -> str:
        return next(o.value for o in spec[command].options if flag in o.names)

    assert kind("start", "-s") == SERVICES
    assert kind("stop", "--project") == PROJECTS
    assert kind("restart", "-c") == FILES
    assert kind("status", "--format") == "words table json"
    assert kind("export", "-o") == "dirs"
    assert kind("start", "--daemonize") == ""  # a flag takes no value
    assert spec["export"].positionals == ("words systemd",)
    assert spec["completion"].positionals == ("words bash zsh",)
    assert spec["migrate"].positionals == (FILES,)


def test_scripts_register_the_function() -> None:
    spec = spec_of(_parser())
    assert bash_script(spec).rstrip().endswith("complete -F _sysg sysg")
    assert zsh_script(spec).startswith("#compdef sysg\n")


def test_names_qualify_only_shared_service_names() -> None:
    units = [("a", "web"), ("a", "db"), ("b", "web"), ("b", "cache")]
    assert names(units, "services") == ["a/web", "b/web", "cache", "db", "web"]
    assert names(units, "projects") == ["a", "b"]
    assert names([], "services") == []
