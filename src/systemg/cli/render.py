"""Pure presentation: data in, text out. Colour and width are parameters, never globals."""

from __future__ import annotations

from collections.abc import Sequence

from systemg.errors import Diagnostic, SysgError

_RED = "\x1b[31;1m"
_YELLOW = "\x1b[33;1m"
_CYAN = "\x1b[36m"
_RESET = "\x1b[0m"


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def render_diagnostic(
    d: Diagnostic,
    *,
    color: bool = False,
    source: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """``error[SG0210]: message`` / ``  --> file:line:col (path)`` / caret / ``  help: hint``,
    then one ``  NOTE`` line per note.

    ``source`` is the text of ``d.file`` when the caller has it, to show the offending line.
    """
    label = "warning" if d.severity == "warning" else "error"
    head = _paint(f"{label}[{d.code}]", _YELLOW if label == "warning" else _RED, color)
    out = [f"{head}: {d.message}"]
    where = d.file
    if d.line is not None:
        where += f":{d.line}"
        if d.column is not None:
            where += f":{d.column}"
    if where or d.path:
        loc = f"  --> {where}" if where else "  -->"
        if d.path:
            loc += f" ({d.path})"
        out.append(_paint(loc, _CYAN, color))
    if source is not None and d.line is not None:
        lines = source.splitlines()
        if 0 < d.line <= len(lines):
            text = lines[d.line - 1].replace("\t", " ")
            gutter = f"{d.line:>4} | "
            out.append(f"{gutter}{text}")
            col = max(1, d.column or 1)
            out.append(" " * (len(gutter) + col - 1) + _paint("^", _RED, color))
    if d.hint:
        out.append(f"  help: {d.hint}")
    out.extend(f"  {note}" for note in notes)
    return "\n".join(out) + "\n"


def render_error(exc: SysgError, *, color: bool = False) -> str:
    return "".join(render_diagnostic(d, color=color) for d in exc.diagnostics)
