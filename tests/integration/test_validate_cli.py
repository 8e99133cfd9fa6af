"""``sysg validate`` as a person runs it: the real executable, exit codes, text and JSON
(the upstream's report shape: ``config``, ``valid``, ``startable``, ``diagnostics`` with
``kind``, ``why``, ``suggestion``, ``doc``, plus our ``code``, ``path`` and ``file``).

Every file under tests/data/bad/ states its expectation on line 1::

    # expect: SG0210 services.web.limits.nice line 7

(``-`` for an empty path). The line may point into an included or env file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime import Runtime

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
SYSG = str(Path(sys.executable).parent / "sysg")
EXPECT = re.compile(r"^# expect: (SG\d{4}) (\S.*?) line (\d+)$")
BAD = sorted((DATA / "bad").glob("*.yaml"))
GOOD = sorted((DATA / "good").glob("*.yaml")) + sorted((ROOT / "examples").glob("**/*.yaml"))
FIELDS = {
    *("severity", "line", "column", "kind", "message", "why", "suggestion", "doc"),
    *("code", "path", "file"),
}


def sysg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSG_TEST_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [SYSG, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def validate_json(path: Path) -> tuple[int, dict[str, Any]]:
    proc = sysg("validate", "-c", str(path), "--format", "json")
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_bad_corpus_is_large_enough() -> None:
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_manifest_is_refused_with_code_path_and_line(path: Path) -> None:
    m = EXPECT.match(path.read_bytes().split(b"\n", 1)[0].decode())
    assert m, f"{path.name}: line 1 must be '# expect: CODE PATH line N'"
    code, field, line = m.group(1), m.group(2), int(m.group(3))
    field = "" if field == "-" else field
    rc, doc = validate_json(path)
    assert rc == 1
    assert (doc["valid"], doc["startable"]) == (False, False)
    assert doc["config"] == str(path)
    found = [(d["code"], d["path"], d["line"]) for d in doc["diagnostics"]]
    assert (code, field, line) in found, found
    for d in doc["diagnostics"]:
        assert set(d) == FIELDS
        assert d["message"]
        assert d["file"]
        assert all(d[k] for k in ("kind", "why", "suggestion", "doc")), d


@pytest.mark.parametrize("path", GOOD, ids=[str(p.relative_to(ROOT)) for p in GOOD])
def test_good_manifest_is_valid(path: Path) -> None:
    rc, doc = validate_json(path)
    # Not root (the suite's `nobody` run): a service that switches user cannot start here.
    needs_root = [d for d in doc["diagnostics"] if d["kind"] == "requires-system-mode"]
    if os.geteuid() == 0 or not needs_root:
        assert (rc, doc["valid"], doc["startable"]) == (0, True, True), doc["diagnostics"]
        assert all(d["severity"] == "warning" for d in doc["diagnostics"])
    else:
        assert (rc, doc["valid"], doc["startable"]) == (1, True, False), doc["diagnostics"]


def test_examples_validate_or_are_absent() -> None:
    examples = sorted((ROOT / "examples").glob("**/*.yaml"))
    if not examples:
        pytest.skip("no examples/*.yaml yet")
    for path in examples:
        done = sysg("validate", "-c", str(path))
        if os.geteuid() != 0 and "not startable in this mode" in done.stdout + done.stderr:
            assert done.returncode == 1, path  # valid, but it switches user: root only
            continue
        assert done.returncode == 0, path


def test_huge_file_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.write(b'version: "2"\nservices:\n')
        fh.write(b"  # padding\n" * (50 * 1024 * 1024 // 12))
    rc, doc = validate_json(path)
    assert rc == 1
    assert doc["diagnostics"][0]["code"] == "SG0219"


def test_alias_bomb_refused() -> None:
    rc, doc = validate_json(DATA / "bad" / "alias-bomb.yaml")
    assert rc == 1
    assert [d["code"] for d in doc["diagnostics"]] == ["SG0211"]
    assert "alias" in doc["diagnostics"][0]["message"]


def test_text_output_points_at_the_line_with_a_caret() -> None:
    path = DATA / "bad" / "nice-out-of-range.yaml"
    proc = sysg("validate", "-c", str(path))
    assert proc.returncode == 1
    assert "error[SG0210]: services.web.limits.nice: nice 40 is out of range -20..19" in proc.stderr
    assert f"--> {path}:7:13 (services.web.limits.nice)" in proc.stderr
    assert "   7 |       nice: 40\n" + " " * 19 + "^" in proc.stderr
    assert "help: nice is an integer from -20" in proc.stderr
    assert "  kind: invalid-field-value (see docs/manifest.md#grammars)" in proc.stderr
    assert f"✗ invalid  {path} · 1 problem(s)" in proc.stderr


def test_text_output_for_a_valid_file_with_warnings(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    # Neither LSM is active on these hosts: validate warns that start would refuse it.
    path.write_text(
        'version: "2"\nservices:\n  a: {command: x, isolation: {apparmor_profile: p}}\n'
    )
    proc = sysg("validate", "-c", str(path))
    assert proc.returncode == 0
    assert "warning[SG0723]" in proc.stdout
    assert "services.a.isolation.apparmor_profile" in proc.stdout
    assert f"✓ valid  {path} (1 project(s), 1 service(s))" in proc.stdout


def test_every_problem_of_a_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'version: "2"\nservices:\n  a:\n    command: x\n    restart_policy: alwyas\n'
        "    limits: {nice: 40}\n    capabilities: [NET_BIND]\n"
    )
    rc, doc = validate_json(path)
    assert rc == 1
    assert [d["path"] for d in doc["diagnostics"]] == [
        "services.a.restart_policy",
        "services.a.limits.nice",
        "services.a.capabilities[0]",
    ]
    assert "CAP_NET_BIND_SERVICE" in doc["diagnostics"][2]["suggestion"]


def test_default_file_lookup(tmp_path: Path) -> None:
    proc = sysg("validate", cwd=tmp_path)
    assert proc.returncode == 1
    assert "SG0203" in proc.stderr
    assert "kind: unreadable-config" in proc.stderr
    (tmp_path / "sysg.yaml").write_text('version: "2"\nservices:\n  a: {command: x}\n')
    proc = sysg("validate", cwd=tmp_path)
    assert proc.returncode == 0
    assert "sysg.yaml" in proc.stdout
    (tmp_path / "systemg.yaml").write_text('version: "2"\nservices: {}\nbogus: 1\n')
    proc = sysg("validate", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["config"] == str(tmp_path / "systemg.yaml")


def test_unreadable_file_exits_1_as_unreadable_config(tmp_path: Path) -> None:
    rc, doc = validate_json(tmp_path / "missing.yaml")
    assert rc == 1
    assert (doc["valid"], doc["startable"]) == (False, False)
    assert [(d["code"], d["kind"]) for d in doc["diagnostics"]] == [("SG0203", "unreadable-config")]
    proc = sysg("validate", "-c", str(tmp_path))
    assert proc.returncode == 1
    assert "✗ unreadable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_imports_no_daemon_code(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('version: "2"\nservices:\n  a: {command: x}\n')
    code = (
        "import sys; from systemg.cli.main import main; rc = main(['validate', '-c', sys.argv[1]]);"
        "bad = [m for m in sys.modules if m.startswith(('systemg.daemon', 'systemg.spawn'))];"
        "print(bad); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_format_alone_is_json_and_xml_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('version: "2"\nservices:\n  a: {command: x}\n')
    bare = sysg("validate", "--format", "-c", str(path))
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout) == {
        "config": str(path),
        "valid": True,
        "startable": True,
        "diagnostics": [],
    }
    for fmt, said in (("xml", "--format xml is not supported"), ("yaml", "unknown --format")):
        refused = sysg("validate", "-c", str(path), "--format", fmt)
        assert refused.returncode != 0
        assert f"error[SG0002]: {said}" in refused.stderr
        assert "--format json" in refused.stderr
        assert refused.stdout == ""


UNKNOWN_KEY = """\
version: "2"
projects:
  demo:
    name: Demo
    services:
      nightly:
        command: "sh -c 'exit 4'"
        restart_policy: never
        on_error: /usecase/alert.sh
        cron:
          expression: "0 3 * * *"
