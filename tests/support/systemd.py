"""The real systemd 252 tools, as the export tests use them (no PID 1 needed).

- ``verify(dir)``: ``systemd-analyze verify --man=no --generators=no`` on every unit of a
  directory, returning the exit code and every stderr line (the tests require none).
- ``dump(dir, target)``: what systemd parsed, read from ``systemd --test --system`` (it
  refuses to run as root, so it runs as nobody): per unit, each ``Key: value`` and each
  ``Exec*`` command line decoded back to its argv.
- ``calendar(expr, base, n)``: the next ``n`` elapses of an ``OnCalendar=`` expression.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SYSTEMD = "/lib/systemd/systemd"


def available() -> str:
    """Why the tools cannot run here ("" when they can)."""
    if shutil.which("systemd-analyze") is None or not os.path.exists(SYSTEMD):
        return "needs systemd-analyze and /lib/systemd/systemd (the systemd package)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "needs setpriv to run systemd --test as nobody"
    return ""


def verify(directory: Path) -> tuple[int, list[str]]:
    units = sorted(str(p) for p in directory.iterdir() if not p.name.startswith("."))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr.splitlines()


@dataclass
class Parsed:
    """One unit as systemd parsed it."""

    props: dict[str, list[str]] = field(default_factory=dict)
    commands: dict[str, list[list[str]]] = field(default_factory=dict)

    def one(self, key: str) -> str:
        values = self.props.get(key, [])
        assert len(values) == 1, f"{key}: {values}"
        return values[0]


def dump(directory: Path, target: str) -> dict[str, Parsed]:
    # systemd --test runs as nobody: it reads a world-readable copy of the units.
    copy = Path(tempfile.mkdtemp(prefix="sysg-units-", dir="/tmp"))
    try:
        os.chmod(copy, 0o755)
        for p in directory.iterdir():
            shutil.copyfile(p, copy / p.name)
            os.chmod(copy / p.name, 0o644)
        return _dump(copy, target)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _dump(directory: Path, target: str) -> dict[str, Parsed]:
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    proc = subprocess.run(
        [
            *(prefix if os.geteuid() == 0 else []),
            SYSTEMD,
            "--test",
            "--system",
            f"--unit={target}",
            "--no-pager",
            "--log-target=console",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": str(directory)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    units: dict[str, Parsed] = {}
    current: Parsed | None = None
    command: str | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("\t-> Unit "):
            current = units.setdefault(line[len("\t-> Unit ") : -1], Parsed())
            command = None
        elif current is None:
            continue
        elif line.startswith("\t\t-> "):
            command = line.strip()[3:].rstrip(":")
        elif line.startswith("\t\t\tCommand Line: ") and command:
            argv = split_command(line.split(": ", 1)[1])
            current.commands.setdefault(command, []).append(argv)
        elif line.startswith("\t\t") and not line.startswith("\t\t\t"):
            body = line[2:]
            key, sep, value = body.partition(": ")
            if not sep and body.endswith(":"):  # an empty value: "CapabilityBoundingSet: "
                key, value = body.rstrip(" :"), ""
            current.props.setdefault(key, []).append(value)
            command = None
    return units


_C = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$", "s": " "}


def split_command(text: str) -> list[str]:
    """A dumped ``Command Line:`` back to argv (systemd quotes a word with C escapes and
    ``\\$``); ``$$`` becomes ``$``, as it does when systemd executes the line."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        word: list[str] = []
        quote = text[i] if text[i] in "\"'" else ""
        i += 1 if quote else 0
        while i < len(text) and (quote or text[i] != " "):
            ch = text[i]
            if quote and ch == quote:
                i += 1
                break
            if ch == "\\":
                nxt = text[i + 1]
                if nxt == "x":
                    word.append(chr(int(text[i + 2 : i + 4], 16)))
                    i += 4
                    continue
                word.append(_C.get(nxt, nxt))
                i += 2
                continue
            word.append(ch)
            i += 1
        out.append("".join(word).replace("$$", "$"))
    return out


def calendar(expression: str, base: datetime, count: int) -> list[datetime]:
    """The next ``count`` elapses after ``base`` (UTC), from ``systemd-analyze calendar``."""
    proc = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={count}",
            f"--base-time=@{int(base.timestamp())}",
            expression,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
    )
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", proc.stdout)
    return [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in found]


def exposure(unit: Path) -> float:
    """``systemd-analyze security --offline=yes``'s overall exposure (0.0-10.0) of a unit:
    the anchor sandbox.md §4 sets for ``sysg security``."""
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=unit.parent,
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert m is not None, proc.stdout[-500:]
    return float(m.group(1))
