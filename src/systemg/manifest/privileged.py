"""The privileged service keys (docs/security.md §8): identity, limits, cgroup, capabilities,
isolation and listen. Pure: names are checked for shape only, they are resolved to ids at
spawn time.
"""

from __future__ import annotations

import os
import re
from functools import partial
from typing import Any, Literal

from systemg.errors import Code
from systemg.lsm import unavailable as lsm_unavailable
from systemg.manifest import sandbox
from systemg.manifest.check import Checker, child, describe, item
from systemg.manifest.kernel import Kind
from systemg.manifest.model import UNLIMITED, CgroupSpec, Isolation, Limits, ListenSpec
from systemg.manifest.tree import Node, Scalar
from systemg.manifest.values import (
    MAX_RLIMIT,
    GrammarError,
    parse_capability,
    parse_cpu_list,
    parse_cpu_max,
    parse_listen,
    parse_nice,
    parse_size,
)

LIMIT_KEYS = ("nofile", "nproc", "memlock", "nice", "cpu_affinity", "cgroup")
CGROUP_KEYS = ("memory_max", "cpu_max", "pids_max", "root")
ISOLATION_BOOLS = (
    "network",
    "mount",
    "pid",
    "user",
    "private_tmp",
    "private_devices",
    "no_new_privileges",
)
ISOLATION_SANDBOX = (
    "seccomp",
    "seccomp_action",
    "address_families",
    "protect_system",
    "protect_home",
    "read_only_paths",
    "read_write_paths",
    "inaccessible_paths",
    "apparmor_profile",
    "selinux_context",
)
PIDS_MAX_LIMIT = 4 * 1024 * 1024
"""The largest ``pids.max`` the kernel takes (``PID_MAX_LIMIT`` on 64-bit)."""
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$")


