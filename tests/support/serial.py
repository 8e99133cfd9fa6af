"""Tests that need a resource of which the host has only one, run one at a time.

The suite runs in parallel workers (pytest-xdist, ``--dist loadgroup``: see ``scripts/test``).
Almost everything a test uses is its own: a runtime root under a fresh temp directory, free
TCP ports from the kernel, process markers from ``procscan.new_marker``. A few things are
not, and no renaming makes them so:

- **ports below 1024**: the privileged-port tests want 80 (or the first free port below
  1024), and a test checking "port 80 is free, then bind it" races any other such test;
- **the cgroup tree**: services get ``<mount>/systemg/<project>/<service>``, and the
  supervisor removes the top ``systemg`` directory once its last cgroup is gone, which
  another test creating a cgroup at that moment would see vanish (and some tests assert
  that the top directory is gone, or that a project such as ``sgtest`` holds exactly their
  own processes).

Every test that touches one of them carries ``HOST_GLOBAL``: xdist sends the whole group to
one worker, which runs them one after the other while the rest of the suite runs beside it.
Without xdist the marker does nothing.
"""

from __future__ import annotations

import pytest

HOST_GLOBAL = pytest.mark.xdist_group("host-global")


def apply_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Do what pytest-xdist's worker does for ``--dist loadgroup`` when it does not take.

    xdist (3.8) tags each grouped test by appending ``@<group>`` to ``item._nodeid``, and its
    scheduler sends all tests with one tag to one worker. pytest 9 derives ``nodeid`` from
    ``item._id`` instead, so that tag is lost and the group's tests spread over all workers
    (seen: two port-80 tests at once). Here the tag goes on ``_id``, the same way, and only
    where xdist's own did not land; without xdist or loadgroup this does nothing.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if not names:
            continue
        suffix = "@" + "_".join(names)
        if item.nodeid.endswith(suffix):
            continue
        node_id = getattr(item, "_id", None)
        if node_id is None or not hasattr(type(node_id), "parse"):
            raise RuntimeError(
                "cannot tag xdist groups on this pytest: see tests/support/serial.py"
            )
        item._id = type(node_id).parse(item.nodeid + suffix)  # type: ignore[attr-defined]
