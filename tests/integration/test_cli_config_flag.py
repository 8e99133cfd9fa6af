"""``-c FILE`` on ``status``, ``inspect``, ``logs`` and ``purge``, as the upstream CLI
takes it (most of the upstream's use cases pass it to ``status``): accepted, a missing file
is ``SG0203``; with a running supervisor it does not narrow ``status``/``inspect``/``logs``
(as upstream: -p/-s do); ``purge -c FILE`` removes the state of exactly the projects FILE
declares."""

from __future__ import annotations

import json

from tests.support.runtime import Runtime, wait_for

ONE = """\
version: "2"
projects:
  one:
    services:
      a:
        command: "sleep 1000"
"""
TWO = """\
version: "2"
projects:
  two:
    services:
      b:
        command: "sleep 1001"
"""


def test_config_flag_is_accepted_and_checked(rt: Runtime) -> None:
    one, two = rt.write("one.yaml", ONE), rt.write("two.yaml", TWO)
    rt.sysg("start", "-c", str(one), "--daemonize", check=True)
    rt.sysg("start", "-c", str(two), "--daemonize", check=True)

    status = rt.sysg("status", "-c", str(one), "--format", "json", check=True)
    # Not narrowed: the upstream's cases read other projects' units out of `status -c F`.
    assert {u["name"] for u in json.loads(status.stdout)["units"]} == {"a", "b"}
    narrowed = rt.sysg("status", "-c", str(one), "-p", "one", "--format", "json", check=True)
    assert [u["name"] for u in json.loads(narrowed.stdout)["units"]] == ["a"]

    inspect = rt.sysg("inspect", "-c", str(one), "-s", "a", "--format", "json", check=True)
    assert json.loads(inspect.stdout)["unit"]["name"] == "a"

    (rt.logs / "one").mkdir(parents=True, exist_ok=True)
    logs = rt.sysg("logs", "-c", str(one), "-s", "a", "--no-follow")
    assert logs.returncode == 0, logs.stderr

    for verb in (("status",), ("inspect", "-s", "a"), ("logs", "-s", "a"), ("purge",)):
        missing = rt.sysg(*verb, "-c", str(rt.root / "nope.yaml"))
        assert missing.returncode != 0, verb
        assert "SG0203" in missing.stderr, (verb, missing.stderr)
        assert "nope.yaml" in missing.stderr

    rt.sysg("stop", "--supervisor", check=True)


def test_purge_config_removes_only_the_projects_the_file_declares(rt: Runtime) -> None:
    one, two = rt.write("one.yaml", ONE), rt.write("two.yaml", TWO)
    rt.sysg("start", "-c", str(one), "--daemonize", check=True)
    rt.sysg("start", "-c", str(two), "--daemonize", check=True)
    rt.sysg("stop", "-p", "one", check=True)
    purged = rt.sysg("purge", "-c", str(one), check=True)
    assert "Project 'one' purged" in purged.stdout
    projects = rt.state / "projects"
    wait_for(lambda: not (projects / "one").exists(), what="one's state removed")
    assert (projects / "two").is_dir()
    assert [u["name"] for u in rt.status()["units"]] == ["b"]

    bad = rt.write("bad.yaml", 'version: "2"\nprojects:\n  x:\n    services: 7\n')
    refused = rt.sysg("purge", "-c", str(bad))
    assert refused.returncode != 0
    assert "bad.yaml" in refused.stderr
    assert (projects / "two").is_dir()
    rt.sysg("stop", "--supervisor", check=True)
