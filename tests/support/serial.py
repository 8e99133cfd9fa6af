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
