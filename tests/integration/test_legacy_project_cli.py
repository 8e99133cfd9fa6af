"""A manifest in the deprecated single-project shape (``project:`` + top-level ``services:``)
run with the real CLI, as the upstream's ``single-project-compat`` case does: it boots under
its declared project id, every command finds it by that id, and each load that registers it
says once, on the user's stderr, that the shape is deprecated and how to convert it."""

from __future__ import annotations

from tests.support.runtime import Runtime, pid_of, wait_for

LEGACY = """\
version: "2"
project:
  id: legacy
  name: "Legacy Single Project"
services:
  worker:
    command: "echo worker-up; exec sleep 3000"
    restart_policy: "always"
"""


def test_legacy_shape_runs_under_its_project_id(rt: Runtime) -> None:
    config = rt.write("legacy.yaml", LEGACY)
    started = rt.sysg("start", "--config", str(config), "--daemonize", check=True)
    assert started.stderr.count("warning[SG0223]") == 1, started.stderr
    assert "deprecated single-project shape" in started.stderr
    assert f"sysg migrate {config}" in started.stderr
    assert "Project 'legacy' started (1 service)" in started.stdout

    worker = rt.wait_state("worker", "running")
    assert worker["project"]["id"] == "legacy"
    assert worker["project"]["name"] == "Legacy Single Project"
    shown = rt.status("--config", str(config), "-p", "legacy")
    assert [(u["project"]["id"], u["name"]) for u in shown["units"]] == [("legacy", "worker")]

    def logged() -> bool:
        out = rt.sysg("logs", "-p", "legacy", "-s", "worker", "--no-follow")
        return out.returncode == 0 and "worker-up" in out.stdout

    wait_for(logged, what="the worker's line in `logs -p legacy`")

    restarted = rt.sysg("restart", "--project", "legacy", check=True)
    assert restarted.stderr.count("warning[SG0223]") == 1, restarted.stderr
    assert pid_of(rt.wait_state("worker", "running")) != pid_of(worker)

    stopped = rt.sysg("stop", "--config", str(config), check=True)
    assert stopped.returncode == 0
    assert rt.unit("worker", "legacy")["state"] == "stopped"
    rt.sysg("stop", "--supervisor", check=True)


SHOP_V1 = """\
version: "1"
project:
  id: shop
  name: "Shop"
services:
  api:
    command: "sleep 3000"
    restart_policy: "always"
  worker:
    command: "sleep 3000"
    restart_policy: "always"
"""


def test_migrated_file_runs_the_same_project(rt: Runtime) -> None:
    # The upstream's migrate-command case: print, leave the source alone, boot the result.
    legacy = rt.write("legacy.yaml", SHOP_V1)
    migrated = rt.sysg("migrate", str(legacy), check=True)
    assert legacy.read_text() == SHOP_V1
    lines = migrated.stdout.splitlines()
    assert "projects:" in lines
    assert "  shop:" in lines
    assert not [line for line in lines if line.startswith("project:")]
    converted = rt.write("converted.yaml", migrated.stdout)
    started = rt.sysg("start", "--config", str(converted), "--daemonize", check=True)
    assert "SG0223" not in started.stderr
    units = rt.status("--config", str(converted))["units"]
    assert {(u["project"]["id"], u["name"]) for u in units} == {("shop", "api"), ("shop", "worker")}

    # The version 2 form of the deprecated shape converts too, and in place.
    v2 = rt.write("v2.yaml", LEGACY)
    rt.sysg("migrate", str(v2), "--in-place", check=True)
    assert v2.with_suffix(".yaml.bak").read_text() == LEGACY
    checked = rt.sysg("validate", "-c", str(v2), check=True)
    assert "SG0223" not in checked.stdout + checked.stderr
    rt.sysg("stop", "--supervisor", check=True)
