"""Every runtime path, derived from one root object.

User mode: state in ``$XDG_DATA_HOME/systemg`` (else ``~/.local/share/systemg``), logs in
``<state>/logs``. System mode (``--sys``): ``/var/lib/systemg`` and ``/var/log/systemg``.
``SYSTEMG_STATE_DIR`` and ``SYSTEMG_LOG_DIR`` override whichever mode is in force, so tests
and side-by-side installs never touch the real directories.

Nothing here creates a directory; callers that write use ``ensure_private_dir``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from systemg import layout

SYSTEM_STATE_DIR = Path(layout.SYSTEM_STATE_DIR)
SYSTEM_LOG_DIR = Path("/var/log/systemg")
SYSTEM_CONFIG_DIR = Path("/etc/systemg")
CONFIG_NAMES = ("systemg.yaml", "sysg.yaml")


class Mode(enum.StrEnum):
    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Paths:
    """The runtime layout of one supervisor."""

    mode: Mode
    state_dir: Path
    log_dir: Path

    @classmethod
    def for_mode(cls, mode: Mode, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        state = Path(layout.state_dir(mode is Mode.SYSTEM, env))
        logs = SYSTEM_LOG_DIR if mode is Mode.SYSTEM else state / "logs"
        if env.get("SYSTEMG_LOG_DIR"):
            logs = Path(env["SYSTEMG_LOG_DIR"])
        return cls(mode, state, logs)

    @property
    def socket(self) -> Path:
        return self.state_dir / layout.SOCKET_NAME

    @property
    def pid_file(self) -> Path:
        return self.state_dir / layout.PID_FILE_NAME

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "supervisor.lock"

    @property
    def supervisor_xml(self) -> Path:
        """The operator's supervisor defaults (``daemon/supervisor_xml.py``)."""
        return self.state_dir / "supervisor.xml"

    @property
    def fdholder_socket(self) -> Path:
        return self.state_dir / "fdholder.sock"

    @property
    def projects_dir(self) -> Path:
        return self.state_dir / "projects"

    def project_state_dir(self, project_id: str) -> Path:
        return self.projects_dir / project_id

    @property
    def supervisor_log(self) -> Path:
        return self.log_dir / "supervisor.log"

    @property
    def audit_log(self) -> Path:
        return self.log_dir / "audit.log"

    def service_log(self, project_id: str, service: str) -> Path:
        return self.log_dir / project_id / f"{service}.log"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.json"

    @property
    def config_search_dirs(self) -> tuple[Path, ...]:
        if self.mode is Mode.SYSTEM:
            return (Path.cwd(), SYSTEM_CONFIG_DIR)
        return (Path.cwd(),)


def find_config(explicit: str | None, paths: Paths) -> Path | None:
    """Resolve ``-c``: an explicit path (relative to cwd, then the config dirs) or the defaults."""
    names = (explicit,) if explicit else CONFIG_NAMES
    for name in names:
        candidate = Path(name)
        if candidate.is_absolute():
            return candidate
        for base in paths.config_search_dirs:
            if (base / candidate).exists():
                return (base / candidate).absolute()
    if explicit:
        return Path(explicit).absolute()
    return None


def ensure_private_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` (and parents) and set the leaf's mode, even if it already existed."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path
