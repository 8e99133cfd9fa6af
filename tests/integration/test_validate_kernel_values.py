"""``sysg validate`` refuses what the kernel cannot take, as the installed CLI shows it (issue 9).

Before, ``exec: ["sleep", "10\\0x"]`` validated and then made the supervisor's ``posix_spawn``
raise; an env file or ``!include`` path with a NUL crashed ``validate`` itself with a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SYSG = str(Path(sys.executable).parent / "sysg")


def sysg(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSG_TEST_")}
    env["NO_COLOR"] = "1"
    return subprocess.run([SYSG, *args], capture_output=True, text=True, timeout=60, env=env)


def test_validate_prints_the_nul_escaped_with_location_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('version: "2"\nservices:\n  web:\n    exec: ["sleep", "10\\0x"]\n')
    proc = sysg("validate", "-c", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    assert "error[SG0210]: services.web.exec[1]: '10\\x00x' contains a NUL" in err
    assert f"{path}:4:21" in err
    assert "help: " in err
    assert "invalid" in err


def test_validate_json_lists_every_refusal_and_never_crashes(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'version: "2"\nservices:\n'
        '  web:\n    command: "run \\0"\n    env: {file: "x\\0.env"}\n'
        '  api: !include "api\\0.yaml"\n'
    )
    proc = sysg("validate", "-c", str(path), "--format", "json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False
    found = {(d["code"], d["path"], d["line"]) for d in doc["diagnostics"]}
    assert found == {
        ("SG0210", "services.web.command", 4),
        ("SG0210", "services.web.env.file", 5),
        ("SG0210", "", 6),
    }
    assert all("\\x00" in d["message"] and d["suggestion"] for d in doc["diagnostics"])
