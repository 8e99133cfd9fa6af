"""Is AppArmor or SELinux active on this host? (``isolation.apparmor_profile`` /
``selinux_context``, docs/security.md §10). Read by ``sysg validate`` (a warning) and by the
spawn plan (a start error), so both say the same thing."""

from __future__ import annotations

import os


def unavailable(name: str) -> str:
    """Why the LSM ``name`` (``apparmor`` or ``selinux``) cannot label a process here, or ""."""
    if name == "apparmor":
        if not os.path.exists("/proc/self/attr/apparmor/exec"):
            return "AppArmor is not active on this host (no /proc/self/attr/apparmor/)"
        try:
            with open("/sys/module/apparmor/parameters/enabled") as fh:
                if fh.read().strip() != "Y":
                    return "AppArmor is built in but disabled (apparmor=0)"
        except OSError:
            pass
        return ""
    if not os.path.exists("/sys/fs/selinux/enforce"):
        return "SELinux is not active on this host (no selinuxfs at /sys/fs/selinux)"
    return ""
