"""Typed accessors over the located tree that record every problem instead of raising.

``Checker`` is the one place diagnostics are built while parsing, so every message has the same
shape: ``<field path>: <what is wrong>``, the file/line/column of the offending node, and a
hint. An accessor returns ``None`` after recording a problem; callers just skip that field and
carry on, which is how all problems of a file are reported at once. ``Bad`` nodes (problems
already reported while composing) are skipped silently.

``${VAR}`` expansion happens here, on string scalars after YAML parsing, so a missing variable
is reported with the field path and the exact position. ``kernel`` checks an expanded string
against what the kernel accepts where it is going (``manifest.kernel``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from systemg.errors import Code, Diagnostic
from systemg.manifest.env import MissingVariableError, expand
from systemg.manifest.kernel import Kind
from systemg.manifest.kernel import problem as kernel_problem
from systemg.manifest.tree import Bad, Key, Loc, Map, Node, Scalar, Seq
from systemg.manifest.values import GrammarError, did_you_mean, suggestion

T = TypeVar("T")
_INT_TEXT = re.compile(r"^[+-]?\d+$")


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _where(at: Loc | Key | Node) -> Loc:
    return at if isinstance(at, Loc) else at.loc


class Checker:
    """Collects errors and warnings for one manifest."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    # --- recording ---------------------------------------------------------------------------

    def error(
        self, code: Code, path: str, message: str, at: Loc | Key | Node, hint: str = ""
    ) -> None:
        loc = _where(at)
        text = f"{path}: {message}" if path else message
        self.errors.append(Diagnostic(code, text, path, hint, loc.file, loc.line, loc.column))

    def warn(self, code: Code, path: str, message: str, at: Loc | Key | Node, hint: str) -> None:
        loc = _where(at)
        self.warnings.append(
            Diagnostic(
                code, f"{path}: {message}", path, hint, loc.file, loc.line, loc.column, "warning"
            )
        )

    def invalid(self, path: str, node: Node, problem: GrammarError) -> None:
        self.error(Code.INVALID_VALUE, path, problem.message, node, problem.hint)

    def kernel(
        self, text: str, kind: Kind, path: str, at: Loc | Key | Node, *, env_name: str = ""
    ) -> bool:
        """False (and an error recorded) when the kernel could not take ``text`` as ``kind``."""
        found = kernel_problem(text, kind, env_name=env_name)
        if found is not None:
            self.error(Code.INVALID_VALUE, path, found.message, at, found.hint)
        return found is None

    # --- shapes ------------------------------------------------------------------------------

    def mapping(self, node: Node, path: str) -> Map | None:
        if isinstance(node, Map):
            return node
        if not isinstance(node, Bad):
            self.error(
                Code.INVALID_VALUE,
                path,
                f"expected a mapping of keys, got {describe(node)}",
                node,
                "indent the keys below this line, or check the indentation",
            )
        return None

    def sequence(self, node: Node, path: str, example: str) -> Seq | None:
        if isinstance(node, Seq):
            return node
        if not isinstance(node, Bad):
            self.error(
                Code.INVALID_VALUE,
                path,
                f"expected a list, got {describe(node)}",
                node,
                f"write a YAML list, e.g. {example}",
            )
        return None

    def fields(
        self,
        m: Map,
        path: str,
        allowed: Collection[str],
        nested: Mapping[str, str] | None = None,
    ) -> dict[str, tuple[Key, Node]]:
        """The entries of ``m`` by name; every key not in ``allowed`` is an UNKNOWN_KEY.

        ``nested`` maps keys that belong one level down to their block (``onerr`` ->
        ``hooks``): an unknown key that is one of them, or close to one (``on_error``), is
        told where it goes, which a did-you-mean over ``allowed`` alone cannot say.
        """
        out: dict[str, tuple[Key, Node]] = {}
        for key, value in m.entries:
            if key.name in allowed:
                out[key.name] = (key, value)
                continue
            hint = "remove it, or check the spelling"
            found = suggestion(key.name, allowed)
            below = _misplaced(key.name, allowed, nested or {})
            if below is not None:
                parent, leaf = below
                found = f" (did you mean {parent}.{leaf}?)"
                hint = f"'{leaf}' is a key of {parent}: write {parent}: {{{leaf}: ...}}"
            self.error(
                Code.UNKNOWN_KEY,
                child(path, key.name),
                f"unknown key{found}",
                key,
                f"{hint}; allowed here: {', '.join(sorted(allowed))}",
            )
        return out

    # --- scalars -----------------------------------------------------------------------------

    def value(self, node: Node, path: str) -> object:
        """The YAML value with ``${VAR}`` expanded in strings; an ``Undefined`` on problems.

        A string that became an integer through expansion (``nice: ${NICE}``) is returned as
        an int, so typed fields can take their value from the environment.
        """
        if isinstance(node, Bad):
            return UNDEFINED
        if not isinstance(node, Scalar):
            return [] if isinstance(node, Seq) else {}
        if not isinstance(node.value, str):
            return node.value
        try:
            text = expand(node.value, self.environ)
        except MissingVariableError as missing:
            self.error(
                Code.MISSING_ENV_VAR,
                path,
                f"environment variable '{missing.name}' is not set",
                node,
                f"export {missing.name} before running sysg, or write ${{{missing.name}:-default}}",
            )
            return UNDEFINED
        if text != node.value and _INT_TEXT.match(text):
            return int(text)
        return text

    def string(self, node: Node, path: str, *, what: str = "a string") -> str | None:
        """A non-empty string; numbers are taken as written (``user: 1000``)."""
        if (
            isinstance(node, Scalar)
            and isinstance(node.value, int | float)
            and (not isinstance(node.value, bool))
        ):
            return node.raw
        value = self.value(node, path)
        if value is UNDEFINED:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            self.error(
                Code.INVALID_VALUE,
                path,
                f"expected {what}, got {describe(node)}",
                node,
                "quote the value if YAML reads it as something else",
            )
            return None
        return str(value)

    def command(self, node: Node, path: str) -> str | None:
        """A non-empty shell command for ``/bin/sh -c`` that the kernel can take as an argument
        (no NUL, shorter than ``MAX_ARG_STRLEN``)."""
        text = self.string(node, path, what="a shell command")
        if text is None or not self.kernel(text, Kind.ARG, path, node):
            return None
        return text

    def boolean(self, node: Node, path: str) -> bool | None:
        value = self.value(node, path)
        if value is UNDEFINED:
            return None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.error(
                Code.INVALID_VALUE,
                path,
                f"expected true or false, got {describe(node)}",
                node,
                "write true or false",
            )
            return None
        return value

    def integer(self, node: Node, path: str, *, minimum: int = 0) -> int | None:
        value = self.value(node, path)
        if value is UNDEFINED:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.error(
                Code.INVALID_VALUE,
                path,
                f"expected an integer ≥ {minimum}, got {describe(node)}",
                node,
                f"write a whole number ≥ {minimum}",
            )
            return None
        return value

    def grammar(self, node: Node, path: str, parse: Callable[[object], T]) -> T | None:
        """Run a ``values.parse_*`` grammar on the (expanded) value of ``node``."""
        value = self.value(node, path)
        if value is UNDEFINED:
            return None
        if isinstance(node, Seq):
            value = [self.value(i, path) for i in node.items]
            if UNDEFINED in value:
                return None
        try:
            return parse(value)
        except GrammarError as problem:
            self.invalid(path, node, problem)
            return None

    def choice(self, node: Node, path: str, choices: Collection[str]) -> str | None:
        value = self.value(node, path)
        if value is UNDEFINED:
            return None
        if isinstance(value, str) and value in choices:
            return value
        shown = value if isinstance(value, str) else describe(node)
        note = " (YAML reads an unquoted no/off as false)" if value is False else ""
        self.error(
            Code.INVALID_VALUE,
            path,
            f"'{shown}' is not one of {' | '.join(choices)}{note}",
            node,
            f"use one of: {', '.join(choices)}{suggestion(str(shown), choices)}",
        )
        return None


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _misplaced(
    name: str, allowed: Collection[str], nested: Mapping[str, str]
) -> tuple[str, str] | None:
    """(block, key) when ``name`` reads as a key of a nested block better than as any key
    of ``allowed`` (spelling compared without case, ``_`` or ``-``)."""
    import difflib  # performance: only on this path, not at import

    if not nested:
        return None
    squashed = {_squash(leaf): leaf for leaf in nested}
    # Stricter than a did-you-mean: a wrong block is worse than no suggestion.
    close = difflib.get_close_matches(_squash(name), squashed, n=1, cutoff=0.8)
    if not close:
        return None
    guess = close[0]
    direct = did_you_mean(name, allowed)
    if direct is not None and _ratio(name, direct) >= _ratio(_squash(name), guess):
        return None
    leaf = squashed[guess]
    return nested[leaf], leaf


def _ratio(a: str, b: str) -> float:
    import difflib  # performance: only on this path, not at import

    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


class _Undefined:
    """Marks a value whose problem is already reported."""

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()


def describe(node: Node) -> str:
    """How a person would name what they wrote: ``a list``, ``'abc'``, ``nothing (null)``."""
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    if isinstance(node, Bad):
        return "an invalid value"
    if node.value is None:
        return "nothing (null)"
    if isinstance(node.value, bool):
        return f"a boolean ({node.raw})"
    if isinstance(node.value, str):
        return f"'{node.value}'"
    return node.raw
