"""``sysg export systemd`` as a person runs it: the stream, ``-o DIR``, ``--install``, what
is listed as dropped (exit 3), and a bad manifest that exports nothing."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from systemg.cli.main import main
from systemg.export.writer import SYSTEM_UNIT_DIR, UNIT_DIR_ENV, install_dir
from tests.support.runtime import SYSG

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests/data/export"


def sysg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSG, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_nothing_dropped_exits_0_with_a_quiet_stderr() -> None:
    done = sysg("export", "systemd", "-c", str(DATA / "every-key.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    headers = [line for line in done.stdout.splitlines() if line.startswith("# file: ")]
    assert headers[0] == "# file: shop-migrate.service"
    assert headers[-1] == "# file: shop.target"
    assert "# file: shop-api.socket" in headers
    assert "# file: shop-report.timer" in headers


def test_the_stream_holds_exactly_the_files_of_o(tmp_path: Path) -> None:
    stream = sysg("export", "systemd", "-c", str(DATA / "every-key.yaml")).stdout
    done = sysg("export", "systemd", "-c", str(DATA / "every-key.yaml"), "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    parts = [p for p in stream.split("# file: ") if p]
    from_stream = {}
    for part in parts:
        name, _, text = part.partition("\n")
        from_stream[name] = text.rstrip("\n") + "\n"
    assert from_stream == files
    assert sorted(done.stdout.split()) == sorted(
        ["wrote"] * len(files) + [str(tmp_path / n) for n in files]
    )


def test_what_has_no_equivalent_is_a_comment_and_a_stderr_line_and_exit_3() -> None:
    done = sysg("export", "systemd", "-c", str(DATA / "dropped.yaml"))
    assert done.returncode == 3
    base = "projects.lab.services.web"
    expected = [
        f"{base}.isolation.pid = true",
        f"{base}.limits.cgroup.root = /sys/fs/cgroup",
        f"{base}.listen[0] = fd:web",
        f"{base}.env.inherit_env = true",
        f"{base}.env.clear_session_vars = false",
        f"{base}.deployment.strategy = rolling (grace_period 2s)",
        f"{base}.deployment.health_check = http://127.0.0.1:8080/healthz",
        f"{base}.liveness = 127.0.0.1:8080",
        f"{base}.hooks.onstop.timeout = 30s",
        f"{base}.logs.max_bytes = 1048576",
        f"{base}.logs.max_files = 3",
    ]
    lines = done.stderr.splitlines()
    assert lines[0].startswith("sysg export: 11 setting(s) have no systemd equivalent")
    listed = [line.strip().split(": no systemd equivalent")[0] for line in lines[1:]]
    assert sorted(listed) == sorted(expected)
    for item in expected:
        assert f"# sysg: {item}: no systemd equivalent (" in done.stdout
    # the units are still written: the rest of the service maps
    assert "ExecStart=/bin/sleep 3600" in done.stdout


def test_a_bad_manifest_exports_nothing_and_reports_what_validate_reports(
    tmp_path: Path,
) -> None:
    bad = str(DATA / "bad.yaml")
    out = tmp_path / "units"
    done = sysg("export", "systemd", "-c", bad, "-o", str(out))
    validate = sysg("validate", "-c", bad)
    assert done.returncode == validate.returncode == 1
    assert done.stdout == ""
    assert done.stderr == validate.stderr
    assert "error[SG0210]: services.web.restart_policy" in done.stderr
    assert "error[SG0212]: services.web.limits.nofle" in done.stderr
    assert not out.exists()
    missing = sysg("export", "systemd", "-c", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2
    assert missing.stdout == ""


def test_o_writes_atomically_and_keeps_env_file_values_private(tmp_path: Path) -> None:
    done = sysg(
        "export", "systemd", "-c", str(REPO / "tests/data/good/full.yaml"), "-o", str(tmp_path)
    )
    assert done.returncode == 3  # full.yaml has an fd: listen, a cgroup root, log sizes
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.startswith(".")]  # no temporary file is left behind
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    # the api project reads _files/api.env: its values are written into the unit, 0600
    assert modes["api-web.service"] == 0o600
    assert 'Environment="DB_HOST=localhost"' in (tmp_path / "api-web.service").read_text()
    assert modes["api.target"] == 0o644
    # exporting again replaces the files in place
    again = sysg(
        "export", "systemd", "-c", str(REPO / "tests/data/good/full.yaml"), "-o", str(tmp_path)
    )
    assert again.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_install_writes_into_the_unit_dir_and_only_prints_systemctl(tmp_path: Path) -> None:
    units = tmp_path / "etc-systemd-system"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "systemctl-ran"
    (fake_bin / "systemctl").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (fake_bin / "systemctl").chmod(0o755)
    done = sysg(
        "export",
        "systemd",
        "-c",
        str(DATA / "every-key.yaml"),
        "--install",
        env={UNIT_DIR_ENV: str(units), "PATH": f"{fake_bin}:{os.environ['PATH']}"},
    )
    if os.geteuid() != 0:
        pytest.skip("--install needs root (the refusal is tested in-process below)")
    assert done.returncode == 0, done.stderr
    assert (units / "shop.target").is_file()
    assert (units / "shop-api.socket").is_file()
    assert done.stdout.splitlines()[-1] == (
        "systemctl daemon-reload && systemctl enable --now shop.target"
    )
    assert not marker.exists()  # it never runs systemctl itself


def test_install_dir_defaults_to_etc_systemd_system() -> None:
    assert Path("/etc/systemd/system") == SYSTEM_UNIT_DIR
    assert install_dir({}) == SYSTEM_UNIT_DIR
    assert install_dir({UNIT_DIR_ENV: ""}) == SYSTEM_UNIT_DIR
    assert install_dir({UNIT_DIR_ENV: "/stage/etc/systemd/system"}) == Path(
        "/stage/etc/systemd/system"
    )


def test_install_as_a_normal_user_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv(UNIT_DIR_ENV, str(tmp_path / "units"))
    code = main(["export", "systemd", "-c", str(DATA / "every-key.yaml"), "--install", "--plain"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[SG0705]: --install requires root" in err
    assert "help: run it with sudo, or write the units elsewhere with -o DIR" in err
    assert not (tmp_path / "units").exists()


def test_one_service_one_project_and_a_prefix(tmp_path: Path) -> None:
    full = str(REPO / "tests/data/good/full.yaml")
    one = sysg(
        "export",
        "systemd",
        "-c",
        str(DATA / "every-key.yaml"),
        "-s",
        "shop/api",
        "-o",
        str(tmp_path),
    )
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shop-api.service",
        "shop-api.socket",
        "shop.target",
    ]
    both = sysg("export", "systemd", "-c", full, "--prefix", "web")
    assert both.returncode == 1
    assert "error[SG0002]: --prefix names the units of one project" in both.stderr
    named = sysg("export", "systemd", "-c", full, "-p", "api", "--prefix", "shop")
    assert "# file: shop-web.service" in named.stdout
    assert "Requires=shop-db.service" in named.stdout
    assert "# file: shop.target" in named.stdout
    unknown = sysg("export", "systemd", "-c", full, "-s", "nope")
    assert unknown.returncode == 1
    assert "error[SG0202]" in unknown.stderr
    assert unknown.stdout == ""
