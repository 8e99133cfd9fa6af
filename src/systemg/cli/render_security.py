"""Text view of a ``security.v1`` document, laid out like ``systemd-analyze security``. Pure.

Per service: a ✓/✗ table (name, description, exposure share), the items that matter most
first, then ``→ Overall exposure level for PROJECT/SERVICE: 9.6 UNSAFE``.
"""

from __future__ import annotations

from typing import Any

_COLORS = {"DANGEROUS": "31", "UNSAFE": "31", "EXPOSED": "33", "OK": "32", "SAFE": "32"}
_COLORS["PERFECT"] = "32"


def _mark(check: dict[str, Any], color: bool) -> str:
    if check["set"] is None:
        return " "
    mark, code = ("✓", "32") if check["set"] else ("✗", "31")
    return f"\x1b[{code}m{mark}\x1b[0m" if color else mark


def _order(check: dict[str, Any]) -> tuple[float, str]:
    return (-float(check["exposure"] or 0), check["name"])


def render_service(entry: dict[str, Any], *, color: bool = False) -> str:
    checks = sorted(entry["checks"], key=_order)
    name_w = max(len("NAME"), *(len(c["name"]) for c in checks))
    desc_w = max(len("DESCRIPTION"), *(len(c["description"]) for c in checks))
    lines = [f"{entry['project']}/{entry['service']} (pid {entry['pid']})"]
    lines.append(f"  {'NAME'.ljust(name_w)} {'DESCRIPTION'.ljust(desc_w)} EXPOSURE")
    for c in checks:
        lines.append(
            f"{_mark(c, color)} {c['name'].ljust(name_w)} {c['description'].ljust(desc_w)} "
            f"{c['exposure'] or ''}".rstrip()
        )
    label = entry["label"]
    text = f"{entry['exposure_text']} {label}"
    if color and label in _COLORS:
        text = f"\x1b[{_COLORS[label]}m{text}\x1b[0m"
    lines.append("")
    lines.append(f"→ Overall exposure level for {entry['project']}/{entry['service']}: {text}")
    return "\n".join(lines) + "\n"


def render_security(doc: dict[str, Any], *, color: bool = False) -> str:
    parts = [render_service(entry, color=color) for entry in doc["services"]]
    for skip in doc["skipped"]:
        parts.append(f"{skip['project']}/{skip['service']}: not assessed ({skip['reason']})\n")
    if not parts:
        parts.append("No running service to assess\n")
    return "\n".join(parts)
