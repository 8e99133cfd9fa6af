"""Durable supervisor state: one JSON file per project, written atomically.

``<state>/projects/<id>/state.json`` holds what a new supervisor needs after the old one
died (``kill -9`` included): the manifest path and the environment it was expanded with
(so ``restart`` can re-read it), the ``--drop-privileges`` choice, and per service the pid,
its kernel start time (``/proc/PID/stat`` field 22, so a reused pid is never mistaken
for the service), restart counts and the last exit.

Writes go to a temp file in the same directory, then are renamed over the old file, so a
reader (or a new supervisor after ``kill -9``) sees the old or the new state, never half of
one. Files are ``0600``.

Why no ``fsync`` (it used to be one per save): saves run on the supervisor's one thread,
and a slow or congested disk can hold an ``fsync`` for seconds, during which no service
is supervised and ``status`` does not answer. It buys nothing we need: a supervisor crash
(``kill -9``, OOM) never loses page-cache data, the kernel writes it back on its own;
only a power loss or kernel crash could, and that kills the services too — a new
supervisor then finds no live pid to re-adopt (re-adoption checks pid + start time
anyway). What could be lost is at most the last few seconds of changes, and a torn or
empty file (a filesystem without rename ordering) is survivable, below.

* **Previous state kept.** Before each rename the current file is hard-linked as
  ``state.json.bak`` (no data copied; link + rename, so a ``.bak`` always exists once
  there was a state).
* **Load never crashes on a bad file.** An empty, truncated or malformed ``state.json``
  (bad JSON, wrong types, unknown keys) is logged naming the file, moved aside as
  ``state.json.corrupt`` and replaced by ``state.json.bak`` if that one is good;
  otherwise that project is skipped (not re-adopted) and the supervisor boots as usual.
* **Journal between snapshots.** A save of a whole project costs O(services); the
  supervisor saves one *service* after each change (``append``: one JSON line added to
  ``state.journal``, O(1)), and the whole project only when the journal has grown past
  about twice its services, on the coalescing flush — so a start of N services writes
  O(N) bytes, not O(N²). Each snapshot and line carries a sequence number; ``load`` replays
  the lines newer than the snapshot, in order (a torn or unreadable line is skipped), and
  the journal is emptied after each snapshot (a crash between the two leaves only lines the
  snapshot already holds, which the sequence numbers skip).
* **Save never raises.** If the state disk is full (or read-only), the temp file is
  removed, the old file stays, the error is logged once per project and ``save`` returns
  False; the failed record is retried on the next ``save`` of any project (the next
  change), and its recovery is logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from systemg.daemon.journal import Journal
from systemg.daemon.lifecycle import StopReason
from systemg.daemon.restart import ExitInfo
from systemg.paths import Paths, ensure_private_dir


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    pid: int | None = None
    start_time: int | None = None
    started_at: float | None = None
    phase: str = "stopped"
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    stop_reason: str | None = None
    definition: str | None = None  # ordering.definition_id of what the live process runs
    invocation: str | None = None  # INVOCATION_ID of the last launch, recorded before it
    # (pid, start time) of a rolling restart's other generation (starting or draining): a
    # supervisor that finds one alive after a crash stops it (``daemon.main.recover``).
    others: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    project_id: str
    manifest_path: str
    environ: dict[str, str] = field(default_factory=dict)
    drop_privileges: bool = False
    attached: bool = False
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    # The last journal line this snapshot includes (``Store`` sets it; not part of the state).
    seq: int = field(default=0, compare=False)


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, backup: bool = False) -> None:
    """Replace ``path`` with ``data`` by write + rename (no fsync, see the module docstring).

    ``backup``: first hard-link the current file as ``<path>.bak``. On ``OSError`` the temp
    file is removed and ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # A new file of our own, never one found there (a symlink planted in a directory the
    # service's user can write must not make root write through it): a stale temp file of
    # an earlier run is removed first, and O_EXCL refuses whatever appears meanwhile.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if backup:
            _link_backup(path)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _link_backup(path: Path) -> None:
    """``path`` -> ``path.bak`` as a hard link, replaced atomically (never left without one)."""
    link = path.with_name(f".{path.name}.{os.getpid()}.bak")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.link(path, link)
    except FileNotFoundError:
        return  # no state yet
    except OSError:
        return  # a missing backup must not stop the save
    os.replace(link, path.with_name(path.name + ".bak"))


