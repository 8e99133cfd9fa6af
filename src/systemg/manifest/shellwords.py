"""When a ``command:`` needs no shell: the argv ``/bin/sh -c COMMAND`` would exec. Pure.

``command: "python3 -m http.server 8080"`` used to run as ``/bin/sh -c ...``, and dash does
not exec the last command of a ``-c`` string, so a shell stayed between the supervisor and
every such service (its pid was the shell's). A command that is one *simple command* in the
POSIX sense — words only, no expansion, no redirection, no operator — means exactly
``execvp(words[0], words)`` to the shell, so it is run that way, with the program's own pid,
as supervisord and systemd do. Anything else keeps ``/bin/sh -c`` and its exact semantics.

Simple here is deliberately narrow. A word is made of characters that are literal to the
shell unquoted (letters, digits, ``_ . / : , + @ % ^ -`` and ``=`` after the first word),
``'single-quoted text'``, or ``"double-quoted text"`` without ``$``, `````, ``\\`` or
``!``. Not simple: any other character unquoted (``$ ` \\ | & ; < > ( ) * ? [ ] # ~ { } !``,
a newline...), a first word with ``=`` (an assignment), a first word that is a shell reserved
word or builtin (``cd``, ``echo``, ``test``, ``[``...: a builtin is not the program of the same
name) — except a leading ``exec``, which only says what the direct exec does anyway.
"""

from __future__ import annotations

_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,+@%^-=")
_DOUBLE_SPECIAL = frozenset("$`\\!")
_BLANK = " \t"
# dash's reserved words and builtins (and bash's, for a /bin/sh that is bash).
_SHELL_WORDS = frozenset(
    [
        "!",
        "{",
        "}",
        "[[",
        "]]",
        "case",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "fi",
        "for",
        "function",
        "if",
        "in",
        "select",
        "then",
        "time",
        "until",
        "while",
        ".",
        ":",
        "[",
        "alias",
        "bg",
        "break",
        "builtin",
        "cd",
        "command",
        "continue",
        "declare",
        "echo",
        "eval",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "getopts",
        "hash",
        "help",
        "history",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "printf",
        "pwd",
        "read",
        "readonly",
        "return",
        "set",
        "shift",
        "source",
        "test",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "wait",
    ]
)


def simple_argv(command: str) -> tuple[str, ...] | None:
    """The argv of ``command`` when it is one simple command (see the module docstring),
    else None (run it with ``/bin/sh -c``)."""
    words = _words(command)
    if not words:
        return None
    if words[0] == "exec":
        words = words[1:]
        if not words or words[0].startswith("-"):
            return None
    if "=" in words[0] or words[0] in _SHELL_WORDS:
        return None
    return tuple(words)


def _words(text: str) -> list[str] | None:
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _BLANK:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            current.append(text[i + 1 : end])
            in_word, i = True, end + 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0 or any(ch in _DOUBLE_SPECIAL for ch in text[i + 1 : end]):
                return None
            current.append(text[i + 1 : end])
            in_word, i = True, end + 1
        elif c in _LITERAL:
            current.append(c)
            in_word, i = True, i + 1
        else:
            return None
    if in_word:
        words.append("".join(current))
    return words
