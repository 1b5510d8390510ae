"""Sealing and opening without a server: what this client refuses to
trust in a reply."""

from __future__ import annotations

import json
import os

import pytest

from mcp_engine_client import ReplyInvalid
from mcp_engine_client.core import outcome
from mcp_engine_client.envelope import (
    NamedKey,
    Sealer,
    b64u_decode,
    b64u_encode,
    canonical,
    open_reply,
)

SIGNING = NamedKey("sig-1", os.urandom(32))
ENCRYPTION = NamedKey("enc-1", os.urandom(32))


def reply(level: str, result: object) -> bytes:
    """A Response as the engine seals one (the same rules both ways)."""
    sealer = Sealer(None, SIGNING, ENCRYPTION, replay_stream=False)
    _, body = sealer.seal("Response", {"result": result}, level, {"correlation_id": "c-1"})
    return body


@pytest.mark.parametrize("level", ["Standard", "High", "Critical"])
def test_a_sealed_message_opens_to_its_payload(level: str) -> None:
    opened = open_reply(reply(level, {"n": 1.5}), SIGNING, ENCRYPTION, level)
    assert outcome(opened) == {"n": 1.5}


def test_a_tampered_reply_is_refused() -> None:
    envelope = json.loads(reply("High", 1))
    envelope["payload"] = {"result": 2}
    with pytest.raises(ReplyInvalid, match="signature does not match"):
        open_reply(json.dumps(envelope).encode(), SIGNING, ENCRYPTION, "High")
    other = NamedKey("enc-1", os.urandom(32))
    with pytest.raises(ReplyInvalid, match="does not decrypt"):
        open_reply(reply("Critical", 1), SIGNING, other, "Critical")


def test_a_response_with_less_protection_than_its_request_is_refused() -> None:
    with pytest.raises(ReplyInvalid, match="must be signed"):
        open_reply(reply("Standard", 1), SIGNING, ENCRYPTION, "High")
    with pytest.raises(ReplyInvalid, match="must be encrypted"):
        open_reply(reply("High", 1), SIGNING, ENCRYPTION, "Critical")


def test_canonical_form_and_base64url_are_strict() -> None:
    # RFC 8785's own example of number and key order.
    assert canonical({"b": 1.50, "a": [1e30, 0.002, "\u20ac"]}) == (
        '{"a":[1e+30,0.002,"\u20ac"],"b":1.5}'.encode()
    )
    assert b64u_decode(b64u_encode(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ("//8", "_-8=", "a b"):
        with pytest.raises(ValueError):
            b64u_decode(bad)