class Store:
    def __init__(self, paths: Paths, journal: Journal | None = None) -> None:
        """``journal``: where problems are reported (default: a journal on stderr)."""
        self.paths = paths
        self._journal = journal
        # Records whose save failed, newest per project, with the number of failed attempts.
        self._unsaved: dict[str, tuple[ProjectRecord, int]] = {}
        self._seq: dict[str, int] = {}  # last sequence number on disk, per project
        self._lines: dict[str, int] = {}  # journal lines since the last snapshot
        self._fds: dict[str, int] = {}  # open journal (O_APPEND), per project

    def _file(self, project_id: str) -> Path:
        return self.paths.project_state_dir(project_id) / "state.json"

    def _journal_file(self, project_id: str) -> Path:
        return self.paths.project_state_dir(project_id) / "state.journal"

    def append(self, project_id: str, name: str, service: ServiceRecord) -> bool:
        """Record one service's new state (one line in the journal); False when the caller
        must ``save`` the whole project instead (no snapshot yet, an earlier save failed,
        or the write failed)."""
        if project_id not in self._seq or project_id in self._unsaved:
            return False
        seq = self._seq[project_id] + 1
        entry = {"seq": seq, "service": name, "record": _service_json(service)}
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        try:
            fd = self._fds.get(project_id)
            if fd is None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                fd = self._fds[project_id] = os.open(self._journal_file(project_id), flags, 0o600)
            if os.write(fd, line) != len(line):
                return False  # a short write (disk full): the snapshot ends the torn line
        except OSError:
            return False
        self._seq[project_id] = seq
        self._lines[project_id] = self._lines.get(project_id, 0) + 1
        return True

    def journal_lines(self, project_id: str) -> int:
        """Lines appended since the project's last snapshot."""
        return self._lines.get(project_id, 0)

    def _close_journal(self, project_id: str) -> None:
        fd = self._fds.pop(project_id, None)
        if fd is not None:
            os.close(fd)

    def save(self, record: ProjectRecord) -> bool:
        """Write ``record`` (then retry earlier failed saves); False if it could not be."""
        ok = self._save(record)
        for project_id, (pending, _failures) in list(self._unsaved.items()):
            if project_id != record.project_id:
                self._save(pending)
        return ok

    def _save(self, record: ProjectRecord) -> bool:
        project_id = record.project_id
        seq = self._seq.get(project_id, 0) + 1
        record = dataclasses.replace(record, seq=seq)
        # Performance: asdict() deep-copies every field and indent= forces the pure-Python
        # encoder; this runs after every batch of state changes (100 services: ~5 ms -> <1 ms).
        # Same keys and values, compact (the file is read by json.loads only).
        payload = json.dumps(_as_json(record), sort_keys=True, separators=(",", ":")).encode()
        path = self._file(project_id)
        try:
            ensure_private_dir(path.parent)
            write_atomic(path, payload, backup=True)
        except OSError as exc:
            _pending, failures = self._unsaved.get(project_id, (record, 0))
            self._unsaved[project_id] = (record, failures + 1)
            if failures == 0:
                self._report().error(
                    f"cannot save the state of project '{project_id}' to {path}: {exc}; "
                    "keeping the previous state, retrying on the next change"
                )
            return False
        self._seq[project_id] = seq
        self._lines[project_id] = 0
        fd = self._fds.get(project_id)
        try:
            if fd is not None:
                os.ftruncate(fd, 0)
            else:
                os.truncate(self._journal_file(project_id), 0)
        except FileNotFoundError:
            pass
        except OSError as exc:  # harmless while sequence numbers rise: its lines are older
            self._report().error(f"cannot empty {self._journal_file(project_id)}: {exc}")
        failed = self._unsaved.pop(project_id, None)
        if failed is not None:
            self._report().info(
                f"state of project '{project_id}' saved to {path} again "
                f"(after {failed[1]} failed attempts)"
            )
        return True

    def load_all(self) -> list[ProjectRecord]:
        records: list[ProjectRecord] = []
        if not self.paths.projects_dir.is_dir():
            return records
        for entry in sorted(self.paths.projects_dir.iterdir()):
            record = self.load(entry.name)
            if record is not None:
                records.append(record)
        return records

    def load(self, project_id: str) -> ProjectRecord | None:
        """The saved record, or None if there is none or it is unreadable (logged)."""
        path = self._file(project_id)
        try:
            return self._replay(_parse(path.read_bytes()))
        except (FileNotFoundError, NotADirectoryError):
            return None  # no state (yet), or a stray file in the projects directory
        # RecursionError: JSON nested deeper than the parser goes is a bad file too.
        except (OSError, ValueError, RecursionError) as exc:
            problem = exc
        corrupt = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, corrupt)
            kept = f"moved to {corrupt}"
        except OSError:
            kept = "left in place"
        backup = path.with_name(path.name + ".bak")
        record: ProjectRecord | None
        try:
            record = _parse(backup.read_bytes())
        except (OSError, ValueError, RecursionError):
            record = None
        if record is not None and record.project_id != project_id:
            record = None
        if record is not None:
            record = self._replay(record)
        else:
            # Start the new snapshots above every line left in the journal, so none of
            # those is ever replayed over them.
            self._replay(ProjectRecord(project_id, ""))
        outcome = (
            f"using the previous state from {backup}"
            if record is not None
            else f"project '{project_id}' is not re-adopted"
        )
        self._report().error(f"state file {path} is unreadable ({problem}); {kept}; {outcome}")
        return record

    def _replay(self, record: ProjectRecord) -> ProjectRecord:
        """``record`` with the journal lines newer than it applied, in order."""
        project_id = record.project_id
        seq = record.seq
        services = dict(record.services)
        try:
            data = self._journal_file(project_id).read_bytes()
        except OSError:
            data = b""
        skipped = 0
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                entry = _checked(json.loads(line), _JournalLine, _LINE_TYPES, "journal line")
                service = _parse_service(entry["record"], f"journal.{entry['service']}")
            except (ValueError, KeyError, RecursionError):
                skipped += 1
                continue
            if entry["seq"] > seq:
                seq = entry["seq"]
                services[entry["service"]] = service
        if skipped:
            self._report().error(
                f"state journal {self._journal_file(project_id)}: {skipped} unreadable "
                "line(s) skipped (a torn last write)"
            )
        self._seq[project_id] = max(seq, self._seq.get(project_id, 0))
        return dataclasses.replace(record, services=services, seq=seq)

    def forget(self, project_id: str) -> list[str]:
        self._unsaved.pop(project_id, None)
        self._close_journal(project_id)
        self._seq.pop(project_id, None)
        self._lines.pop(project_id, None)
        directory = self.paths.project_state_dir(project_id)
        removed: list[str] = []
        if directory.is_dir():
            for child in directory.iterdir():
                child.unlink(missing_ok=True)
            directory.rmdir()
            removed.append(str(directory))
        return removed

    def _report(self) -> Journal:
        if self._journal is None:
            self._journal = Journal()  # the supervisor's stderr
        return self._journal


