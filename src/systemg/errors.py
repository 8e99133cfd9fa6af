"""One error hierarchy for the whole project: data only, rendering is the CLI's job.

Every problem a person can cause or meet has a stable ``SG####`` code (families follow the
upstream: 00xx general/logs, 01xx start, 02xx selectors/manifest, 03xx restart, 04xx purge,
07xx privileged mode), a message that names what is wrong, the field path it concerns
(``services.web.limits.nofile``), the file, line and column when known, and a hint that
says how to fix it.

    SysgError(Exception)           one diagnostic, raised
    ├── ManifestError              one or more diagnostics about one manifest file
    ├── SpawnError                 a service could not be started (carries step/errno)
    └── ProtocolError              a malformed or oversized control-socket frame

Invariant: ``str(error)`` never contains a Python traceback, and every ``SysgError`` can be
turned into JSON (``Diagnostic.to_json``) without losing information.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


class Code(enum.StrEnum):
    """Stable diagnostic codes. Never renumber; add new ones at the end of a family."""

    # 00xx general
    INTERNAL = "SG0001"
    USAGE = "SG0002"
    AMBIGUOUS_SERVICE = "SG0006"
    LOGS_PRUNE_NO_BOUND = "SG0017"  # logs --prune without --max-size or --max-age
    LOGS_NO_TARGET = "SG0019"
    LOGS_SUPERVISOR_SELECTOR = "SG0020"  # logs --supervisor with -s/-p
    LOGS_SERVICE_NOT_FOUND = "SG0021"  # logs -s NAME (no project) matches no service
    # 01xx start
    HEALTH_UNREACHABLE = "SG0022"  # a health check could not reach the service
    HEALTH_TIMEOUT = "SG0023"  # a health check attempt timed out; a watchdog expired
    CRON_DIRECT = "SG0101"  # start/restart of a cron job, or `run` of a non-job
    EXITED_AT_START = "SG0102"
    PRE_START_FAILED = "SG0103"  # deployment.pre_start exited non-zero
    HEALTH_UNHEALTHY = "SG0104"  # a health check ran and failed; no READY=1 in time
    PORT_IN_USE = "SG0105"  # it exited at start and its output (this run's) says EADDRINUSE
    START_FAILED = "SG0106"
    SPAWN_FAILED = "SG0107"
    PRE_START_TIMEOUT = "SG0108"  # deployment.pre_start did not finish in time
    DEPENDENCY_FAILED = "SG0109"
    RESTART_LIMIT = "SG0110"
    SWITCH_FAILED = "SG0112"  # blue/green switch_command failed (SG0111: the upstream's wait)
    # 02xx selectors, status, manifest
    SELECTOR_MISMATCH = "SG0201"
    NOT_FOUND = "SG0202"
    CONFIG_UNREADABLE = "SG0203"
    LOGS_MODE_CONFLICT = "SG0204"  # two of logs --path / --prune / -f, or -f with --until
    SUPERVISOR_NOT_ANSWERING = "SG0205"
    NO_SUPERVISOR = "SG0206"
    INCLUDE_MISSING = "SG0207"
    INCLUDE_CYCLE = "SG0208"
    INCLUDE_LIMIT = "SG0209"
    INVALID_VALUE = "SG0210"
    INVALID_YAML = "SG0211"
    UNKNOWN_KEY = "SG0212"
    MISSING_KEY = "SG0213"
    UNSUPPORTED_VERSION = "SG0214"
    UNKNOWN_DEPENDENCY = "SG0215"
    DEPENDENCY_CYCLE = "SG0216"
    MISSING_ENV_VAR = "SG0217"
    ENV_FILE = "SG0218"
    FILE_TOO_LARGE = "SG0219"
    NOT_UTF8 = "SG0220"
    INVALID_NAME = "SG0221"
    MIGRATE_UNSUPPORTED = "SG0222"  # a version 1 manifest field with no version 2 form
    DEPRECATED_SHAPE = "SG0223"  # a warning: project: + top-level services: (sysg migrate)
    PROTOCOL = "SG0230"
    VERSION_MISMATCH = "SG0231"
    PERMISSION_DENIED = "SG0232"
    # 03xx restart
    RESTART_INVALID = "SG0301"
    RESTART_INCOMPLETE = "SG0302"
    RECYCLE_REFUSED = "SG0303"  # restart found a supervisor of another version, kept it
    # 04xx purge
    PURGE_REFUSED = "SG0401"
    PURGE_IO = "SG0402"
    PURGE_NO_PROJECT = "SG0403"
    PURGE_BAD_ID = "SG0404"
    PURGE_SUPERVISOR_STUCK = "SG0405"
    # 07xx system mode, privilege, sandbox
    ROOT_WITHOUT_SYS = "SG0701"
    SYSTEM_STATE_EXISTS = "SG0702"
    UNTRUSTED_CONFIG = "SG0703"
    SYS_REQUIRES_ROOT = "SG0704"
    REQUIRES_ROOT = "SG0705"
    NOT_ENFORCED = "SG0721"
    SECCOMP = "SG0722"
    LSM = "SG0723"
    PROTECT = "SG0724"
    NAMESPACE = "SG0727"
    CGROUP = "SG0730"
    LISTEN = "SG0731"
    RLIMIT = "SG0741"
    NICE = "SG0742"
    AFFINITY = "SG0743"
    SETGROUPS = "SG0744"
    SETGID = "SG0745"
    SETUID = "SG0746"
    CAPABILITIES = "SG0747"
    NO_NEW_PRIVS = "SG0748"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem, located as precisely as we can."""

    code: Code
    message: str
    path: str = ""
    hint: str = ""
    file: str = ""
    line: int | None = None
    column: int | None = None
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "severity": self.severity,
            "path": self.path,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diagnostic:
        return cls(
            code=Code(data["code"]),
            message=str(data.get("message", "")),
            path=str(data.get("path", "")),
            hint=str(data.get("hint", "")),
            file=str(data.get("file", "")),
            line=data.get("line"),
            column=data.get("column"),
            severity="warning" if data.get("severity") == "warning" else "error",
        )


class SysgError(Exception):
    """A failure with one or more diagnostics. The first is the headline."""

    def __init__(self, *diagnostics: Diagnostic) -> None:
        if not diagnostics:
            raise ValueError("SysgError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = diagnostics
        super().__init__(diagnostics[0].message)

    @classmethod
    def of(
        cls,
        code: Code,
        message: str,
        *,
        path: str = "",
        hint: str = "",
        file: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> SysgError:
        return cls(Diagnostic(code, message, path, hint, file, line, column))

    @property
    def code(self) -> Code:
        return self.diagnostics[0].code

    @property
    def hint(self) -> str:
        return self.diagnostics[0].hint


class ManifestError(SysgError):
    """Every problem found in one manifest (and the files it includes), reported at once."""


@dataclass(frozen=True, slots=True)
class ChildFault:
    """What a child reports when a step between fork and exec failed."""

    step: str
    errno: int
    detail: str = field(default="")


class SpawnError(SysgError):
    """A service could not be started. ``fault`` is set when the child reported a step."""

    def __init__(self, diagnostic: Diagnostic, fault: ChildFault | None = None) -> None:
        super().__init__(diagnostic)
        self.fault = fault


class ProtocolError(SysgError):
    """A control-socket frame that cannot be understood (too big, not JSON, wrong shape)."""
