"""Listen host names become addresses without DNS: the supervisor binds on its one thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from systemg.spawn.sockets import host_address


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("0.0.0.0", "0.0.0.0"),
        ("localhost", "127.0.0.1"),
    ],
)
def test_literals_and_localhost(host: str, address: str, tmp_path: Path) -> None:
    assert host_address(host, str(tmp_path / "no-hosts")) == address


def test_names_come_from_the_hosts_file_only(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment api\n10.1.2.3  db.internal db  # db host\nbogus  notanip\n")
    assert host_address("db", str(hosts)) == "10.1.2.3"
    assert host_address("db.internal", str(hosts)) == "10.1.2.3"
    assert host_address("api", str(hosts)) is None  # only in a comment
    assert host_address("notanip", str(hosts)) is None
    assert host_address("example.com", str(hosts)) is None  # would need DNS: refused