"""


def test_unknown_key_is_refused_by_validate_and_start_and_the_fix_is_named(rt: Runtime) -> None:
    # The upstream's config-unknown-key-refused case, as its run.sh checks it (stdout+stderr).
    bad = rt.write("stack.yaml", UNKNOWN_KEY)
    proc = sysg("validate", "-c", str(bad))
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown-field" in said
    assert "on_error" in said
    assert "onerr" in said
    started = rt.sysg("start", "-c", str(bad), "--daemonize")
    assert started.returncode != 0
    assert "on_error" in started.stdout + started.stderr
    good = rt.write(
        "good.yaml",
        UNKNOWN_KEY.replace("on_error: ", "hooks:\n          onerr:\n            command: "),
    )
    checked = sysg("validate", "-c", str(good))
    assert checked.returncode == 0, checked.stderr
    rt.sysg("stop", "--supervisor")


def test_the_deprecated_project_shape_is_valid_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "legacy.yaml"
    path.write_text('version: "2"\nproject: {id: legacy}\nservices:\n  w: {command: x}\n')
    rc, doc = validate_json(path)
    assert (rc, doc["valid"], doc["startable"]) == (0, True, True)
    [d] = doc["diagnostics"]
    assert (d["severity"], d["kind"], d["code"], d["line"]) == (
        "warning",
        "deprecated-project-shape",
        "SG0223",
        2,
    )
    assert f"sysg migrate {path}" in d["suggestion"]


def _as_a_user(*args: str) -> subprocess.CompletedProcess[str]:
    """``sysg ARGS`` as a user that is not root: this one, or nobody when the tests run as root."""
    if os.geteuid() != 0:
        return sysg(*args)
    from tests.support.nobody import AS_NOBODY, world_readable_sysg

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_COLOR": "1", "HOME": "/tmp"}
    return subprocess.run(
        [*AS_NOBODY, world_readable_sysg(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_a_user_switch_is_valid_but_not_startable_without_root() -> None:
    with tempfile.TemporaryDirectory() as where:
        os.chmod(where, 0o755)
        path = Path(where) / "m.yaml"
        path.write_text(
            'version: "2"\nservices:\n  db: {command: x, user: root}\n  web: {command: y}\n'
        )
        path.chmod(0o644)
        proc = _as_a_user("validate", "-c", str(path), "--format", "json")
        assert proc.returncode == 1, proc.stderr
        doc = json.loads(proc.stdout)
        assert (doc["valid"], doc["startable"]) == (True, False)
        [d] = doc["diagnostics"]
        assert (d["kind"], d["code"], d["path"], d["severity"]) == (
            "requires-system-mode",
            "SG0705",
            "services.db.user",
            "error",
        )
        text = _as_a_user("validate", "-c", str(path))
        assert text.returncode == 1
        assert f"✗ not startable in this mode  {path} · 1 problem(s)" in text.stderr
        assert "kind: requires-system-mode" in text.stderr
        # Judged against the system supervisor, which is root: startable.
        system = _as_a_user("--sys", "validate", "-c", str(path), "--format", "json")
        assert system.returncode == 0, system.stderr
        assert json.loads(system.stdout)["startable"] is True
