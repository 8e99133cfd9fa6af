"""YAML text -> a located value tree (``Map``/``Seq``/``Scalar``), with ``!include`` spliced.

Pure apart from the ``read`` callback it is given (``load.py`` passes one that opens files,
with the trust checks when asked). Every node keeps the file, line and column (1-based) it came
from, so ``parse.py`` can point at the exact place of a problem, even inside an included file.

Safety invariants:
- YAML is composed with libyaml (``yaml.CSafeLoader``); aliases stay shared nodes there, so an
  alias bomb costs nothing until it is walked. The walk counts re-entered collections and gives
  up after ``MAX_ALIASES`` (and after ``MAX_NODES`` nodes in all), so a bomb is refused in
  milliseconds with constant memory.
- Includes: relative to the including file, at most ``MAX_INCLUDE_DEPTH`` deep, cycles refused
  with the chain, at most ``MAX_TOTAL_BYTES`` read in all.
- Problems are collected, not raised, except those that make the rest meaningless (a bomb).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from systemg.errors import Code, Diagnostic
from systemg.manifest.kernel import Kind, problem

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 8 * 1024 * 1024
MAX_INCLUDE_DEPTH = 10
MAX_ALIASES = 100
MAX_NODES = 200_000
MAX_NESTING = 64
INCLUDE_TAG = "!include"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Loc:
    file: str
    line: int
    column: int


def located(code: Code, message: str, loc: Loc, hint: str = "") -> Diagnostic:
    """A diagnostic pointing at ``loc`` (file, line, column)."""
    return Diagnostic(code, message, hint=hint, file=loc.file, line=loc.line, column=loc.column)


@dataclass(frozen=True, slots=True)
class Scalar:
    """``value`` is the YAML-typed value (None/bool/int/float/str); ``raw`` is the source text."""

    value: object
    raw: str
    loc: Loc


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]
    loc: Loc


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    loc: Loc


@dataclass(frozen=True, slots=True)
class Map:
    entries: tuple[tuple[Key, Node], ...]
    loc: Loc


@dataclass(frozen=True, slots=True)
class Bad:
    """Stands where a node could not be produced; its problem is already reported."""

    loc: Loc


Node = Scalar | Seq | Map | Bad


class FileReadError(Exception):
    """What a ``read`` callback raises for a file it will not or cannot read."""

    def __init__(self, code: Code, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


Reader = Callable[[str], bytes]
"""Reads a whole file (absolute path), raising ``FileReadError``; enforces size and trust."""


class _FatalError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader; ``!include`` is resolved on the composed nodes, not constructed."""


_SCALARS = yaml.constructor.SafeConstructor()


def decode_utf8(data: bytes, file: str) -> str | Diagnostic:
    """The text of ``data``, or a NOT_UTF8 diagnostic pointing at the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return Diagnostic(
            Code.NOT_UTF8,
            f"the file is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}",
            hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            file=file,
            line=line,
            column=column,
        )
    return text.removeprefix("\ufeff")


def yaml_error_diagnostic(exc: yaml.YAMLError, text: str, file: str) -> Diagnostic:
    """A libyaml error as a located diagnostic, with the tab hint when tabs are the cause."""
    if isinstance(exc, yaml.reader.ReaderError):
        # A raw control character (a NUL byte, say); libyaml counts UTF-8 bytes, not characters.
        before = text.encode()[: exc.position].decode(errors="ignore")
        return Diagnostic(
            Code.INVALID_YAML,
            f"the file contains the control character {chr(exc.character)!r} "
            f"(U+{exc.character:04X}), which YAML does not allow",
            hint="remove it; inside a double-quoted string it could be written as an escape "
            "such as \\t (a NUL is refused in any case: the kernel cannot take it)",
            file=file,
            line=before.count("\n") + 1,
            column=len(before) - (before.rfind("\n") + 1) + 1,
        )
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    lines = text.splitlines()
    for number, content in enumerate(lines[: line or len(lines)], start=1):
        indent = content[: len(content) - len(content.lstrip(" \t"))]
        if "\t" in indent:
            return Diagnostic(
                Code.INVALID_YAML,
                "a tab character is used for indentation",
                hint="YAML does not allow tabs for indentation; use spaces",
                file=file,
                line=number,
                column=indent.index("\t") + 1,
            )
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    hint = "check the indentation: keys of one mapping must start in the same column"
    if "mapping values are not allowed" in message:
        hint = "quote a value that contains ': ', or fix the indentation of this line"
    return Diagnostic(Code.INVALID_YAML, message, hint=hint, file=file, line=line, column=column)


def display(path: str, base_dir: str) -> str:
    """``path`` relative to the root manifest's directory when it is below it."""
    rel = os.path.relpath(path, base_dir)
    return path if rel.startswith("..") else rel


