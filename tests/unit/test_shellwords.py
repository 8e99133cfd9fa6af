"""``command:`` without a shell when it is one simple command (manifest.shellwords).

The proof is the shell itself: for every command the rule accepts, ``/bin/sh`` splits it
into exactly the same words (``set -- COMMAND`` does the shell's own word processing), so
exec'ing the words directly is what ``sh -c`` would have done.
"""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systemg.manifest.shellwords import simple_argv


def _sh_words(command: str) -> list[str]:
    out = subprocess.run(
        ["/bin/sh", "-c", f"set -- {command}\nprintf '%s\\0' \"$@\""],
        capture_output=True,
        check=True,
    ).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("sleep 100", ("sleep", "100")),
        ("  python3 -m http.server 8080 ", ("python3", "-m", "http.server", "8080")),
        ("exec sleep 1", ("sleep", "1")),
        ("./api --port=80 --name 'my app'", ("./api", "--port=80", "--name", "my app")),
        ('echo2 "a b" c', ("echo2", "a b", "c")),
        ("prog '' x", ("prog", "", "x")),
        ("/usr/bin/env A=1 prog", ("/usr/bin/env", "A=1", "prog")),
    ],
)
def test_simple_commands_run_as_their_words(command: str, argv: tuple[str, ...]) -> None:
    assert simple_argv(command) == argv
    words = _sh_words(command)
    assert (words[1:] if words[0] == "exec" else words) == list(argv)


@pytest.mark.parametrize(
    "command",
    [
        "echo hi",  # a builtin is not the program of that name
        "cd /srv && ./run",
        "A=1 prog",
        "prog > out.log",
        "prog | tee x",
        "prog; other",
        "prog &",
        "prog $HOME",
        'prog "$HOME"',
        "prog `date`",
        "prog *.txt",
        "prog ~/x",
        "prog # comment",
        "while :; do sleep 1; done",
        "exec -a name prog",
        "exec",
        "",
        "prog 'unterminated",
        "prog \\n",
        "prog\nother",
        "[ -f x ]",
        "{ prog; }",
        "prog {a,b}",
    ],
)
def test_anything_else_keeps_the_shell(command: str) -> None:
    assert simple_argv(command) is None


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab =-./'\"$*;|&\\ \t", min_size=1, max_size=16))
def test_accepted_commands_split_exactly_as_the_shell_splits_them(command: str) -> None:
    argv = simple_argv(command)
    if argv is not None:
        assert _sh_words(command) == list(argv)
