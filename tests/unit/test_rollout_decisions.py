"""When a rolling restart can overlap two generations (docs/manifest.md, "Rolling restarts",
docs/manifest.md, "Rolling restarts"):
not when the service binds a fixed port itself, its sockets change, or it has a cgroup."""

from __future__ import annotations

from dataclasses import replace

from systemg.daemon.rollout import fixed_port, no_overlap
from systemg.daemon.units import Unit
from systemg.manifest.model import (
    CgroupSpec,
    EnvSpec,
    Limits,
    ListenKind,
    ListenSpec,
    ProbeKind,
    ProbeSpec,
    Service,
    Strategy,
)

BASE = Service("web", ("python3", "server.py"), strategy=Strategy.ROLLING)
SOCK = (ListenSpec(ListenKind.TCP, host="127.0.0.1", port=8080, raw="127.0.0.1:8080"),)
URL = ProbeSpec(ProbeKind.URL, host="127.0.0.1", port=8080, path="/", raw="http://127.0.0.1:8080/")


def test_no_fixed_port_by_default() -> None:
    assert fixed_port(BASE) is None


def test_health_check_port_or_port_env_is_fixed_without_listen() -> None:
    assert "port 8080" in (fixed_port(replace(BASE, health_check=URL)) or "")
    env = EnvSpec(vars=(("PORT", "9000"),))
    assert "PORT=9000" in (fixed_port(replace(BASE, env=env)) or "")


def test_listen_shares_the_port() -> None:
    env = EnvSpec(vars=(("PORT", "8080"),))
    assert fixed_port(replace(BASE, listen=SOCK, health_check=URL, env=env)) is None


def test_changed_sockets_or_a_cgroup_do_not_overlap() -> None:
    unit = Unit("p", replace(BASE, listen=SOCK))
    assert no_overlap(unit, replace(BASE, listen=SOCK)) is None
    assert "listen" in (no_overlap(unit, BASE) or "")
    cgroup = Limits(cgroup=CgroupSpec(memory_max=1 << 20))
    assert "cgroup" in (no_overlap(unit, replace(BASE, listen=SOCK, limits=cgroup)) or "")
