"""Shell completion scripts for bash and zsh, generated from the argparse parser (pure).

``spec_of(parser)`` reads the commands, their flags and what each flag's value is (a
service, a project, a file, a directory, one of some words, or anything) from the same
parser ``sysg`` parses with, so a new flag is completed without editing this module.
``bash_script`` / ``zsh_script`` render that table as three small shell functions shared
by both shells (``_sysg_kind``: what an option takes; ``_sysg_opts``: a command's flags;
``_sysg_pos``: what its N-th positional is) and one driver per shell.

Service and project names come from the running supervisor at completion time, through
``sysg __complete services|projects`` (``cli/complete.py``): it prints nothing, quickly,
when no supervisor runs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

FILES, DIRS, SERVICES, PROJECTS, ANY = "files", "dirs", "services", "projects", "any"


@dataclass(frozen=True, slots=True)
class Option:
    names: tuple[str, ...]
    value: str = ""  # "" for a flag; files | dirs | services | projects | any | "words a b"


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    options: tuple[Option, ...]
    positionals: tuple[str, ...]  # the value kind of each positional, in order


@dataclass(frozen=True, slots=True)
class Spec:
    options: tuple[Option, ...]  # before the command (global flags)
    commands: tuple[Command, ...]


def _kind(action: argparse.Action) -> str:
    if action.choices:
        return "words " + " ".join(str(c) for c in action.choices)
    metavar = str(action.metavar or "").upper()
    if action.dest == "service" or metavar == "JOB":
        return SERVICES
    if action.dest == "project":
        return PROJECTS
    if metavar == "DIR":
        return DIRS
    if metavar == "FILE" or action.dest in ("config", "file"):
        return FILES
    return ANY


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    out = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        takes = action.nargs != 0
        out.append(Option(tuple(action.option_strings), _kind(action) if takes else ""))
    return tuple(out)


def spec_of(parser: argparse.ArgumentParser) -> Spec:
    """The completion table of ``parser`` (built with every command's arguments)."""
    commands = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            positionals = tuple(
                _kind(a) for a in sub._actions if not a.option_strings and a.nargs != 0
            )
            commands.append(Command(name, _options(sub), positionals))
    return Spec(_options(parser), tuple(commands))


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _flags(options: tuple[Option, ...]) -> list[str]:
    return [n for o in options for n in o.names]


def _common(spec: Spec, commands: str) -> str:
    """The shell functions both bash and zsh run (the syntax used is common to both)."""
    kinds: list[str] = []
    for cmd in (Command("", spec.options, ()), *spec.commands):
        for opt in cmd.options:
            if opt.value:
                pattern = "|".join(_quote(f"{cmd.name} {n}") for n in opt.names)
                kinds.append(f"        {pattern}) echo {_quote(opt.value)} ;;")
    opts = [
        f"        {_quote(c.name)}) echo {_quote(' '.join(_flags(c.options)))} ;;"
        for c in spec.commands
    ]
    top = " ".join(_flags(spec.options))
    pos = [
        f"        {_quote(f'{c.name} {i}')}) echo {_quote(kind)} ;;"
        for c in spec.commands
        for i, kind in enumerate(c.positionals)
    ]
    nl = "\n"
    return f"""_sysg_commands={_quote(commands)}
# What the option $2 of command $1 takes (nothing: it is a flag).
_sysg_kind() {{
    case "$1 $2" in
{nl.join(kinds)}
    esac
}}
# The flags of command $1 (the global ones before any command).
_sysg_opts() {{
    case "$1" in
{nl.join(opts)}
        *) echo {_quote(top)} ;;
    esac
}}
# What the positional number $2 (from 0) of command $1 is.
_sysg_pos() {{
    case "$1 $2" in
{nl.join(pos)}
    esac
}}
# Reads the words before the cursor: sets cmd, npos (positionals seen), sys (--sys given)
# and want (what the word at the cursor is: a kind as _sysg_kind prints it).
_sysg_parse() {{
    local w skip=0 prev=""
    cmd="" npos=0 sys="" want=""
    for w in "$@"; do
        if [[ $skip == 1 ]]; then
            skip=0
            continue
        fi
        [[ $w == --sys ]] && sys=--sys
        if [[ $w == -* ]]; then
            [[ -n "$(_sysg_kind "$cmd" "$w")" ]] && skip=1 && prev=$w
            continue
        fi
        if [[ -z $cmd ]]; then
            cmd=$w
        else
            npos=$((npos + 1))
        fi
    done
    if [[ $skip == 1 ]]; then
        want="$(_sysg_kind "$cmd" "$prev")"
    elif [[ $cur == -* ]]; then
        want="words $(_sysg_opts "$cmd")"
    elif [[ -z $cmd ]]; then
        want="words $_sysg_commands"
    else
        want="$(_sysg_pos "$cmd" "$npos")"
    fi
}}
"""


def _command_words(spec: Spec) -> str:
    return " ".join(c.name for c in spec.commands)


def bash_script(spec: Spec) -> str:
    """``source <(sysg completion bash)``, or a file in bash-completion's completions dir."""
    return f"""# bash completion for sysg; generated by `sysg completion bash` (do not edit).
{_common(spec, _command_words(spec))}
_sysg() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd npos sys want
    _sysg_parse "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"
    COMPREPLY=()
    case "$want" in
        files) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        dirs) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
        services | projects)
            mapfile -t COMPREPLY < <(compgen -W \\
                "$(command sysg __complete "$want" $sys 2>/dev/null)" -- "$cur") ;;
        "words "*) mapfile -t COMPREPLY < <(compgen -W "${{want#words }}" -- "$cur") ;;
    esac
}}
complete -F _sysg sysg
"""


def zsh_script(spec: Spec) -> str:
    """A ``_sysg`` for a directory of ``$fpath`` (autoloaded), or ``source <(...)``."""
    return f"""#compdef sysg
# zsh completion for sysg; generated by `sysg completion zsh` (do not edit).
{_common(spec, _command_words(spec))}
_sysg() {{
    local cur="${{words[CURRENT]}}" cmd npos sys want
    _sysg_parse "${{(@)words[2,CURRENT-1]}}"
    case "$want" in
        files) _files ;;
        dirs) _files -/ ;;
        services | projects)
            local -a names
            names=(${{(f)"$(command sysg __complete "$want" $sys 2>/dev/null)"}})
            compadd -- $names ;;
        "words "*) compadd -- ${{=want#words }} ;;
    esac
}}
if [[ "${{zsh_eval_context[-1]}}" == loadautofunc ]]; then
    _sysg "$@"
else
    compdef _sysg sysg
fi
"""
