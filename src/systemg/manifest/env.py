"""``${VAR}`` expansion in manifest strings and the env file format. Pure functions.

Only ``${NAME}`` and ``${NAME:-default}`` are expanded; every other ``$`` form is left alone
because ``command`` strings belong to the shell (``$HOME``, ``$(date)``, ``${#x}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from systemg.manifest.kernel import Kind, problem
from systemg.manifest.values import is_env_name

# --- ${VAR} expansion -------------------------------------------------------------------------

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingVariableError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``${NAME}`` and ``${NAME:-default}`` from ``environ``; ``$${`` is a literal ``${``.

    Other ``$`` forms (``$HOME``, ``$(cmd)``, ``${#x}``) are left for the shell of ``command``.
    """
    if "${" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariableError(name)

    return _VAR.sub(sub, text)


# --- env files --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvFileProblem:
    line: int
    message: str
    hint: str = "write one KEY=VALUE per line"


def parse_env_file(text: str) -> tuple[tuple[tuple[str, str], ...], tuple[EnvFileProblem, ...]]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines, ``export`` and quotes allowed.

    Returns the pairs in file order (a later duplicate wins when turned into a dict) and every
    malformed line, so all of them can be reported at once. A value the kernel cannot take
    (a NUL byte, a ``NAME=VALUE`` too long for ``execve``) is a malformed line too.
    """
    pairs: list[tuple[str, str]] = []
    problems: list[EnvFileProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[7:].lstrip()
        key, sep, val = stripped.partition("=")
        key = key.strip()
        if not sep:
            problems.append(EnvFileProblem(number, f"expected KEY=VALUE, got '{stripped[:60]}'"))
            continue
        if not is_env_name(key):
            problems.append(EnvFileProblem(number, f"'{key[:60]}' is not a valid variable name"))
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        elif val[:1] in ("'", '"'):
            problems.append(EnvFileProblem(number, f"unterminated quote in the value of {key}"))
            continue
        refused = problem(val, Kind.ENV_VALUE, env_name=key)
        if refused is not None:
            problems.append(EnvFileProblem(number, f"{key}: {refused.message}", refused.hint))
            continue
        pairs.append((key, val))
    return tuple(pairs), tuple(problems)
