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


# References to texts outside this repository (the specs and notes it was built from): the
# docs and the code must point at docs/ pages instead, so that they stand on their own.
OUTSIDE = re.compile(
    r"spec/[a-z]+\.md|\b[Ss]pec (?:lifecycle|privileged|sandbox|core|section)\b|\bspec ?§"
    r"|upstream(?:-core|-privileged)?(?:\.md)? ?§|upstream-(?:core|privileged)"
    r"|style-anchors|kernel-notes|peers\.md|/work/|shared/(?:spec|reference|design)"
    r"|reference/[a-z-]+\.md|\bthe spec\b|\bspec's\b|\bnormative\b"
)
SCANNED = ("README.md", "docs", "src", "bench", "tests", "examples", "packaging", "scripts")
SUFFIXES = {".md", ".py", ".yaml", ".sh", ".service", ".toml", ""}


def _scanned_files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        out.extend(p for p in files if p.suffix in SUFFIXES and "__pycache__" not in p.parts)
    return [p for p in out if p.resolve() != Path(__file__).resolve()]


def test_nothing_points_at_specs_outside_the_repository() -> None:
    files = _scanned_files()
    assert len(files) > 100
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_the_pattern_catches_what_it_is_for() -> None:
    for text in (
        "see spec/privileged.md section 2",
        "(spec lifecycle §6)",
        "spec section 10",
        "upstream §4.2 step 3",
        "reference/upstream-core.md",
        "The normative text is elsewhere",
    ):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("def spec(self) -> EnvSpec:  # docs/manifest.md, Readiness")
