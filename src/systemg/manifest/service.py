"""One service block -> ``model.Service``; ``env`` and ``logs`` blocks -> mergeable drafts.

``env`` and ``logs`` appear at the top level, per project and per service; each block is
parsed into a draft that remembers which keys were set, and drafts merge top < project <
service before becoming an ``EnvSpec``/``LogSpec``. Env files are read here through the
``read`` callback (trust and size checks live in ``load.py``/``trust.py``), relative to the
manifest's directory. The privileged keys are parsed in ``privileged.py``, the readiness keys
(``notify``, ``watchdog``, ``start_timeout``, ``deployment``, ``depends_on``) in ``readiness.py``,
``liveness``, ``hooks`` and ``skip`` in ``hooks.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from systemg.errors import Code, Diagnostic
from systemg.manifest import bluegreen, hooks, privileged, readiness, schedule
from systemg.manifest.check import UNDEFINED, Checker, child, describe, item
from systemg.manifest.env import parse_env_file
from systemg.manifest.kernel import Kind
from systemg.manifest.model import (
    DEFAULT_BACKOFF_MS,
    DEFAULT_STOP_TIMEOUT_MS,
    EnvSpec,
    LogSink,
    LogSpec,
    RestartPolicy,
    Service,
    Strategy,
)
from systemg.manifest.shellwords import simple_argv
from systemg.manifest.tree import (
    FileReadError,
    Key,
    Loc,
    Map,
    Node,
    Reader,
    Scalar,
    decode_utf8,
    display,
)
from systemg.manifest.values import did_you_mean, is_env_name, parse_duration, parse_size

SERVICE_KEYS = (
    "command",
    "exec",
    "working_dir",
    "env",
    "depends_on",
    "restart_policy",
    "backoff",
    "max_restarts",
    "stop_timeout",
    "logs",
    "user",
    "group",
    "supplementary_groups",
    "limits",
    "capabilities",
    "isolation",
    "listen",
    *readiness.READINESS_KEYS,
    *hooks.HOOK_SERVICE_KEYS,
    *schedule.SCHEDULE_KEYS,
)
ENV_KEYS = ("vars", "file", "inherit_env", "clear_session_vars", "strip")
LOG_KEYS = ("sink", "max_bytes", "max_files")
# Keys of the blocks inside a service: written at the service's level (``on_error:``, say,
# for ``hooks: {onerr: ...}``), the refusal says which block they belong to.
NESTED_KEYS = {
    **dict.fromkeys(hooks.HOOK_NAMES, "hooks"),
    **dict.fromkeys(readiness.DEPLOYMENT_KEYS, "deployment"),
    **dict.fromkeys(schedule.CRON_KEYS, "cron"),
    **dict.fromkeys(ENV_KEYS, "env"),
    **dict.fromkeys(LOG_KEYS, "logs"),
    **dict.fromkeys(privileged.LIMIT_KEYS, "limits"),
}


@dataclass(frozen=True, slots=True)
class EnvDraft:
    vars: tuple[tuple[str, str], ...] = ()
    file: str | None = None
    file_vars: tuple[tuple[str, str], ...] = ()
    inherit_env: bool | None = None
    clear_session_vars: bool | None = None
    strip: tuple[str, ...] = ()

    def under(self, over: EnvDraft) -> EnvDraft:
        """``self`` merged under ``over``: vars union (over wins), strip concatenated."""
        merged = dict(self.vars)
        merged.update(over.vars)
        strip = tuple(dict.fromkeys((*self.strip, *over.strip)))
        use_over_file = over.file is not None
        return EnvDraft(
            vars=tuple(merged.items()),
            file=over.file if use_over_file else self.file,
            file_vars=over.file_vars if use_over_file else self.file_vars,
            inherit_env=self.inherit_env if over.inherit_env is None else over.inherit_env,
            clear_session_vars=(
                self.clear_session_vars
                if over.clear_session_vars is None
                else over.clear_session_vars
            ),
            strip=strip,
        )

    def spec(self) -> EnvSpec:
        return EnvSpec(
            vars=self.vars,
            file=self.file,
            file_vars=self.file_vars,
            inherit_env=bool(self.inherit_env),
            clear_session_vars=True if self.clear_session_vars is None else self.clear_session_vars,
            strip=self.strip,
        )


@dataclass(frozen=True, slots=True)
class LogDraft:
    sink: LogSink | None = None
    max_bytes: int | None = None
    max_files: int | None = None

    def under(self, over: LogDraft) -> LogDraft:
        return LogDraft(
            sink=over.sink if over.sink is not None else self.sink,
            max_bytes=over.max_bytes if over.max_bytes is not None else self.max_bytes,
            max_files=over.max_files if over.max_files is not None else self.max_files,
        )

    def spec(self) -> LogSpec:
        return LogSpec(
            sink=self.sink or LogSink.FILE,
            max_bytes=self.max_bytes,
            max_files=self.max_files,
        )


class Context:
    """What parsing a block needs besides the tree: the checker, the base dir and a reader."""

    def __init__(self, ck: Checker, manifest_dir: str, read: Reader) -> None:
        self.ck = ck
        self.manifest_dir = manifest_dir
        self.read = read

    def env(self, node: Node, path: str) -> EnvDraft:
        ck = self.ck
        m = ck.mapping(node, path)
        if m is None:
            return EnvDraft()
        # Any other key that is a variable name is a variable (the upstream's bare keys:
        # `env: {GREETING: hello}`); one not in capitals that is close to a key (`varss`,
        # `File`) is taken for a misspelling of it (PROFILE, START are variables).
        bare = tuple(
            (k, v)
            for k, v in m.entries
            if k.name not in ENV_KEYS
            and is_env_name(k.name)
            and (k.name.isupper() or not did_you_mean(k.name.lower(), ENV_KEYS))
        )
        known = Map(tuple(e for e in m.entries if e not in bare), m.loc)
        f = ck.fields(known, path, ENV_KEYS)
        draft = EnvDraft()
        extra = self._vars(Map(bare, m.loc), path) if bare else ()
        if "vars" in f:
            given = self._vars(f["vars"][1], child(path, "vars"))
            given_names = {k for k, _ in given}  # vars: wins over a bare key of that name
            draft = replace(
                draft, vars=(*((k, v) for k, v in extra if k not in given_names), *given)
            )
        elif extra:
            draft = replace(draft, vars=extra)
        if "file" in f:
            draft = self._env_file(draft, f["file"][1], child(path, "file"))
        for key in ("inherit_env", "clear_session_vars"):
            if key in f:
                flag = ck.boolean(f[key][1], child(path, key))
                if flag is not None and key == "inherit_env":
                    draft = replace(draft, inherit_env=flag)
                elif flag is not None:
                    draft = replace(draft, clear_session_vars=flag)
        if "strip" in f:
            seq = ck.sequence(f["strip"][1], child(path, "strip"), "[AWS_SECRET_ACCESS_KEY]")
            names: list[str] = []
            for i, entry in enumerate(seq.items if seq else ()):
                name = self._env_name(entry, item(child(path, "strip"), i))
                if name is not None:
                    names.append(name)
            draft = replace(draft, strip=tuple(dict.fromkeys(names)))
        return draft

    def _env_name(self, node: Node, path: str) -> str | None:
        name = self.ck.string(node, path, what="a variable name")
        if name is not None and not is_env_name(name):
            self.ck.error(
                Code.INVALID_VALUE,
                path,
                f"'{name}' is not a valid environment variable name",
                node,
                "use letters, digits and '_', not starting with a digit",
            )
            return None
        return name

    def _vars(self, node: Node, path: str) -> tuple[tuple[str, str], ...]:
        m = self.ck.mapping(node, path)
        if m is None:
            return ()
        out: dict[str, str] = {}
        for key, value in m.entries:
            vpath = child(path, key.name)
            if not is_env_name(key.name):
                self.ck.error(
                    Code.INVALID_NAME,
                    vpath,
                    f"'{key.name}' is not a valid environment variable name",
                    key,
                    "use letters, digits and '_', not starting with a digit",
                )
                continue
            text = self._var_value(value, vpath)
            if text is not None and self.ck.kernel(
                text, Kind.ENV_VALUE, vpath, value, env_name=key.name
            ):
                out[key.name] = text
        return tuple(out.items())

    def _var_value(self, node: Node, path: str) -> str | None:
        # Values are taken as written (`PORT: 8080` -> "8080", `DEBUG: yes` -> "yes").
        if isinstance(node, Scalar) and not isinstance(node.value, str):
            return "" if node.value is None else node.raw
        value = self.ck.value(node, path)
        if value is UNDEFINED:
            return None
        if not isinstance(value, str | int):
            self.ck.error(
                Code.INVALID_VALUE,
                path,
                f"an environment value must be a string, got {describe(node)}",
                node,
                "quote the value",
            )
            return None
        return str(value)

    def _env_file(self, draft: EnvDraft, node: Node, path: str) -> EnvDraft:
        ck = self.ck
        name = ck.string(node, path, what="a file path")
        if name is None:
            return draft
        target = os.path.normpath(os.path.join(self.manifest_dir, name))
        if not (
            ck.kernel(name, Kind.PATH, path, node) and ck.kernel(target, Kind.PATH, path, node)
        ):
            return draft
        try:
            data = self.read(target)
        except FileReadError as problem:
            code = Code.ENV_FILE if problem.code is Code.CONFIG_UNREADABLE else problem.code
            ck.error(
                code,
                path,
                f"cannot read env file {display(target, self.manifest_dir)}: {problem.message}",
                node,
                problem.hint or "the path is relative to the manifest's directory",
            )
            return replace(draft, file=target)
        text = decode_utf8(data, target)
        if not isinstance(text, str):
            ck.errors.append(text)
            return replace(draft, file=target)
        pairs, problems = parse_env_file(text)
        for p in problems:
            ck.errors.append(ck_diag(p.message, path, target, p.line, p.hint))
        return replace(draft, file=target, file_vars=pairs)

    def logs(self, node: Node, path: str) -> LogDraft:
        ck = self.ck
        m = ck.mapping(node, path)
        if m is None:
            return LogDraft()
        f = ck.fields(m, path, LOG_KEYS)
        sink = max_bytes = max_files = None
        if "sink" in f:
            chosen = ck.choice(f["sink"][1], child(path, "sink"), [s.value for s in LogSink])
            sink = LogSink(chosen) if chosen else None
        if "max_bytes" in f:
            max_bytes = ck.grammar(f["max_bytes"][1], child(path, "max_bytes"), parse_size)
            if max_bytes == 0:
                ck.error(
                    Code.INVALID_VALUE, child(path, "max_bytes"), "must be > 0", f["max_bytes"][1]
                )
                max_bytes = None
        if "max_files" in f:
            max_files = ck.integer(f["max_files"][1], child(path, "max_files"))
        return LogDraft(sink, max_bytes, max_files)

    def service(
        self, name: str, node: Node, path: str, env: EnvDraft, logs: LogDraft
    ) -> tuple[Service | None, readiness.Dependencies]:
        """The service (None after a problem) and its ``depends_on`` entries.

        The dependencies are returned even when the service has other problems, so the graph
        is checked too and every problem is reported at once.
        """
        ck = self.ck
        m = ck.mapping(node, path)
        if m is None:
            return None, readiness.Dependencies()
        f = ck.fields(m, path, SERVICE_KEYS, NESTED_KEYS)
        before = len(ck.errors)
        argv, command = self._argv(f, path, m.loc)
        deps = readiness.Dependencies()
        if "depends_on" in f:
            deps = readiness.depends_on(ck, f["depends_on"][1], child(path, "depends_on"))
        svc_env = self.env(f["env"][1], child(path, "env")) if "env" in f else EnvDraft()
        svc_logs = self.logs(f["logs"][1], child(path, "logs")) if "logs" in f else LogDraft()
        kw: dict[str, Any] = readiness.settings(ck, f, path)
        # With blue_green, liveness may name {slot}: it is parsed there, once per slot.
        slotted_liveness = "deployment" in f and _has_key(f["deployment"][1], "blue_green")
        kw.update(
            hooks.settings(
                ck, {k: v for k, v in f.items() if k != "liveness" or not slotted_liveness}, path
            )
        )
        kw.update(schedule.settings(ck, f, path))
        if "cron" in kw and kw.get("strategy") is Strategy.ROLLING:
            ck.error(
                Code.INVALID_VALUE,
                child(child(path, "deployment"), "strategy"),
                "a cron job is not restarted, so it has no rolling strategy",
                f["deployment"][0],
                "remove deployment.strategy from the job (each run is a launch of its own)",
            )
        if "deployment" in f:
            kw.update(
                bluegreen.settings(
                    ck,
                    f["deployment"][1],
                    child(path, "deployment"),
                    name=name,
                    manifest_dir=self.manifest_dir,
                    # A strategy written but refused: its error is enough.
                    strategy=kw.get(
                        "strategy",
                        None if _has_key(f["deployment"][1], "strategy") else Strategy.IMMEDIATE,
                    ),
                    liveness=f["liveness"][1] if slotted_liveness and "liveness" in f else None,
                )
            )
        if "working_dir" in f:
            wd_path, wd_node = child(path, "working_dir"), f["working_dir"][1]
            wd = ck.string(wd_node, wd_path, what="a directory")
            if wd is not None and ck.kernel(wd, Kind.PATH, wd_path, wd_node):
                wd = os.path.normpath(os.path.join(self.manifest_dir, wd))
                if ck.kernel(wd, Kind.PATH, wd_path, wd_node):
                    kw["working_dir"] = wd
        if "restart_policy" in f:
            policy = ck.choice(
                f["restart_policy"][1],
                child(path, "restart_policy"),
                [p.value for p in RestartPolicy],
            )
            if policy is not None and "cron" not in kw:  # a job: warned and ignored
                kw["restart_policy"] = RestartPolicy(policy)
                kw["restart_declared"] = True
        for key, field_name in (("backoff", "backoff_ms"), ("stop_timeout", "stop_timeout_ms")):
            if key in f:
                ms = ck.grammar(f[key][1], child(path, key), parse_duration)
                if ms is not None:
                    kw[field_name] = ms
        if "max_restarts" in f:
            kw["max_restarts"] = ck.integer(f["max_restarts"][1], child(path, "max_restarts"))
        for key in ("user", "group"):
            if key in f:
                kw[key] = privileged.account(ck, f[key][1], child(path, key), key)
        if "supplementary_groups" in f:
            kw["supplementary_groups"] = privileged.supplementary_groups(
                ck, f["supplementary_groups"][1], child(path, "supplementary_groups")
            )
        if "limits" in f:
            kw["limits"] = privileged.limits(ck, f["limits"][1], child(path, "limits"))
        if "capabilities" in f:
            kw["capabilities"] = privileged.capabilities(
                ck, f["capabilities"][1], child(path, "capabilities")
            )
        if "isolation" in f:
            kw["isolation"] = privileged.isolation(ck, f["isolation"][1], child(path, "isolation"))
        if "listen" in f:
            kw["listen"] = privileged.listen(ck, f["listen"][1], child(path, "listen"))
        if len(ck.errors) != before or argv is None:
            return None, deps
        service = Service(
            name=name,
            argv=argv,
            command=command,
            working_dir=self.manifest_dir,
            env=env.under(svc_env).spec(),
            depends_on=deps.names,
            completed_deps=deps.completed,
            backoff_ms=DEFAULT_BACKOFF_MS,
            stop_timeout_ms=DEFAULT_STOP_TIMEOUT_MS,
            logs=logs.under(svc_logs).spec(),
        )
        service = replace(service, **kw)
        if "deployment" in f:
            bluegreen.shared_port_warning(ck, service, path, f["deployment"][1])
        return service, deps

    def _argv(
        self, f: dict[str, tuple[Key, Node]], path: str, where: Loc
    ) -> tuple[tuple[str, ...] | None, str | None]:
        ck = self.ck
        if "command" in f and "exec" in f:
            ck.error(
                Code.INVALID_VALUE,
                child(path, "exec"),
                "both command and exec are set",
                f["exec"][0],
                "keep one: command runs through /bin/sh -c, exec is an argv list run directly",
            )
            return None, None
        if "command" in f:
            command = ck.command(f["command"][1], child(path, "command"))
            if command is None:
                return None, None
            # One simple command runs as itself: no shell left between us and the program.
            return simple_argv(command) or ("/bin/sh", "-c", command), command
        if "exec" in f:
            epath = child(path, "exec")
            node = f["exec"][1]
            if isinstance(node, Scalar):
                ck.error(
                    Code.INVALID_VALUE,
                    epath,
                    "exec must be a list of arguments",
                    node,
                    'write exec: ["prog", "arg"], or use command: for a shell string',
                )
                return None, None
            seq = ck.sequence(node, epath, '["python3", "-m", "http.server"]')
            if seq is None:
                return None, None
            if not seq.items:
                ck.error(Code.INVALID_VALUE, epath, "exec is empty", node, "name the program")
                return None, None
            args = [
                ck.string(a, item(epath, i), what="an argument") for i, a in enumerate(seq.items)
            ]
            # argv[0] is also the file execve opens (directly, or joined to each PATH entry).
            usable = [
                a is not None
                and ck.kernel(a, Kind.PATH if i == 0 else Kind.ARG, item(epath, i), seq.items[i])
                for i, a in enumerate(args)
            ]
            if not all(usable):
                return None, None
            return tuple(a for a in args if a is not None), None
        ck.error(
            Code.MISSING_KEY,
            path,
            "no command: set command or exec",
            where,
            'add command: "your-program --flag" (run by /bin/sh -c) or exec: [prog, arg]',
        )
        return None, None


def ck_diag(message: str, path: str, file: str, line: int, hint: str) -> Diagnostic:
    return Diagnostic(Code.ENV_FILE, f"{path}: {message}", path, hint, file, line, 1)


def _has_key(node: Node, key: str) -> bool:
    return isinstance(node, Map) and any(k.name == key for k, _ in node.entries)
