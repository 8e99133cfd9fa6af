"""The two wire parsers are total: anything that is not exactly a valid message is a
``ProtocolError`` (control socket) or ``None`` (fd holder), never another exception."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.errors import ProtocolError
from systemg.protocol import codec, holder
from systemg.protocol.messages import VERBS, StartRequest, StatusRequest


def frame(args: object, verb: str = "status") -> bytes:
    return json.dumps({"v": 1, "verb": verb, "args": args}).encode()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (frame({"project": 5}), "field 'project' must be a string or null, not 5"),
        (frame({"project": "a\x00b"}), "field 'project' must be a string or null"),
        (frame({"project": True}), "field 'project' must be a string or null, not True"),
        (frame({"attach": 1}, "start"), "field 'attach' must be true or false, not 1"),
        (frame({"environ": "A=1"}, "start"), "field 'environ' must be a list of"),
        (frame({"environ": [["A", 1]]}, "start"), "field 'environ' must be a list of"),
        (frame({"environ": [["A", "1", "x"]]}, "start"), "field 'environ' must be a list of"),
        (frame({"project": [[[[[[[[[["x"]]]]]]]]]]}), "'args' nests deeper than"),
        (b'{"v":1,"verb":"status","args":{"p":' + b"[" * 950 + b"]" * 950 + b"}}", "nests"),
        (b'{"v":1,"verb":"' + b"x" * 5000 + b'"}', "unknown verb 'xxxx"),
    ],
)
def test_ill_typed_requests_are_protocol_errors(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        codec.decode_request(payload)
    text = err.value.diagnostics[0].message
    assert message in text
    assert len(text) < 200  # a client's value is quoted short


def test_well_typed_requests_decode() -> None:
    assert codec.decode_request(frame({"project": "p", "extra": [1]})) == StatusRequest("p")
    start = codec.decode_request(frame({"environ": [["A", "1"]], "attach": True}, "start"))
    assert start == StartRequest(environ=(("A", "1"),), attach=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values)
def test_any_json_args_decode_or_fail_cleanly(value: object) -> None:
    for verb in sorted(VERBS):
        for args in ({"project": value, "environ": value, "force": value}, value):
            with contextlib.suppress(ProtocolError):
                codec.decode_request(frame(args, verb))


def test_holder_requests() -> None:
    assert holder.parse_request(holder.encode(holder.Op.PUT, "p/s/1"), 2, 0) == holder.Request(
        holder.Op.PUT, "p/s/1"
    )
    assert holder.parse_request(holder.encode(holder.Op.GET), 0, 0) == holder.Request(holder.Op.GET)
    refused = [
        (holder.encode(holder.Op.PUT, "p/s/1"), 0),  # a put without fds
        (holder.encode(holder.Op.PUT, "p/s/1"), 3),  # too many
        (holder.encode(holder.Op.GET), 1),  # fds on an op that takes none
        (holder.encode(holder.Op.DEL, "k"), 2),
        (b'{"op":"put","key":5}', 1),
        (b'{"op":"put","key":""}', 1),
        (b'{"op":"put","key":"' + b"k" * 2000 + b'"}', 1),
        (b'{"op":["put"]}', 0),
        (b'{"op":"nope"}', 0),
        (b"[" * 3000, 0),
        (b"\xff", 0),
        (b"[]", 0),
    ]
    for data, nfds in refused:
        assert holder.parse_request(data, nfds, 0) is None, (data[:40], nfds)
    truncated = socket.MSG_TRUNC
    assert holder.parse_request(holder.encode(holder.Op.GET), 0, truncated) is None
    assert holder.parse_request(holder.encode(holder.Op.PUT, "k"), 2, socket.MSG_CTRUNC) is None


def test_holder_replies() -> None:
    assert holder.parse_reply(holder.END, 0, 0) == holder.End()
    assert holder.parse_reply(holder.encode_entry("k"), 2, 0) == holder.Entry("k")
    assert holder.parse_reply(holder.encode_entry("k"), 0, 0) is None
    assert holder.parse_reply(holder.END, 1, 0) is None


@given(st.binary(max_size=600), st.integers(0, 300), st.integers(0, 1 << 16))
def test_holder_parsers_never_raise(data: bytes, nfds: int, flags: int) -> None:
    holder.parse_request(data, nfds, flags)
    holder.parse_reply(data, nfds, flags)
