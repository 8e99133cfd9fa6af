"""System mode end to end, as a person runs it: ``sudo sysg --sys start -c ... --daemonize``.

Each test drives the installed ``sysg`` against a private state/log root (``SYSTEMG_STATE_DIR``
/ ``SYSTEMG_LOG_DIR`` apply in ``--sys`` mode too) and checks what the kernel shows for the
running services in ``/proc/PID/*``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.privileged.system_helpers import (
    CAP_SETS,
    cap_masks,
    cgroup_dirs,
    http_get,
    listener_pid,
    need_port,
    proc_limits,
    proc_nice,
    proc_status,
    remove_cgroup_dirs,
    sys_status,
    units,
    wait_unit,
)
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # port 80 and cgroups of the example

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "system-mode.yaml"


def _install_example(rt: Runtime) -> Path:
    path = rt.work / "system-mode.yaml"
    shutil.copyfile(EXAMPLE, path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)
    return path


def test_system_example_serves_port_80_as_www_data_with_no_capability(rt: Runtime) -> None:
    need_port(80)
    manifest = _install_example(rt)
    try:
        started = rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        assert "Project 'site' started (2 services)" in started.stdout
        web = wait_unit(rt, "web", "running")
        wait_unit(rt, "worker", "running")

        answer = wait_for(lambda: _get_or_none(80), what="http://127.0.0.1/ to answer")
        assert answer is not None
        status, body = answer
        assert status == 200
        assert body
        answering = listener_pid(80)
        assert answering is not None
        assert answering == pid_of(web), (answering, web)
        st = proc_status(answering)
        assert st["Uid"].split() == ["33"] * 4
        assert st["Gid"].split() == ["33"] * 4
        assert st["Groups"].split() == ["33"]
        # The supervisor bound port 80 (listen:): the service holds no capability at all,
        # in a network, pid and user namespace of its own, under its seccomp filters.
        assert cap_masks(answering) == dict.fromkeys(CAP_SETS, 0)
        assert st["NoNewPrivs"] == "1"
        assert st["NSpid"].split()[-1] == "1"
        assert (st["Seccomp"], st["Seccomp_filters"]) == ("2", "2")
        sup = rt.supervisor_pid()
        for ns in ("net", "pid", "user", "mnt"):
            assert os.readlink(f"/proc/{answering}/ns/{ns}") != os.readlink(f"/proc/{sup}/ns/{ns}")

        data = sys_status(rt)
        assert data["supervisor_mode"] == "system"
        web_unit = units(data)["web"]
        assert web_unit["phase"] == "running"
        assert web_unit["process"]["user"] == "www-data"
        assert web_unit["enforcement"] == "full"
        worker = units(data)["worker"]
        assert proc_status(pid_of(worker))["Uid"].split() == ["1"] * 4  # daemon
        assert cap_masks(pid_of(worker)) == dict.fromkeys(CAP_SETS, 0)

        stopped = rt.sysg("--sys", "stop", "--supervisor", check=True)
        assert "Supervisor stopped" in stopped.stdout
        assert not pid_alive(answering)
        assert rt.supervisor_pid() is None
        assert port_closed(80)
    finally:
        remove_cgroup_dirs("site")


def _get_or_none(port: int) -> tuple[int, bytes] | None:
    try:
        return http_get(port, timeout=5)
    except OSError:
        return None


def port_closed(port: int) -> bool:
    return _get_or_none(port) is None


INSPECT_MANIFEST = """\
version: "2"
projects:
  insp:
    services:
      web:
        exec: ["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]
        user: nobody
        group: nogroup
        supplementary_groups: [www-data]
        capabilities: [CAP_NET_BIND_SERVICE, CAP_KILL]
        limits:
          nofile: 1024
          nproc: 512
          memlock: 64K
          nice: 7
          cpu_affinity: [0]
          cgroup:
            memory_max: 128M
        isolation:
          network: true
          no_new_privileges: true
          seccomp: baseline-v1
          apparmor_profile: "-sysg-test"
      plain:
        exec: ["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]
        user: nobody
"""


def test_system_inspect_equals_proc_and_reports_unapplied_keys(rt: Runtime) -> None:
    manifest = rt.write("insp.yaml", INSPECT_MANIFEST)
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        web = wait_unit(rt, "web", "running")
        pid = int(pid_of(web))

        proc = rt.sysg("--sys", "inspect", "-s", "web", "--format", "json")
        data = json.loads(proc.stdout)
        assert proc.returncode == 1, (
            "a mismatch (the unapplied AppArmor profile) makes inspect exit 1"
        )
        obs = data["observed"]
        st = proc_status(pid)
        # identity
        assert obs["service_pid"] == pid
        assert obs["uid"] == [int(x) for x in st["Uid"].split()] == [65534] * 4
        assert obs["gid"] == [int(x) for x in st["Gid"].split()] == [65534] * 4
        assert obs["groups"] == sorted(int(x) for x in st["Groups"].split()) == [33, 65534]
        # the five capability sets
        masks = cap_masks(pid)
        want = (1 << 10) | (1 << 5)
        assert masks == dict.fromkeys(CAP_SETS, want)
        for key in CAP_SETS:
            assert int(obs["capabilities"][key]["hex"], 16) == masks[key]
        assert obs["capabilities"]["CapEff"]["names"] == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        # rlimits, nice, affinity
        lim = proc_limits(pid)
        assert lim == {"nofile": ("1024", "1024"), "nproc": ("512", "512"),
                       "memlock": ("65536", "65536")}  # fmt: skip
        for name, (soft, hard) in lim.items():
            assert [str(v) for v in obs["rlimits"][name]] == [soft, hard]
        assert obs["nice"] == proc_nice(pid) == 7
        assert obs["cpus_allowed_list"] == st["Cpus_allowed_list"] == "0"
        # cgroup (the v1 memory fallback on this hybrid host)
        with open(f"/proc/{pid}/cgroup") as fh:
            cg = fh.read().splitlines()
        assert obs["cgroup"] == cg
        assert any(line.endswith(":/systemg/insp/web") for line in cg), cg
        # namespaces: own network namespace, everything else shared with the supervisor
        sup = rt.supervisor_pid()
        assert obs["namespaces"].keys() >= {"net", "mnt", "pid", "user"}
        for ns, info in obs["namespaces"].items():
            theirs = os.readlink(f"/proc/{pid}/ns/{ns}")
            assert info["inode"] == theirs
            assert info["own"] == (theirs != os.readlink(f"/proc/{sup}/ns/{ns}"))
            assert info["own"] == (ns == "net"), (ns, info)
        assert obs["namespaces"]["net"]["own"] is True
        assert obs["no_new_privs"] == int(st["NoNewPrivs"]) == 1
        assert obs["seccomp"] == {"mode": int(st["Seccomp"]), "filters": 1}
        assert st["Seccomp"] == "2"
        # requested = plan
        req = data["requested"]
        assert req["uid"] == 65534
        assert req["gid"] == 65534
        assert sorted(req["groups"]) == [33, 65534]
        # the deliberately unapplied key
        assert any("isolation.apparmor_profile" in line for line in data["not_applied"]), data
        assert any("isolation.apparmor_profile" in line for line in data["mismatch"]), data
        assert all("apparmor" in line for line in data["mismatch"]), data["mismatch"]

        status = sys_status(rt)
        web_unit = units(status)["web"]
        assert web_unit["enforcement"] == "partial"
        assert any("isolation.apparmor_profile" in line for line in web_unit["not_applied"])
        assert units(status)["plain"]["enforcement"] == "full"
        table = rt.sysg("--sys", "status").stdout
        assert "partial" in table or "apparmor" in table, table

        plain = rt.sysg("--sys", "inspect", "-s", "plain", "--format", "json")
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert json.loads(plain.stdout)["mismatch"] == []
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        remove_cgroup_dirs("insp")


PURGE_MANIFEST = """\
version: "2"
projects:
  purgeme:
    services:
      sleeper:
        exec: ["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]
        user: nobody
        limits:
          cgroup:
            memory_max: 64M
"""


def test_system_purge_stops_the_supervisor_and_removes_everything(rt: Runtime) -> None:
    manifest = rt.write("purge.yaml", PURGE_MANIFEST)
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        unit = wait_unit(rt, "sleeper", "running")
        sup = rt.supervisor_pid()
        assert sup is not None
        leaf = [d / "sleeper" for d in cgroup_dirs("purgeme")]
        assert leaf
        assert all(d.is_dir() for d in leaf)

        refused = rt.sysg("purge")
        assert refused.returncode == 1
        assert "SG0401" in refused.stderr
        assert rt.state.is_dir()
        assert pid_alive(pid_of(unit))

        purged = rt.sysg("purge", "--force")
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert f"removed {rt.logs}" in purged.stdout
        assert f"removed {rt.state}" in purged.stdout
        assert not rt.state.exists()
        assert not rt.logs.exists()
        assert not pid_alive(sup)
        assert not pid_alive(pid_of(unit))
        assert cgroup_dirs("purgeme") == []
    finally:
        remove_cgroup_dirs("purgeme")
