"""``sysg migrate`` as a person runs it: stdout, ``--in-place`` with ``.bak``, refusals.

The converted file is checked with ``sysg validate`` itself, and a version 1 file given
to ``validate`` is refused with a hint that names ``sysg migrate``.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from tests.integration import test_validate_cli as validate_cli

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
sysg = validate_cli.sysg  # the real executable, NO_COLOR, no SYSG_TEST_* overrides


def _corpus(tmp_path: Path) -> Path:
    """tests/data/v1 and the include it points at, copied so files can be rewritten."""
    shutil.copytree(DATA / "v1", tmp_path / "v1")
    shutil.copytree(DATA / "good" / "_files", tmp_path / "good" / "_files")
    return tmp_path / "v1"


def test_validate_refuses_version_1_and_names_migrate(tmp_path: Path) -> None:
    proc = sysg("validate", "-c", str(_corpus(tmp_path) / "every-key.yaml"))
    assert proc.returncode == 1
    assert "SG0214" in proc.stderr
    assert "sysg migrate FILE" in proc.stderr


def test_stdout_is_a_manifest_that_validates(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    for name in ("every-key.yaml", "project-id.yaml", "loose.yaml"):
        source = corpus / name
        before = source.read_bytes()
        proc = sysg("migrate", str(source))
        assert proc.returncode == 0, proc.stderr
        assert source.read_bytes() == before  # printing never writes
        out = corpus / f"v2-{name}"
        out.write_text(proc.stdout)
        check = sysg("validate", "-c", str(out))
        assert check.returncode == 0, check.stdout + check.stderr
        assert "✓ valid" in check.stdout


def test_in_place_keeps_a_bak_and_the_mode(tmp_path: Path) -> None:
    source = _corpus(tmp_path) / "every-key.yaml"
    before = source.read_text()
    source.chmod(0o640)
    proc = sysg("migrate", str(source), "--in-place")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert f"{source}.bak" in proc.stderr
    assert Path(f"{source}.bak").read_text() == before
    assert stat.S_IMODE(source.stat().st_mode) == 0o640
    assert 'version: "2"' in source.read_text()
    assert sysg("validate", "-c", str(source)).returncode == 0
    assert not [p.name for p in source.parent.iterdir() if p.name.startswith(".sysg-migrate-")]
    # Again: version 2 already, nothing to do, nothing rewritten.
    again = sysg("migrate", str(source), "--in-place")
    assert again.returncode == 0
    assert "already version 2" in again.stderr
    assert Path(f"{source}.bak").read_text() == before


def test_refused_fields_write_nothing(tmp_path: Path) -> None:
    source = _corpus(tmp_path) / "refused.yaml"
    before = source.read_text()
    proc = sysg("migrate", str(source), "--in-place")
    assert proc.returncode == 1
    for field in ("project.owner", "project_dir", "status", "metrics"):
        assert f"'{field}' has no version 2 form" in proc.stderr
    assert source.read_text() == before
    assert not Path(f"{source}.bak").exists()


def test_a_result_that_does_not_validate_is_not_printed(tmp_path: Path) -> None:
    source = tmp_path / "m.yaml"
    source.write_text('version: "1"\nproject: p\nservices:\n  web: {depends_on: [db]}\n')
    proc = sysg("migrate", str(source))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "does not validate" in proc.stderr
    assert "SG0215" in proc.stderr


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    proc = sysg("migrate", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2
    assert "SG0203" in proc.stderr