def account(ck: Checker, node: Node, path: str, what: str) -> str | None:
    """A user or group: a name (``www-data``) or a numeric id (``1000``)."""
    if (
        isinstance(node, Scalar)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        if node.value < 0:
            ck.error(Code.INVALID_VALUE, path, f"{what} id {node.value} is negative", node)
            return None
        return str(node.value)
    name = ck.string(node, path, what=f"a {what} name or id")
    if name is None:
        return None
    if not _ACCOUNT.fullmatch(name) or len(name) > 256:
        ck.error(
            Code.INVALID_VALUE,
            path,
            f"'{name}' is not a valid {what} name",
            node,
            f"use the {what} name as in /etc/{'passwd' if what == 'user' else 'group'}, "
            "or its numeric id",
        )
        return None
    return name


def supplementary_groups(ck: Checker, node: Node, path: str) -> tuple[str, ...]:
    seq = ck.sequence(node, path, "[adm, 27]")
    if seq is None:
        return ()
    out: list[str] = []
    for i, entry in enumerate(seq.items):
        name = account(ck, entry, item(path, i), "group")
        if name is not None and name not in out:
            out.append(name)
    return tuple(out)


def _rlimit(ck: Checker, node: Node, path: str, key: str) -> int | None:
    value = ck.value(node, path)
    if key == "nofile" and isinstance(value, str) and value.strip().lower() == "unlimited":
        ck.error(
            Code.INVALID_VALUE,
            path,
            "nofile cannot be unlimited",
            node,
            "the kernel caps open files at fs.nr_open (cat /proc/sys/fs/nr_open); "
            "write a number such as 1048576",
        )
        return None
    result = ck.grammar(node, path, lambda v: parse_size(v, allow_unlimited=key == "memlock"))
    if result is not None and result != UNLIMITED and result > MAX_RLIMIT:
        ck.error(Code.INVALID_VALUE, path, f"{describe(node)} is too large", node)
        return None
    return result


def limits(ck: Checker, node: Node, path: str) -> Limits:
    m = ck.mapping(node, path)
    if m is None:
        return Limits()
    f = ck.fields(m, path, LIMIT_KEYS)
    values: dict[str, object] = {}
    for key in ("nofile", "nproc", "memlock"):
        if key in f:
            values[key] = _rlimit(ck, f[key][1], child(path, key), key)
    if "nice" in f:
        values["nice"] = ck.grammar(f["nice"][1], child(path, "nice"), parse_nice)
    if "cpu_affinity" in f:
        values["cpu_affinity"] = ck.grammar(
            f["cpu_affinity"][1], child(path, "cpu_affinity"), parse_cpu_list
        )
    cgroup = cgroup_spec(ck, f["cgroup"][1], child(path, "cgroup")) if "cgroup" in f else None
    return Limits(
        nofile=_opt_int(values.get("nofile")),
        nproc=_opt_int(values.get("nproc")),
        memlock=_opt_int(values.get("memlock")),
        nice=_opt_int(values.get("nice")),
        cpu_affinity=values.get("cpu_affinity"),  # type: ignore[arg-type]
        cgroup=cgroup,
    )


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _memory_max(value: object) -> int | Literal["max"]:
    if isinstance(value, str) and value.strip() == "max":
        return "max"
    try:
        return parse_size(value)
    except GrammarError as problem:
        raise GrammarError(problem.message, problem.hint + ', or "max"') from None


def _pids_max(value: object) -> int | Literal["max"]:
    """``pids.max``: a count of tasks 1..PIDS_MAX_LIMIT, or ``max``."""
    hint = f'write a whole number of processes from 1 to {PIDS_MAX_LIMIT}, or "max"'
    if isinstance(value, str) and value.strip() == "max":
        return "max"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        raise GrammarError(f"expected a number of processes, got {value!r}", hint)
    if value < 1:
        raise GrammarError(
            f"pids_max {value} is below 1", hint + " (the service's own process counts)"
        )
    if value > PIDS_MAX_LIMIT:
        raise GrammarError(f"pids_max {value} is above the kernel's limit {PIDS_MAX_LIMIT}", hint)
    return value


def cgroup_spec(ck: Checker, node: Node, path: str) -> CgroupSpec | None:
    m = ck.mapping(node, path)
    if m is None:
        return None
    f = ck.fields(m, path, CGROUP_KEYS)
    memory_max = (
        ck.grammar(f["memory_max"][1], child(path, "memory_max"), _memory_max)
        if "memory_max" in f
        else None
    )
    cpu_max = (
        ck.grammar(f["cpu_max"][1], child(path, "cpu_max"), parse_cpu_max)
        if "cpu_max" in f
        else None
    )
    pids_max = (
        ck.grammar(f["pids_max"][1], child(path, "pids_max"), _pids_max)
        if "pids_max" in f
        else None
    )
    root: str | None = None
    if "root" in f:
        root = ck.string(f["root"][1], child(path, "root"), what="an absolute path")
        if root is not None and not os.path.isabs(root):
            ck.error(
                Code.INVALID_VALUE,
                child(path, "root"),
                f"'{root}' is not an absolute path",
                f["root"][1],
                "write the cgroup2 mount point, e.g. /sys/fs/cgroup",
            )
            root = None
        elif root is not None:
            root = os.path.normpath(root)
            if not ck.kernel(root, Kind.PATH, child(path, "root"), f["root"][1]):
                root = None
    return CgroupSpec(memory_max=memory_max, cpu_max=cpu_max, pids_max=pids_max, root=root)


def capabilities(ck: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    seq = ck.sequence(node, path, "[NET_BIND_SERVICE]")
    if seq is None:
        return None
    out: list[str] = []
    for i, entry in enumerate(seq.items):
        name = ck.grammar(entry, item(path, i), parse_capability)
        if name is not None and name not in out:
            out.append(name)
    return tuple(out)


def isolation(ck: Checker, node: Node, path: str) -> Isolation:
    m = ck.mapping(node, path)
    if m is None:
        return Isolation()
    f = ck.fields(m, path, ISOLATION_BOOLS + ISOLATION_SANDBOX)
    values: dict[str, Any] = {}
    for key in ISOLATION_BOOLS:
        if key in f:
            flag = ck.boolean(f[key][1], child(path, key))
            if flag is not None:
                values[key] = flag
    if "seccomp" in f:
        seccomp = _seccomp(ck, f["seccomp"][1], child(path, "seccomp"))
        if seccomp is not None:
            values["seccomp"] = seccomp
    if "seccomp_action" in f:
        action = ck.grammar(
            f["seccomp_action"][1], child(path, "seccomp_action"), sandbox.parse_seccomp_action
        )
        if action is not None:
            values["seccomp_action"], values["seccomp_errno"] = action
    if "address_families" in f:
        families = _families(ck, f["address_families"][1], child(path, "address_families"))
        if families is not None:
            values["address_families"], values["address_families_deny"] = families
    for key, choices in (
        ("protect_system", sandbox.PROTECT_SYSTEM),
        ("protect_home", sandbox.PROTECT_HOME),
    ):
        if key in f:
            level = ck.grammar(
                f[key][1],
                child(path, key),
                partial(sandbox.parse_protect, choices=choices, key=key),
            )
            if level is not None:
                values[key] = level
    for key in ("read_only_paths", "read_write_paths", "inaccessible_paths"):
        if key in f:
            values[key] = _paths(ck, f[key][1], child(path, key))
    for key, lsm in (("apparmor_profile", "apparmor"), ("selinux_context", "selinux")):
        if key in f:
            text = ck.string(f[key][1], child(path, key))
            if text is not None and ck.kernel(text, Kind.TEXT, child(path, key), f[key][1]):
                values[key] = text
                reason = "" if text.startswith("-") else lsm_unavailable(lsm)
                if reason:
                    ck.warn(
                        Code.LSM,
                        child(path, key),
                        f"{reason}: `sysg start` will refuse this service here",
                        f[key][0],
                        f'write "-{text}" to start it without the label on such a host',
                    )
    return Isolation(**values)


def _seccomp(ck: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    """One string (a single entry) or a list of entries, in order."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        entry = ck.grammar(node, path, sandbox.parse_seccomp_entry)
        return None if entry is None else (entry,)
    seq = ck.sequence(node, path, '["@system-service", "~@privileged"]')
    if seq is None:
        return None
    entries = [
        ck.grammar(e, item(path, i), sandbox.parse_seccomp_entry) for i, e in enumerate(seq.items)
    ]
    if any(e is None for e in entries):
        return None
    if not entries:
        ck.error(
            Code.INVALID_VALUE,
            path,
            "an empty list filters nothing",
            node,
            'list what the service may call, e.g. ["@system-service"], or remove the key',
        )
        return None
    return tuple(e for e in entries if e is not None)


def _families(ck: Checker, node: Node, path: str) -> tuple[tuple[str, ...], bool] | None:
    seq = ck.sequence(node, path, "[AF_UNIX, AF_INET, AF_INET6]")
    if seq is None:
        return None
    deny = False
    out: list[str] = []
    for i, entry in enumerate(seq.items):
        value = ck.value(entry, item(path, i))
        negate = isinstance(value, str) and value.strip().startswith("~")
        if i == 0:
            deny = negate
        elif negate != deny:
            ck.error(
                Code.INVALID_VALUE,
                item(path, i),
                "mixes allowed and denied (~) families",
                entry,
                "list only the families to allow, or start every entry with ~ to deny them",
            )
            return None
        text = value.strip()[1:] if negate and isinstance(value, str) else value
        name = ck.grammar(entry, item(path, i), partial(_family_text, text))
        if name is None:
            return None
        if name not in out:
            out.append(name)
    return tuple(out), deny


def _family_text(text: object, _value: object) -> str:
    return sandbox.parse_family(text)


def _paths(ck: Checker, node: Node, path: str) -> tuple[str, ...]:
    seq = ck.sequence(node, path, '["/srv/app", "-/var/cache/app"]')
    if seq is None:
        return ()
    out: list[str] = []
    for i, entry in enumerate(seq.items):
        text = ck.grammar(entry, item(path, i), sandbox.parse_sandbox_path)
        usable = text is not None and ck.kernel(text.lstrip("-"), Kind.PATH, item(path, i), entry)
        if usable and text is not None and text not in out:
            out.append(text)
    return tuple(out)


def listen(ck: Checker, node: Node, path: str) -> tuple[ListenSpec, ...]:
    seq = ck.sequence(node, path, '["127.0.0.1:8080", "unix:/run/app.sock"]')
    if seq is None:
        return ()
    out: list[ListenSpec] = []
    for i, entry in enumerate(seq.items):
        spec = ck.grammar(entry, item(path, i), parse_listen)
        if spec is None:
            continue
        if any(s.raw == spec.raw for s in out):
            ck.error(Code.INVALID_VALUE, item(path, i), f"'{spec.raw}' is listed twice", entry)
            continue
        out.append(spec)
    return tuple(out)
