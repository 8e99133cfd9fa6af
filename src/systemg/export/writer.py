"""Where exported units go: one stream on stdout, or files written atomically into a
directory (``-o DIR``, or ``/etc/systemd/system`` for ``--install``).

Atomic: every unit is first written and fsynced as a hidden temporary file in the target
directory, and only when all of them are written are they renamed into place (a rename
within one filesystem is atomic), so systemd never reads a half-written unit and a failed
export leaves no partial set behind. The one impure module of ``systemg.export``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from systemg.export.units import UnitFile

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
UNIT_DIR_ENV = "SYSTEMG_SYSTEMD_UNIT_DIR"
"""Relocates ``--install``'s directory (tests; a staging root for an image build)."""


def install_dir(environ: Mapping[str, str]) -> Path:
    """``/etc/systemd/system``, unless ``SYSTEMG_SYSTEMD_UNIT_DIR`` names another."""
    override = environ.get(UNIT_DIR_ENV, "")
    return Path(override) if override else SYSTEM_UNIT_DIR


def stream(units: Sequence[UnitFile]) -> str:
    """Every unit after a ``# file: NAME`` line, separated by blank lines."""
    return "\n".join(f"# file: {u.name}\n{u.text}" for u in units)


def write_units(directory: Path, units: Sequence[UnitFile]) -> list[Path]:
    """Write ``units`` into ``directory`` (created if missing) all-or-nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for unit in units:
            final = directory / unit.name
            tmp = directory / f".{unit.name}.sysg-{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, unit.mode)
            staged.append((tmp, final))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(unit.text)
                fh.flush()
                os.fchmod(fh.fileno(), unit.mode)  # not narrowed by the umask
                os.fsync(fh.fileno())
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    _sync_dir(directory)
    return [final for _, final in staged]


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
