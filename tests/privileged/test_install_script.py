"""``scripts/install-systemg.sh`` installed into a temp root (DESTDIR), as root.

Nothing here touches the real ``/etc/systemg``, ``/var/lib/systemg``, ``/var/log/systemg`` or
``/opt/systemg``: every install goes under a fresh temp directory with ``--no-group`` (or
``--group root``, which exists everywhere) and ``--no-systemctl``, and the directory is removed
afterwards. The installer really runs ``python3 -m venv`` and ``pip install`` of this repository
(pip fetches PyYAML, psutil and the build backend), so each install takes several seconds.
"""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from systemg import __version__

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-systemg.sh"
EXAMPLE = REPO / "examples" / "system-mode.yaml"
PREFIX = "/opt/systemg"
# "-": a service that fails to start makes `sysg start` exit 1, which must not fail the unit.
EXEC_START = "-/usr/local/bin/sysg --sys start --config /etc/systemg/systemg.yaml --daemonize"
EXEC_STOP = "/usr/local/bin/sysg --sys stop --supervisor"
INSTALL_TIMEOUT = 240  # seconds for one run of the installer (venv + pip install)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Install:
    root: Path
    output: str

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def run_installer(
    root: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [
        "bash",
        str(SCRIPT),
        "--destdir",
        str(root),
        "--no-systemctl",
        "--prefix",
        PREFIX,
        "--source",
        str(REPO),
        *extra,
    ]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env=env or clean_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    # The dev venv of the test run must not leak into the installer's venv.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DESTDIR"):
        env.pop(name, None)
    return env


def temp_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="sg-install-"))
    os.chmod(root, 0o755)
    return root


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def run_installed_sysg(inst: Install, *args: str) -> subprocess.CompletedProcess[str]:
    # The staged scripts name /opt/systemg/venv/bin/python (their final path), so run the
    # installed console script with the staged venv's interpreter.
    venv = inst.path(PREFIX) / "venv"
    return subprocess.run(
        [str(venv / "bin" / "python"), str(venv / "bin" / "sysg"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[Install]:
    root = temp_root()
    try:
        proc = run_installer(root, "--no-group")
        yield Install(root, proc.stdout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_help_lists_every_flag() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in (
        "--prefix",
        "--destdir",
        "--source",
        "--no-systemctl",
        "--group",
        "--no-group",
        "--uninstall",
    ):
        assert flag in proc.stdout


def test_unknown_flag_is_refused() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--prefx", "/x"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "unknown option '--prefx'" in proc.stderr


def test_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed on this machine")
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_directories_have_the_documented_modes(installed: Install) -> None:
    etc = installed.path("/etc/systemg")
    assert etc.is_dir()
    assert mode_of(etc) == 0o755
    assert etc.stat().st_uid == 0
    for private in ("/var/lib/systemg", "/var/log/systemg"):
        path = installed.path(private)
        assert path.is_dir()
        assert not path.is_symlink()
        # --no-group: no operator group, so only root may enter (docs/security.md §2).
        assert mode_of(path) == 0o700, private
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)
    assert f"created {etc}" in installed.output


def test_unit_runs_the_system_supervisor(installed: Install) -> None:
    path = installed.path("/etc/systemd/system/sysg.service")
    assert mode_of(path) == 0o644
    unit = read_unit(path)
    service = unit["Service"]
    assert service["Type"] == "forking"
    assert service["PIDFile"] == "/var/lib/systemg/sysg.pid"
    assert service["ExecStart"] == EXEC_START
    assert service["ExecStop"] == EXEC_STOP
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "process"
    assert unit["Unit"]["Documentation"] == f"file:{PREFIX}/share/doc/systemg/security.md"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # The template's placeholders are all substituted, and no LISTEN_FDS=0 is forced.
    text = path.read_text()
    assert "@" not in text.replace("install-systemg.sh", "")
    assert "LISTEN_FDS" not in "\n".join(
        line for line in text.splitlines() if not line.startswith("#")
    )


def test_unit_passes_systemd_analyze_verify(installed: Install, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # verify checks that ExecStart's program exists and is executable on *this* host, and the
    # staged /usr/local/bin/sysg points at the final /opt/systemg path: point the copy at the
    # staged console script instead (same unit otherwise).
    staged = installed.path(PREFIX) / "venv" / "bin" / "sysg"
    unit = tmp_path / "sysg.service"
    text = installed.path("/etc/systemd/system/sysg.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/sysg", str(staged)))
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sysg.service" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_example_manifest_is_installed_root_owned(installed: Install) -> None:
    manifest = installed.path("/etc/systemg/systemg.yaml")
    assert manifest.is_file()
    assert not manifest.is_symlink()
    assert manifest.read_bytes() == EXAMPLE.read_bytes()
    st = manifest.stat()
    # What a root supervisor accepts: owned by root, not group- or world-writable.
    assert st.st_uid == 0
    assert stat.S_IMODE(st.st_mode) & 0o022 == 0


def test_installed_sysg_runs(installed: Install) -> None:
    link = installed.path("/usr/local/bin/sysg")
    assert link.is_symlink()
    assert os.readlink(link) == f"{PREFIX}/venv/bin/sysg"
    script = installed.path(PREFIX) / "venv" / "bin" / "sysg"
    # Staged for its final root: the shebang names /opt/systemg, not the temp DESTDIR.
    assert script.read_text().splitlines()[0] == f"#!{PREFIX}/venv/bin/python"
    proc = run_installed_sysg(installed, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"systemg {__version__}"


BASH_COMPLETION = "/usr/share/bash-completion/completions/sysg"
ZSH_COMPLETION = "/usr/local/share/zsh/site-functions/_sysg"


def test_completion_scripts_are_installed_and_complete(installed: Install) -> None:
    bash, zsh = installed.path(BASH_COMPLETION), installed.path(ZSH_COMPLETION)
    for path, shell in ((bash, "bash"), (zsh, "zsh")):
        assert (mode_of(path), path.stat().st_uid) == (0o644, 0), path
        assert path.read_text() == run_installed_sysg(installed, "completion", shell).stdout
    assert zsh.read_text().startswith("#compdef sysg\n")
    # The installed bash script completes the installed sysg's commands.
    script = f'source {bash}; COMP_WORDS=(sysg mi); COMP_CWORD=1; _sysg; echo "${{COMPREPLY[@]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "migrate", proc.stderr


def test_rerun_is_idempotent_and_uninstall_removes_what_it_installed(tmp_path: Path) -> None:
    root = temp_root()
    try:
        inst = Install(root, run_installer(root, "--no-group").stdout)
        unit = inst.path("/etc/systemd/system/sysg.service")
        manifest = inst.path("/etc/systemg/systemg.yaml")
        watched = ["/etc/systemg", "/var/lib/systemg", "/var/log/systemg"]

        def snapshot() -> dict[str, object]:
            return {
                "unit": unit.read_text(),
                "manifest": manifest.read_bytes(),
                "link": os.readlink(inst.path("/usr/local/bin/sysg")),
                "completion": inst.path(BASH_COMPLETION).read_text(),
                **{p: (mode_of(inst.path(p)), inst.path(p).stat().st_gid) for p in watched},
            }

        before = snapshot()
        again = run_installer(root, "--no-group")
        assert snapshot() == before
        assert f"kept existing {manifest}" in again.stdout
        assert run_installed_sysg(inst, "--version").returncode == 0

        # An operator's edits survive a re-run; with a group the private dirs become 0750.
        manifest.write_text("version: '2'\nservices: {}\n")
        run_installer(root, "--group", "root")
        assert manifest.read_text() == "version: '2'\nservices: {}\n"
        for private in ("/var/lib/systemg", "/var/log/systemg"):
            path = inst.path(private)
            assert (mode_of(path), path.stat().st_gid) == (0o750, 0), private

        # A fake systemctl on PATH proves DESTDIR never reaches the host's systemd.
        fake_bin = tmp_path / "bin"
        fake_bin.mkdir()
        calls = tmp_path / "systemctl.calls"
        systemctl = fake_bin / "systemctl"
        systemctl.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
        systemctl.chmod(0o755)
        env = clean_env()
        env["PATH"] = f"{fake_bin}:{env['PATH']}"
        out = subprocess.run(
            ["bash", str(SCRIPT), "--destdir", str(root), "--prefix", PREFIX, "--uninstall"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert not calls.exists()
        for gone in (
            f"{PREFIX}/venv",
            PREFIX,
            "/usr/local/bin/sysg",
            BASH_COMPLETION,
            ZSH_COMPLETION,
            "/etc/systemd/system/sysg.service",
            "/var/lib/systemg",
            "/var/log/systemg",
        ):
            path = inst.path(gone)
            assert not path.is_symlink(), gone
            assert not path.exists(), gone
            assert f"removed {path}" in out.stdout
        # The edited manifest (and so /etc/systemg) is the operator's: kept, and said so.
        assert manifest.exists()
        assert f"kept {manifest} (edited)" in out.stdout

        # Uninstalling twice is fine; an unedited example manifest is removed with its dir.
        shutil.copyfile(EXAMPLE, manifest)
        out = subprocess.run(
            ["bash", str(SCRIPT), "--destdir", str(root), "--prefix", PREFIX, "--uninstall"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert out.returncode == 0, out.stderr
        assert not inst.path("/etc/systemg").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
