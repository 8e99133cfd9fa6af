"""The account cache the supervisor plans with: answers only what getent told it."""

from __future__ import annotations

import pytest

from systemg.spawn.accounts import CachedAccounts, Pending, UserEntry, parse_group, parse_passwd


def test_unknown_names_are_pending_until_stored() -> None:
    now = [0.0]
    cache = CachedAccounts(clock=lambda: now[0], ttl_s=60)
    with pytest.raises(Pending) as caught:
        cache.user("www-data")
    assert caught.value.needs == (("passwd", "www-data"),)
    cache.store(("passwd", "www-data"), b"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
    assert cache.user("www-data") == UserEntry("www-data", 33, 33, "/var/www", "/usr/sbin/nologin")
    cache.store(("group", "nope"), None)
    assert cache.group("nope") is None  # "not found" is an answer too
    now[0] = 61.0  # expired: ask again
    with pytest.raises(Pending):
        cache.user("www-data")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n", UserEntry("root", 0, 0, "/root", "/bin/bash")),
        (b"broken:x:zero:0::/:/bin/sh\n", None),
        (b"short:x:1\n", None),
    ],
)
def test_parse_passwd(line: bytes, expected: UserEntry | None) -> None:
    assert parse_passwd(line) == expected


def test_parse_group() -> None:
    assert parse_group(b"www-data:x:33:\n") == 33
    assert parse_group(b"bad:x:\n") is None
