"""The client against the real ``mcp-engine serve``: every level both ways,
each error a remote peer can cause as its exception, many calls in flight,
renewal, and a server restart survived."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import time
from typing import Any

import pytest
from conftest import Server

import mcp_engine_client as mcp
from mcp_engine_client import Client, Credentials, NamedKey
from mcp_engine_client.envelope import Sealer, b64u_encode, timestamp_now


def client(server: Server, role: str = "admin", **options: Any) -> Client:
    return Client.from_credentials(server.credentials, role=role, **options)


@pytest.mark.parametrize("level", ["Standard", "High", "Critical"])
def test_every_level_round_trips_with_its_protection(server: Server, level: str) -> None:
    with client(server) as c:
        args = {"hi": [1, "two", None], "n": 1.5, "big": 2**60}
        assert c.call("demo.echo", args, level=level) == {**args, "big": float(2**60)}
        reply = c.request("demo.echo", {"x": 1}, level=level)
        assert reply["type"] == "Response"
        assert reply["security"]["security_level"] == level
        security = reply["security"]
        assert (security.get("signature") is not None) == (level != "Standard")
        assert (security.get("encryption_info") is not None) == (level == "Critical")
        assert reply["payload"] == {"result": {"x": 1}}


def test_low_is_refused_where_the_server_wants_standard(server: Server) -> None:
    with client(server) as c, pytest.raises(mcp.AccessDenied) as refused:
        c.call("demo.echo", level="Low")
    assert refused.value.code == "access_denied"
    assert not refused.value.retryable


def _expired_token(credentials: Credentials) -> str:
    """A token signed with the server's jwt key that expired an hour ago."""
    assert credentials.jwt is not None
    header = {"alg": "HS256", "kid": credentials.jwt.kid, "typ": "JWT"}
    now = int(time.time())
    claims = {"sub": "admin", "roles": ["admin"], "iat": now - 7200, "exp": now - 3600}
    signing_input = ".".join(
        b64u_encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    mac = hmac.new(credentials.jwt.key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u_encode(mac)}"


def test_each_error_a_remote_peer_can_cause_arrives_as_its_exception(server: Server) -> None:
    creds = server.credentials

    def random_key(kid: str) -> NamedKey:
        return NamedKey(kid, os.urandom(32))

    bad_token = dataclasses.replace(creds, tokens={"x": "not.a-token.at-all"})
    cases: list[tuple[type[mcp.McpError], Client, str, Any, str]] = [
        (mcp.HandlerNotFound, client(server), "no.such", None, "Standard"),
        (mcp.AccessDenied, client(server, "reader"), "demo.sleep", {"ms": 1}, "Standard"),
        (
            mcp.AuthenticationFailed,
            Client.from_credentials(bad_token, "x"),
            "demo.echo",
            None,
            "Standard",
        ),
        (
            mcp.TokenExpired,
            Client.from_credentials(
                dataclasses.replace(creds, tokens={"x": _expired_token(creds)}), "x"
            ),
            "demo.echo",
            None,
            "Standard",
        ),
        (
            mcp.SignatureInvalid,
            Client.from_credentials(
                dataclasses.replace(creds, signing=random_key(creds.signing.kid)),  # type: ignore[union-attr]
                renew_before=0,
            ),
            "demo.echo",
            None,
            "High",
        ),
        (
            mcp.EncryptionFailed,
            Client.from_credentials(
                dataclasses.replace(creds, encryption=random_key(creds.encryption.kid)),  # type: ignore[union-attr]
                renew_before=0,
            ),
            "demo.echo",
            None,
            "Critical",
        ),
        (mcp.Timeout, client(server), "demo.sleep", {"ms": 1000}, "Standard"),
        (mcp.InternalError, client(server), "demo.panic", None, "Standard"),
    ]
    for expected, c, command, args, level in cases:
        with c, pytest.raises(expected) as refused:
            c.call(command, args, level=level)
        assert refused.value.code == expected.code
        assert refused.value.retryable == (expected.code == "timeout")


def test_envelope_faults_are_their_codes(server: Server) -> None:
    creds = server.credentials
    token = creds.token("admin")

    def body(version: str, payload: str, kind: str = "Command") -> bytes:
        return (
            f'{{"version":"{version}","id":"raw-{os.urandom(4).hex()}","type":"{kind}",'
            f'"payload":{payload},"security":{{"security_level":"Standard",'
            f'"auth_token":"{token}"}},"timestamp":"{timestamp_now()}"}}'
        ).encode()

    with client(server) as c:
        for raw, code in [
            (b"{not json", "invalid_format"),
            (body("1.0", '{"command":7}'), "validation_failed"),
            (body("2.0", '{"command":"demo.echo"}'), "unsupported_version"),
        ]:
            future = c.send_raw(raw)
            with pytest.raises(mcp.McpError) as refused:
                future.result(10)
            assert refused.value.code == code
        # The same message twice.
        sealer = Sealer(token, None, None, replay_stream=False)
        _, once = sealer.seal("Command", {"command": "demo.echo"}, "Standard")
        assert c.send_raw(once).result(10) is None
        with pytest.raises(mcp.ReplayDetected):
            c.send_raw(once).result(10)


def test_a_frame_over_the_size_limit_is_message_too_large(server: Server) -> None:
    with client(server, reconnect_attempts=1) as c:
        with pytest.raises(mcp.MessageTooLarge) as refused:
            c.send_raw(b" " * (1024 * 1024 + 1)).result(10)
        assert not refused.value.retryable
        # The server closed that connection: a call sent before the client
        # saw it fails ConnectionLost; one after opens another.
        call_again_until_connected(c)


def call_again_until_connected(c: Client) -> None:
    until = time.monotonic() + 20
    while True:
        try:
            assert c.call("sys.ping") == {"pong": True}
            return
        except mcp.ConnectionLost:
            assert time.monotonic() < until
            time.sleep(0.05)


def test_a_principal_over_its_rate_gets_resource_exhausted(limited_server: Server) -> None:
    with client(limited_server) as c:
        futures = [c.submit("sys.ping") for _ in range(5)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(10))
            except mcp.ResourceExhausted as e:
                assert e.retryable
                assert e.message.startswith("rate limit:")
                outcomes.append("limited")
        assert "limited" in outcomes
        assert {"pong": True} in outcomes


def test_a_thousand_pipelined_calls_are_each_answered_once(server: Server) -> None:
    with client(server) as c:
        futures = [c.submit("demo.echo", n, level="Critical") for n in range(1000)]
        assert [f.result(30) for f in futures] == list(range(1000))
        assert c.unmatched == 0


def test_the_async_client_does_the_same(server: Server) -> None:
    import asyncio

    async def run() -> None:
        async with mcp.AsyncClient.from_credentials(server.credentials) as c:
            for level in ("Standard", "High", "Critical"):
                assert await c.call("demo.echo", {"level": level}, level=level) == {"level": level}
            results = await asyncio.gather(
                *(c.call("demo.echo", n, level="High") for n in range(1000))
            )
            assert results == list(range(1000))
            with pytest.raises(mcp.HandlerNotFound):
                await c.call("no.such")
            assert await c.publish("demo.notice", {"x": 1}, ack=True) == 1
            old = c.token
            await c.renew()
            assert c.token != old
            assert await c.call("sys.ping") == {"pong": True}

    asyncio.run(run())


def test_the_token_is_renewed_before_it_expires(server: Server) -> None:
    # Renew whenever less than a century is left: at the first call.
    with client(server, renew_before=3.2e9) as c:
        old = c.token
        assert c.call("sys.ping") == {"pong": True}
        assert c.token != old
    with client(server) as c:
        assert c.publish("demo.notice", None, ack=True) == 1
        assert c.publish("demo.notice", None) is None


def test_a_server_restart_is_survived(server: Server) -> None:
    with client(server, reconnect_attempts=50) as c:
        assert c.call("sys.ping") == {"pong": True}
        server.stop()
        server.start()
        # The connection the restart closed is noticed, and the next call
        # connects again.
        call_again_until_connected(c)
        assert c.call("demo.echo", "again", level="Critical") == "again"


def test_tls_problems_are_clear(server: Server) -> None:
    other = dataclasses.replace(server.credentials, server_name="not-the-server")
    refused = pytest.raises(mcp.TlsError)
    with Client.from_credentials(other, reconnect_attempts=1) as c, refused as e:
        c.call("sys.ping")
    assert "not trusted" in str(e.value), e.value
