"""Version drift (docs/commands.md, `sysg restart`): a restart against a supervisor of
another systemg version recycles it (new supervisor, services on new pids), unless a
manifest it would load is invalid: then SG0303 and the old supervisor and its services are
untouched. The "old" systemg is a real copy of this package whose version says 0.0.1, in
its own venv, so its supervisor runs as a separate installation would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import systemg
from tests.support.runtime import Runtime, live_pid, pid_alive

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "exec sleep 3000"
        restart_policy: always
      api:
        command: "exec sleep 3001"
        depends_on: [web]
        restart_policy: always
"""
CYCLE = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "exec sleep 3000"
        depends_on: [api]
      api:
        command: "exec sleep 3001"
        depends_on: [web]
"""


@pytest.fixture(scope="module")
def old_sysg(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("old-systemg")
    root.chmod(0o755)
    lib = root / "lib"
    shutil.copytree(Path(systemg.__file__).parent, lib / "systemg")
    init = lib / "systemg" / "__init__.py"
    init.write_text(init.read_text().replace(systemg.__version__, "0.0.1"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python*/site-packages")
    deps = Path(yaml.__file__).parent.parent  # PyYAML and the rest, as installed for tests
    (site / "old-systemg.pth").write_text(f"{lib}\n{deps}\n")
    exe = venv / "bin" / "sysg"
    exe.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom systemg.entry import main\n"
        "sys.exit(main())\n"
    )
    exe.chmod(0o755)
    for path in root.rglob("*"):
        if not path.is_symlink():  # the venv's python links to the system's
            path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    return str(exe)


def _versions(rt: Runtime) -> dict[str, object]:
    return dict(json.loads(rt.sysg("version", "--format", "json", check=True).stdout))


def _pids(rt: Runtime) -> dict[str, int]:
    return {name: live_pid(rt.unit(name)) for name in ("web", "api")}


@pytest.mark.timeout(180)
def test_restart_recycles_a_supervisor_of_another_version(rt: Runtime, old_sysg: str) -> None:
    rt.write("stack.yaml", MANIFEST)
    rt.sysg("start", "-c", "stack.yaml", "--daemonize", exe=old_sysg, check=True)
    assert _versions(rt)["supervisor"] == "0.0.1"
    old_sup = rt.supervisor_pid()
    before = _pids(rt)
    done = rt.sysg("restart")  # no -c: the manifests the old supervisor registered
    assert done.returncode == 0, done.stderr
    assert "recycling it" in done.stderr
    assert "Project 'demo' restarted (2 services)" in done.stdout
    assert _versions(rt)["supervisor"] == systemg.__version__
    assert rt.supervisor_pid() != old_sup
    assert old_sup is not None
    assert not pid_alive(old_sup)
    assert len(rt.supervisor_processes()) == 1
    after = _pids(rt)
    for name, pid in after.items():
        assert pid != before[name]
        assert pid_alive(pid)
        assert not pid_alive(before[name])


@pytest.mark.timeout(180)
def test_recycle_with_an_invalid_manifest_is_refused_and_touches_nothing(
    rt: Runtime, old_sysg: str
) -> None:
    rt.write("stack.yaml", MANIFEST)
    rt.sysg("start", "-c", "stack.yaml", "--daemonize", exe=old_sysg, check=True)
    old_sup = rt.supervisor_pid()
    before = _pids(rt)
    rt.write("stack.yaml", CYCLE)
    refused = rt.sysg("restart", "-c", "stack.yaml")
    assert refused.returncode == 1
    assert "error[SG0303]" in refused.stderr
    assert "SG0216" in refused.stderr  # the cycle itself, with its field path
    assert rt.supervisor_pid() == old_sup
    assert _versions(rt)["supervisor"] == "0.0.1"
    assert _pids(rt) == before
    assert all(pid_alive(pid) for pid in before.values())


@pytest.mark.timeout(120)
def test_restart_of_one_service_never_recycles(rt: Runtime, old_sysg: str) -> None:
    rt.write("stack.yaml", MANIFEST)
    rt.sysg("start", "-c", "stack.yaml", "--daemonize", exe=old_sysg, check=True)
    old_sup = rt.supervisor_pid()
    done = rt.sysg("restart", "-s", "api")
    assert done.returncode == 0, done.stderr
    assert "recycling" not in done.stderr
    assert rt.supervisor_pid() == old_sup


@pytest.mark.timeout(180)
def test_recycle_for_one_project_leaves_the_others_running(rt: Runtime, old_sysg: str) -> None:
    rt.write("a.yaml", MANIFEST.replace("  demo:", "  alpha:"))
    rt.write("b.yaml", MANIFEST.replace("  demo:", "  beta:").replace("300", "310"))
    for name in ("a.yaml", "b.yaml"):
        rt.sysg("start", "-c", name, "--daemonize", exe=old_sysg, check=True)
    before = {(u["project"]["id"], u["name"]): live_pid(u) for u in rt.status()["units"]}
    done = rt.sysg("restart", "-p", "alpha")
    assert done.returncode == 0, done.stderr
    assert "recycling it" in done.stderr
    assert _versions(rt)["supervisor"] == systemg.__version__
    after = {(u["project"]["id"], u["name"]): live_pid(u) for u in rt.status()["units"]}
    for (project, name), pid in before.items():
        if project == "beta":  # re-adopted by the new supervisor, never touched
            assert after[(project, name)] == pid
            assert pid_alive(pid)
        else:
            assert after[(project, name)] != pid
            assert not pid_alive(pid)
