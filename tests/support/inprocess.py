"""The supervisor in this process, on its real loop (``Harness``), with a launcher the test
chooses (constructor injection); ``make`` (``tests/conftest.py``) builds one per test and
closes it. Real loop, real processes for the units that launch, real files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop
from systemg.daemon.operations import Operations
from systemg.daemon.store import Store
from systemg.daemon.supervisor import Supervisor, Unit
from systemg.manifest.load import load_manifest
from systemg.paths import Mode, Paths, ensure_private_dir
from systemg.spawn.launcher import Launcher
from tests.support.fakes import NoHolder
from tests.support.procscan import new_marker, with_marker

MANIFEST = """version: "2"
projects:
  p:
    services:
      db:
        command: "sleep 1000.{m}"
      web:
        command: "sleep 1000.{m}"
        depends_on: [db]
      api:
        command: "sleep 1000.{m}"
        depends_on: [web]
      other:
        command: "sleep 1000.{m}"
"""


class Harness:
    def __init__(
        self,
        root: Path,
        launcher: Launcher,
        manifest: str = MANIFEST,
    ) -> None:
        self.paths = Paths(Mode.USER, root / "state", root / "logs")
        ensure_private_dir(self.paths.state_dir)
        ensure_private_dir(self.paths.projects_dir)
        self.journal_file = root / "supervisor.log"
        self._journal_fh = self.journal_file.open("a")
        self.loop = Loop()
        self.sup = Supervisor(
            self.loop,
            self.paths,
            Store(self.paths),
            NoHolder(),  # type: ignore[arg-type]
            Journal(stream=self._journal_fh),
            launcher=launcher,
        )
        self.ops = Operations(self.sup)
        self.marker = new_marker()
        config = root / "sysg.yaml"
        config.write_text(manifest.format(m=self.marker))
        project = load_manifest(config, environ=dict(os.environ)).manifest.projects[0]
        self.ops.register(project, dict(os.environ), False)

    def run_until(self, start: Callable[[Callable[[], None]], None], timeout: float = 20) -> bool:
        """Run the loop until ``start``'s continuation is called (True) or ``timeout``."""
        done = [False]

        def finished() -> None:
            done[0] = True
            self.loop.stop()

        self.loop.call_later(timeout, self.loop.stop)
        start(finished)
        self.loop.run()
        return done[0]

    def unit(self, name: str) -> Unit:
        return self.sup.projects["p"].units[name]

    def close(self) -> None:
        for proc in with_marker(self.marker):
            os.kill(proc.pid, 9)
        self._journal_fh.close()
        self.loop.close()
