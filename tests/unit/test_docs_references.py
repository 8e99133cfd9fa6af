"""Every test that docs/security.md names as the proof of a key exists (no stale references)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_security_doc_names_only_existing_tests() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    refs = REFERENCE.findall(text)
    assert len(refs) > 40
    missing = [
        f"{file}::{name}"
        for file, name in refs
        if not (ROOT / file).is_file() or name not in _defined(ROOT / file)
    ]
    assert missing == []
