"""supervisor.xml against a real supervisor: written with the defaults at first boot, and its
caps and timeouts applied to services whose manifest does not set its own."""

from __future__ import annotations

import pytest

from tests.support.runtime import Runtime, wait_for

CHATTY = """\
version: "2"
projects:
  demo:
    services:
      chatty:
        command: "while true; do echo chatty-line-0123456789-0123456789-012345; sleep 0.01; done"
        restart_policy: always
      capped:
        command: "while true; do echo capped-line; sleep 0.05; done"
        restart_policy: always
        logs: {max_bytes: 1000000, max_files: 1}
"""


@pytest.mark.timeout(120)
def test_supervisor_xml_defaults_then_a_tiny_cap_rotates_service_logs(rt: Runtime) -> None:
    rt.write("systemg.yaml", CHATTY)
    rt.sysg("start", "--daemonize", check=True)
    xml = rt.state / "supervisor.xml"
    text = xml.read_text()
    assert "  <logs>\n    <max_bytes>10485760</max_bytes>\n    <max_files>5</max_files>" in text
    assert "<startup_stability_ms>250</startup_stability_ms>" in text
    rt.sysg("stop", "--supervisor", check=True)
    xml.write_text(
        "<supervisor><logs><max_bytes>4096</max_bytes><max_files>3</max_files></logs></supervisor>"
    )
    rt.sysg("start", "--daemonize", check=True)
    assert (
        "  <logs>\n    <max_bytes>4096</max_bytes>\n    <max_files>3</max_files>" in xml.read_text()
    )
    log = rt.logs / "demo" / "chatty.log"
    wait_for((rt.logs / "demo" / "chatty.log.2").exists, timeout=30, what="rotation")
    assert log.stat().st_size <= 4096 + 200
    assert not (rt.logs / "demo" / "chatty.log.4").exists()  # max_files 3
    # A service with caps of its own keeps them.
    assert not (rt.logs / "demo" / "capped.log.1").exists()


@pytest.mark.timeout(120)
def test_startup_stability_from_supervisor_xml_decides_up(rt: Runtime) -> None:
    rt.state.mkdir(parents=True, exist_ok=True)
    (rt.state / "supervisor.xml").write_text(
        "<supervisor><timeouts><startup_stability_ms>3000</startup_stability_ms></timeouts>"
        "</supervisor>"
    )
    rt.write(
        "systemg.yaml",
        'version: "2"\nservices:\n  brief:\n    command: "sleep 1; exit 4"\n',
    )
    # Alive for 1 s, then exit 4: down before 3 s of stability, so it never came up.
    done = rt.sysg("start", "--daemonize")
    assert done.returncode == 1
    assert "SG0102" in done.stderr