# --- reading: every field checked, so a bad file is one ValueError, never a crash later ---

_NONE = type(None)
_NUMBER = (int, float)
# Expected JSON types of the fields (a field added to a record but not listed here is
# accepted with any type: a newer supervisor's file must not read as corrupt).
_PROJECT_TYPES: dict[str, tuple[type, ...]] = {
    "project_id": (str,),
    "manifest_path": (str,),
    "environ": (dict,),
    "drop_privileges": (bool,),
    "attached": (bool,),
    "services": (dict,),
    "seq": (int,),
}
_SERVICE_TYPES: dict[str, tuple[type, ...]] = {
    "pid": (int, _NONE),
    "start_time": (int, _NONE),
    "started_at": (*_NUMBER, _NONE),
    "phase": (str,),
    "restarts": (int,),
    "last_exit": (dict, _NONE),
    "stop_reason": (str, _NONE),
    "definition": (str, _NONE),
    "invocation": (str, _NONE),
    "others": (list,),
}
_EXIT_TYPES: dict[str, tuple[type, ...]] = {
    "code": (int, _NONE),
    "signal": (int, _NONE),
    "oom_killed": (bool,),
    "at": _NUMBER,
}
_STOP_REASONS = frozenset(str(r) for r in StopReason)


@dataclass(frozen=True, slots=True)
class _JournalLine:
    seq: int
    service: str
    record: dict[str, Any]