class Composer:
    """Builds the located tree of one manifest and everything it includes."""

    def __init__(self, read: Reader, base_dir: str) -> None:
        self.read = read
        self.base_dir = base_dir
        self.diagnostics: list[Diagnostic] = []
        self.texts: dict[str, str] = {}
        self._bytes = 0
        self._aliases = 0
        self._nodes = 0
        # ids of collection nodes already walked; composed nodes live as long as this walk
        self._seen: set[int] = set()

    def compose_root(self, path: str) -> Node | None:
        """The tree of ``path``; None when nothing usable came out (problems are recorded)."""
        try:
            return self._compose_file(path, (), None)
        except _FatalError as fatal:
            self.diagnostics.append(fatal.diagnostic)
            return None
        except FileReadError as problem:
            self.diagnostics.append(
                Diagnostic(problem.code, problem.message, hint=problem.hint, file=path)
            )
            return None

    def _compose_file(self, path: str, parents: tuple[str, ...], at: Loc | None) -> Node | None:
        """``parents`` are the files whose ``!include`` led here (empty for the root)."""
        data = self.read(path) if at is None else self._read_include(path, parents, at)
        if data is None:
            return None
        self._bytes += len(data)
        if self._bytes > MAX_TOTAL_BYTES:
            raise _FatalError(
                Diagnostic(
                    Code.INCLUDE_LIMIT,
                    f"the manifest and its includes exceed {MAX_TOTAL_BYTES // 2**20} MiB",
                    hint="split the configuration or include fewer files",
                    file=at.file if at else path,
                    line=at.line if at else None,
                    column=at.column if at else None,
                )
            )
        text = decode_utf8(data, path)
        if isinstance(text, Diagnostic):
            self.diagnostics.append(text)
            return None
        self.texts[path] = text
        try:
            # Count events first (streamed, constant memory): composing a 4 MiB flat list
            # would build a million nodes before the walk below could refuse it.
            for events, _ in enumerate(yaml.parse(text, Loader=_Loader)):
                if events > MAX_NODES:
                    raise _FatalError(
                        Diagnostic(
                            Code.INVALID_YAML,
                            f"the YAML has more than {MAX_NODES} nodes",
                            hint="a manifest does not need this many values",
                            file=path,
                        )
                    )
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            self.diagnostics.append(yaml_error_diagnostic(exc, text, path))
            return None
        except RecursionError:
            raise _FatalError(
                Diagnostic(Code.INVALID_YAML, "the YAML is nested too deeply", file=path)
            ) from None
        if root is None:
            return Scalar(None, "", Loc(path, 1, 1))
        return self._convert(root, path, (*parents, path), 0)

    def _read_include(self, path: str, chain: tuple[str, ...], at: Loc) -> bytes | None:
        names = " -> ".join(display(p, self.base_dir) for p in (*chain, path))
        if path in chain:
            self._problem(
                Code.INCLUDE_CYCLE,
                f"include cycle: {names}",
                at,
                "remove one of these !include tags",
            )
            return None
        if len(chain) > MAX_INCLUDE_DEPTH:
            self._problem(
                Code.INCLUDE_LIMIT,
                f"includes nest deeper than {MAX_INCLUDE_DEPTH}: {names}",
                at,
                "flatten the include structure",
            )
            return None
        try:
            return self.read(path)
        except FileReadError as problem:
            code = Code.INCLUDE_MISSING if problem.code is Code.CONFIG_UNREADABLE else problem.code
            self._problem(
                code,
                f"cannot include {display(path, self.base_dir)}: {problem.message} "
                f"(include chain: {names})",
                at,
                problem.hint or "fix the path; it is relative to the including file",
            )
            return None

    def _convert(self, node: yaml.Node, file: str, chain: tuple[str, ...], depth: int) -> Node:
        loc = Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)
        self._nodes += 1
        if depth > MAX_NESTING or self._nodes > MAX_NODES:
            raise _FatalError(
                located(
                    Code.INVALID_YAML,
                    f"the YAML expands to more than {MAX_NODES} nodes"
                    if self._nodes > MAX_NODES
                    else f"the YAML nests deeper than {MAX_NESTING} levels",
                    loc,
                    "a manifest does not need this; write the values out",
                )
            )
        if node.tag == INCLUDE_TAG:
            return self._include(node, loc, chain, depth)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        # A collection node met again is an alias expansion: bounded so a bomb stops early.
        if id(node) in self._seen:
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _FatalError(
                    located(
                        Code.INVALID_YAML,
                        f"more than {MAX_ALIASES} aliases to collections (an alias bomb?)",
                        loc,
                        "write the values out instead of nesting aliases",
                    )
                )
        else:
            self._seen.add(id(node))
        if node.tag.startswith("!"):
            self._unknown_tag(node.tag, loc)
            return Bad(loc)
        if isinstance(node, yaml.SequenceNode):
            return Seq(tuple(self._convert(c, file, chain, depth + 1) for c in node.value), loc)
        assert isinstance(node, yaml.MappingNode)
        return self._mapping(node, loc, file, chain, depth)

    def _mapping(
        self, node: yaml.MappingNode, loc: Loc, file: str, chain: tuple[str, ...], depth: int
    ) -> Node:
        merged: dict[str, tuple[Key, Node]] = {}
        explicit: dict[str, tuple[Key, Node]] = {}
        for key_node, value_node in node.value:
            kloc = Loc(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == _MERGE_TAG:
                value = self._convert(value_node, file, chain, depth + 1)
                sources = value.items if isinstance(value, Seq) else (value,)
                for source in sources:
                    if isinstance(source, Map):
                        for k, v in source.entries:
                            merged.setdefault(k.name, (k, v))
                    elif not isinstance(source, Bad):
                        self._problem(Code.INVALID_VALUE, "'<<' merges only mappings", kloc)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(Code.INVALID_VALUE, "a mapping key must be a plain name", kloc)
                continue
            name = str(key_node.value)
            if name in explicit:
                first = explicit[name][0].loc
                self._problem(
                    Code.INVALID_YAML,
                    f"duplicate key '{name}' (first at line {first.line})",
                    kloc,
                    "remove one of them; YAML would silently keep only the last",
                )
            explicit[name] = (Key(name, kloc), self._convert(value_node, file, chain, depth + 1))
        entries = {**merged, **explicit}
        return Map(tuple(entries.values()), loc)

    def _include(self, node: yaml.Node, loc: Loc, chain: tuple[str, ...], depth: int) -> Node:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self._problem(Code.INVALID_VALUE, "!include takes a file path", loc)
            return Bad(loc)
        name = str(node.value).strip()
        target = os.path.normpath(os.path.join(os.path.dirname(loc.file), name))
        refused = problem(name, Kind.PATH) or problem(target, Kind.PATH)
        if refused is not None:
            self._problem(Code.INVALID_VALUE, f"!include {refused.message}", loc, refused.hint)
            return Bad(loc)
        tree = self._compose_file(target, chain, loc)
        return Bad(loc) if tree is None else tree

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Node:
        raw = str(node.value)
        tag = node.tag
        value: object = raw
        if tag.startswith("!"):
            self._unknown_tag(tag, loc)
            return Bad(loc)
        try:
            if tag == "tag:yaml.org,2002:null":
                value = None
            elif tag == "tag:yaml.org,2002:bool":
                value = _SCALARS.construct_yaml_bool(node)
            elif tag == "tag:yaml.org,2002:int":
                value = _SCALARS.construct_yaml_int(node)
            elif tag == "tag:yaml.org,2002:float":
                value = _SCALARS.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            value = raw
        return Scalar(value, raw, loc)

    def _unknown_tag(self, tag: str, loc: Loc) -> None:
        self._problem(
            Code.INVALID_YAML,
            f"unknown tag '{tag}'",
            loc,
            f"the only custom tag is {INCLUDE_TAG}; quote the value if '!' is part of it",
        )

    def _problem(self, code: Code, message: str, loc: Loc, hint: str = "") -> None:
        self.diagnostics.append(located(code, message, loc, hint))
