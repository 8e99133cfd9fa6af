"""``<state>/supervisor.xml``: the operator's defaults for one supervisor (upstream's file).

Read once at boot. A missing file is written with the defaults; an existing one is
rewritten normalized (nested, 2-space indent, missing keys filled in, unknown ones kept out)
so an operator always sees every setting there is. A value that is not a whole number in
range is reported in ``supervisor.log`` and its default used; a file that is not XML is
left as it is (it may be mid-edit) and the defaults are used.

```xml
<supervisor>
  <logs>
    <max_bytes>10485760</max_bytes>      service logs and supervisor.log, unless a manifest's
    <max_files>5</max_files>             `logs:` says otherwise
  </logs>
  <timeouts>
    <pre_start_secs>300</pre_start_secs>             deployment.pre_start / skip budget
    <startup_stability_ms>250</startup_stability_ms> "up" without notify or health check
  </timeouts>
</supervisor>
```

``SYSG_PRE_START_TIMEOUT_SECS`` in the supervisor's environment still wins over
``pre_start_secs``. Pure except ``load`` (parse, render and the checks take text).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

from systemg.manifest.model import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES

# (section, key, attribute, smallest allowed)
_KEYS = (
    ("logs", "max_bytes", "log_max_bytes", 1),
    ("logs", "max_files", "log_max_files", 0),
    ("timeouts", "pre_start_secs", "pre_start_secs", 1),
    ("timeouts", "startup_stability_ms", "startup_stability_ms", 0),
)


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_max_files: int = DEFAULT_LOG_MAX_FILES
    pre_start_secs: int = 300
    startup_stability_ms: int = 250


def parse(text: str) -> tuple[SupervisorConfig, list[str]]:
    """The settings ``text`` gives (defaults for the rest) and what was wrong with it."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return SupervisorConfig(), [f"not XML ({exc}); using the defaults"]
    if root.tag != "supervisor":
        return SupervisorConfig(), [f"the root element is <{root.tag}>, not <supervisor>"]
    found: dict[str, int] = {}
    problems: list[str] = []
    for section, key, attr, least in _KEYS:
        node = root.find(f"{section}/{key}")
        if node is None:
            continue
        raw = (node.text or "").strip()
        if raw.isdigit() and int(raw) >= least:
            found[attr] = int(raw)
        else:
            problems.append(
                f"{section}.{key}: {raw!r} is not a whole number >= {least}; using the default"
            )
    return replace(SupervisorConfig(), **found), problems


def render(config: SupervisorConfig) -> str:
    """The normalized file: every key, nested, 2-space indent."""
    lines = ["<supervisor>"]
    section = ""
    for sec, key, attr, _least in _KEYS:
        if sec != section:
            if section:
                lines.append(f"  </{section}>")
            lines.append(f"  <{sec}>")
            section = sec
        lines.append(f"    <{key}>{getattr(config, attr)}</{key}>")
    lines += [f"  </{section}>", "</supervisor>"]
    return "\n".join(lines) + "\n"


def load(path: Path) -> tuple[SupervisorConfig, list[str]]:
    """Read ``path`` (defaults if missing) and write it back normalized when that changes
    it (not when it is not XML: an operator's half-written edit is never overwritten)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        return SupervisorConfig(), [f"cannot read it ({exc}); using the defaults"]
    config, problems = (SupervisorConfig(), []) if text is None else parse(text)
    unparsable = any(p.startswith(("not XML", "the root element")) for p in problems)
    normal = render(config)
    if text != normal and not unparsable:
        from systemg.daemon.store import write_atomic

        try:
            write_atomic(path, normal.encode(), 0o600)
        except OSError as exc:
            problems.append(f"cannot write it ({exc})")
    return config, problems