_LINE_TYPES: dict[str, tuple[type, ...]] = {"seq": (int,), "service": (str,), "record": (dict,)}


def _parse(data: bytes) -> ProjectRecord:
    """A ``ProjectRecord`` from the bytes of a state file; ``ValueError`` if malformed."""
    raw = _checked(json.loads(data), ProjectRecord, _PROJECT_TYPES, "state")
    for key in ("project_id", "manifest_path"):
        if key not in raw:
            raise ValueError(f"state: no {key}")
    environ = raw.get("environ", {})
    if not all(isinstance(v, str) for v in environ.values()):
        raise ValueError("state.environ: a value is not a string")
    services = {
        name: _parse_service(value, f"services.{name}")
        for name, value in raw.pop("services", {}).items()
    }
    return ProjectRecord(services=services, **raw)


def _parse_service(value: object, where: str) -> ServiceRecord:
    fields = _checked(value, ServiceRecord, _SERVICE_TYPES, where)
    if fields.get("last_exit") is not None:
        _checked(fields["last_exit"], ExitInfo, _EXIT_TYPES, f"{where}.last_exit")
    reason = fields.get("stop_reason")
    if reason is not None and reason not in _STOP_REASONS:
        raise ValueError(f"{where}.stop_reason: unknown value {reason!r}")
    if "others" in fields:
        others = fields["others"]
        if not all(
            isinstance(o, list) and len(o) == 2 and all(type(x) is int for x in o) for o in others
        ):
            raise ValueError(f"{where}.others: not a list of [pid, start_time]")
        fields["others"] = tuple((o[0], o[1]) for o in others)
    return ServiceRecord(**fields)


def _checked(
    raw: object, record: type[Any], types: dict[str, tuple[type, ...]], where: str
) -> dict[str, Any]:
    """``raw`` if it is an object whose keys are fields of ``record``, of the listed types."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: not an object")
    allowed = {f.name for f in dataclasses.fields(record)}
    for key, value in raw.items():
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}")
        kinds = types.get(key)
        # bool is an int subclass: a pid of ``true`` is as wrong as one of ``"1"``.
        if kinds is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            raise ValueError(f"{where}.{key}: unexpected {type(value).__name__}")
    return raw


def _as_json(record: ProjectRecord) -> dict[str, Any]:
    """``dataclasses.asdict(record)`` without the deep copies (values are JSON scalars,
    ``environ`` is str -> str and ``last_exit`` a flat dict)."""
    services = {name: _service_json(svc) for name, svc in record.services.items()}
    return {
        "project_id": record.project_id,
        "manifest_path": record.manifest_path,
        "environ": dict(record.environ),
        "drop_privileges": record.drop_privileges,
        "attached": record.attached,
        "services": services,
        "seq": record.seq,
    }


def _service_json(svc: ServiceRecord) -> dict[str, Any]:
    return {
        "pid": svc.pid,
        "start_time": svc.start_time,
        "started_at": svc.started_at,
        "phase": svc.phase,
        "restarts": svc.restarts,
        "last_exit": None if svc.last_exit is None else dict(svc.last_exit),
        "stop_reason": svc.stop_reason,
        "definition": svc.definition,
        "invocation": svc.invocation,
        "others": [list(o) for o in svc.others],
    }
