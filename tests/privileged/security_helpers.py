"""``systemd-analyze security --offline=yes`` on a hand-written unit, read back per item.

systemd 252 prints the overall score only in its text output and the per-item badness only in
its JSON with ``SYSTEMD_ANALYZE_DEBUG=1`` (which adds ``weight``, ``badness``, ``range``), so
both are run. ``badness`` None means "does not apply" (systemd's UINT64_MAX).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from systemg.security.checks import CHECKS

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd 252)"
)
SYSTEMD_FIELDS = {c.json_field for c in CHECKS if c.systemd}


def systemd_analyze(unit_dir: Path, name: str, settings: str) -> tuple[float, dict[str, Any]]:
    """The overall exposure and the rows by ``json_field`` for a unit with ``settings``."""
    path = unit_dir / f"sec-{name}.service"
    path.write_text(f"[Unit]\nDescription={name}\n[Service]\nExecStart=/bin/sleep 3600\n{settings}")
    return analyze_unit(path)


def analyze_unit(path: Path) -> tuple[float, dict[str, Any]]:
    """``systemd-analyze security --offline=yes`` of the unit file ``path``."""
    env = {**os.environ, "SYSTEMD_ANALYZE_DEBUG": "1", "SYSTEMD_COLORS": "0"}
    cmd = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    rows = json.loads(
        subprocess.run([*cmd, "--json=short", str(path)], env=env, capture_output=True,
                       text=True, check=True).stdout
    )  # fmt: skip
    text = subprocess.run([*cmd, str(path)], capture_output=True, text=True, check=True).stdout
    overall = text.strip().splitlines()[-1]  # "→ Overall exposure level for X: 9.6 UNSAFE 😨"
    value = float(overall.split(": ", 1)[1].split()[0])
    return value, {r["json_field"]: r for r in rows}


def badness(row: dict[str, Any]) -> int | None:
    return None if row["badness"] > 1000 else int(row["badness"])


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``json_field -> (our badness, systemd's)`` for every item whose badness differs; also
    checks that both use the same weight and range for every systemd item."""
    assert set(theirs) == SYSTEMD_FIELDS
    checks = {c["json_field"]: c for c in ours["checks"]}
    for field, row in theirs.items():
        assert (checks[field]["weight"], checks[field]["range"]) == (row["weight"], row["range"])
    return {
        field: (checks[field]["badness"], badness(row))
        for field, row in theirs.items()
        if checks[field]["badness"] != badness(row)
    }
