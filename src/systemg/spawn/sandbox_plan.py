"""The sandbox part of a ``SpawnPlan``: seccomp programs, protected paths, LSM labels.

Resolved in the supervisor like the rest of the plan, so the child only applies bytes and
paths. What must not start raises ``SpawnError`` naming the key: a seccomp filter libseccomp
cannot build (SG0722), an AppArmor profile or SELinux context on a host where that LSM is not
active (SG0723, unless the value starts with ``-``: then a ``not_applied`` line), a listed
path that does not exist (SG0210, unless written ``-/path``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from systemg.errors import Code, Diagnostic, SpawnError
from systemg.lsm import unavailable as lsm_unavailable
from systemg.manifest.model import Isolation
from systemg.manifest.sandbox import resolve
from systemg.spawn import protect, seccomp

if TYPE_CHECKING:
    from systemg.spawn.plan import SpawnPlan

PATH_KEYS = (
    "protect_system",
    "protect_home",
    "read_only_paths",
    "read_write_paths",
    "inaccessible_paths",
)
BLANK_DIR = "/run/systemg"
NOTIFY_MOUNT = "/run/systemg/notify.sock"  # inside a service's mount namespace only


def sets(iso: Isolation, key: str) -> bool:
    value = getattr(iso, key)
    return value not in ("false", ())


def _fail(code: Code, path: str, message: str, hint: str) -> SpawnError:
    return SpawnError(Diagnostic(code, f"{path}: {message}", path=path, hint=hint))


def protect_plan(iso: Isolation, prefix: str) -> protect.ProtectPlan | None:
    blank = ""
    if iso.inaccessible_paths or iso.protect_home == "true":
        blank = _blank_file()
    return protect.build(iso, prefix, blank)


def _blank_file() -> str:
    import tempfile  # performance: only on this path, not at import

    for directory in (BLANK_DIR, tempfile.gettempdir()):
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            return protect.ensure_blank_file(directory)
        except OSError:
            continue
    return ""


def seccomp_programs(iso: Isolation, prefix: str) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The BPF programs, and a note naming the syscalls libseccomp did not know (skipped)."""
    programs: list[bytes] = []
    notes: list[str] = []
    try:
        if iso.seccomp:
            program = seccomp.syscall_program(
                resolve(iso.seccomp), iso.seccomp_action, iso.seccomp_errno
            )
            programs.append(program.bpf)
            if program.skipped:
                notes.append(
                    f"{prefix}.isolation.seccomp: {len(program.skipped)} system call(s) unknown "
                    f"to this libseccomp skipped: {', '.join(program.skipped)}"
                )
        if iso.address_families is not None:
            programs.append(
                seccomp.family_program(iso.address_families, iso.address_families_deny).bpf
            )
    except seccomp.SeccompError as exc:
        key = "seccomp" if iso.seccomp else "address_families"
        raise _fail(
            Code.SECCOMP,
            f"{prefix}.isolation.{key}",
            str(exc),
            "install libseccomp2 (apt-get install libseccomp2), or remove the key",
        ) from None
    return tuple(programs), tuple(notes)


def lsm_active(name: str) -> str:
    """Why the LSM ``name`` cannot label a process here ("" = it can)."""
    return lsm_unavailable(name)


def lsm(iso: Isolation, prefix: str, skip: Callable[[str, str], None]) -> tuple[str, str] | None:
    """The ``/proc/self/attr`` write that labels the exec, or None."""
    found: tuple[str, str] | None = None
    for key, name, attr in (
        ("apparmor_profile", "apparmor", "/proc/self/attr/apparmor/exec"),
        ("selinux_context", "selinux", "/proc/self/attr/exec"),
    ):
        value = getattr(iso, key)
        if not value:
            continue
        optional = value.startswith("-")
        label = value[1:] if optional else value
        reason = lsm_active(name)
        if reason and optional:
            skip(f"isolation.{key}", reason)
            continue
        if reason:
            raise _fail(
                Code.LSM,
                f"{prefix}.isolation.{key}",
                f"cannot apply '{label}': {reason}; the service would run unconfined",
                f"enable {'AppArmor' if name == 'apparmor' else 'SELinux'}, remove the key, "
                f'or write "-{label}" to start without it (reported as not applied)',
            )
        found = (attr, f"exec {label}" if name == "apparmor" else label)
    return found


def notify_path(plan: SpawnPlan, path: str) -> tuple[SpawnPlan, str]:
    """Where the service reaches its notify socket ``path``, and the plan that makes it so.

    When the service's own mounts hide ``path`` (``private_tmp`` over a state directory in
    /tmp, ``protect_home`` over one in /root, an inaccessible path), the socket is bound at
    ``NOTIFY_MOUNT`` inside its mount namespace instead (``notify_bind``; the child opens
    the socket before the hiding mounts and binds it after them).
    """
    hiding: list[str] = []
    if plan.private_tmp:
        hiding += ["/tmp", "/var/tmp"]
    if plan.protect is not None:
        hiding += [*plan.protect.hidden_dirs, *plan.protect.empty_dirs, *plan.protect.hidden_files]
    if not any(path == h or path.startswith(h.rstrip("/") + "/") for h in hiding):
        return plan, path
    try:
        os.makedirs(BLANK_DIR, mode=0o755, exist_ok=True)
        if not os.path.lexists(NOTIFY_MOUNT):
            os.close(os.open(NOTIFY_MOUNT, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError:
        return plan, path  # cannot prepare the mount point: the service sees the original
    return replace(plan, notify_bind=(path, NOTIFY_MOUNT)), NOTIFY_MOUNT
