"""What the boot path imports: counted in ``sys.modules`` of a fresh interpreter, not timed.

Every module a process imports before it does its job is start-up time (and resident
memory) on ``sysg start``'s cold path, so the processes started at boot import only what
that job needs; the rest is imported on first use.
"""

from __future__ import annotations

import subprocess
import sys

# Everything ``daemon.main.main`` imports before its loop runs.
BOOT = (
    "import systemg.daemon.main, systemg.daemon.audit, systemg.daemon.control, "
    "systemg.daemon.handlers, systemg.daemon.operations, systemg.daemon.store, "
    "systemg.daemon.supervisor, systemg.spawn.forkserver, systemg.spawn.launcher"
)


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(proc.stdout.split())


def test_the_fd_holder_imports_only_its_own_module_and_its_wire_format() -> None:
    # `sysg fdholder` is a second interpreter started at every cold boot: it must not pay
    # for the supervisor (its client, journal, loop) or the manifest model.
    mods = imported_after("import systemg.daemon.fdholder")
    ours = {m for m in mods if m.split(".")[0] == "systemg"}
    assert ours == {
        "systemg",
        "systemg.daemon",
        "systemg.daemon.fdholder",
        "systemg.protocol",
        "systemg.protocol.holder",
    }
    assert not {"yaml", "psutil", "rich"} & {m.split(".")[0] for m in mods}


def test_sysg_start_reaches_the_supervisor_boot_without_the_protocol_or_the_manifest() -> None:
    # What `sysg start` imports before `boot.ensure_supervisor` spawns the supervisor: the
    # protocol's messages (~25 ms of class creation) come after, while it boots.
    mods = imported_after(
        "import systemg.cli.main, systemg.cli.commands.start, systemg.cli.boot, "
        "systemg.spawn.detach"
    )
    assert not {m for m in mods if m.startswith(("systemg.protocol", "systemg.manifest"))}
    assert not {m for m in mods if m.startswith("systemg.daemon")}
    assert not {"yaml", "psutil", "rich"} & {m.split(".")[0] for m in mods}


def test_the_supervisor_boots_without_what_only_some_manifests_use() -> None:
    # HTTP probes (h11), schedules (cronsim, zoneinfo) and privileged spawns through the
    # helper (pickle) import their libraries on first use, not at every boot.
    mods = imported_after(BOOT)
    assert not {"h11", "cronsim", "zoneinfo", "pickle"} & {m.split(".")[0] for m in mods}


def test_the_supervisor_spawns_its_fd_holder_before_importing_the_rest_of_itself() -> None:
    # daemon.main's own imports are boot steps 1-5 (dirs, lock, journal, activation, the
    # fd holder): the supervisor's table, operations and control protocol come after the
    # holder was spawned, so the two interpreters' start-ups overlap on two CPUs.
    mods = imported_after("import systemg.daemon.main")
    late = {
        "systemg.daemon.supervisor",
        "systemg.daemon.operations",
        "systemg.daemon.handlers",
        "systemg.daemon.control",
        "systemg.protocol.messages",
        "systemg.manifest.load",
        "systemg.spawn.launcher",
    }
    assert not late & mods
    assert late <= imported_after(BOOT)


def test_what_the_boot_leaves_out_is_there_on_first_use() -> None:
    mods = imported_after(
        "from datetime import UTC, datetime\n"
        "from systemg.manifest.schedule import next_due, zone\n"
        "next_due('0 0 0 1 1 *', 'UTC', datetime.now(UTC)); zone('Europe/Berlin')"
    )
    assert {"cronsim", "zoneinfo"} <= mods
