"""What the sync and the async client share: settings, TLS, frames, the
token's lifetime, and turning a reply into a result or an exception."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .envelope import LEVELS, NamedKey, Opened, b64u_decode, open_reply
from .errors import McpError, ReplyInvalid, TlsError, error_for

#: ALPN protocol id of MCP over TLS (docs/protocol.md section 2).
ALPN = "mcp/1"
#: Codec byte of a JSON body.
CODEC_JSON = 0x4A
#: The largest frame this client reads (the engine's default limit is 1 MiB).
MAX_FRAME = 16 * 1024 * 1024


@dataclass
class Settings:
    """How a client reaches its server and speaks to it."""

    host: str
    port: int
    token: Optional[str] = None
    signing: Optional[NamedKey] = None
    encryption: Optional[NamedKey] = None
    tls: bool = True
    ca_cert: Optional[Path] = None
    server_name: Optional[str] = None
    level: str = "Standard"
    timeout: float = 10.0
    connect_timeout: float = 5.0
    reconnect_attempts: int = 5
    reconnect_backoff: float = 0.1
    renew_before: float = 60.0
    replay_stream: bool = True

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")


def tls_context(settings: Settings) -> ssl.SSLContext:
    """TLS 1.3 only, ALPN ``mcp/1``, trusting ``ca_cert`` (or the system's
    CAs)."""
    context = ssl.create_default_context(
        cafile=str(settings.ca_cert) if settings.ca_cert is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols([ALPN])
    return context


def check_alpn(sock: ssl.SSLSocket | ssl.SSLObject) -> None:
    """Refuses a server that did not agree to ``mcp/1``."""
    chosen = sock.selected_alpn_protocol()
    if chosen != ALPN:
        raise TlsError(f"the server did not agree to ALPN {ALPN!r} (it chose {chosen!r})")


def tls_error(error: Exception, settings: Settings) -> TlsError:
    """A clear error for a failed handshake."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return TlsError(
            f"the server's certificate is not trusted ({error.verify_message}); "
            f"CA file: {settings.ca_cert}, expected name: {settings.server_name or settings.host}"
        )
    return TlsError(f"TLS handshake with {settings.host}:{settings.port} failed: {error}")


def frame(body: bytes) -> bytes:
    """One frame: a 4-byte big-endian length (codec byte included), the
    codec byte, the body."""
    return struct.pack(">IB", len(body) + 1, CODEC_JSON) + body


def frame_length(header: bytes) -> int:
    """The body length a 4-byte header announces (codec byte excluded)."""
    (length,) = struct.unpack(">I", header)
    if length < 1 or length > MAX_FRAME:
        raise ReplyInvalid(f"a frame of {length} bytes")
    return int(length) - 1


def token_expiry(token: Optional[str]) -> Optional[float]:
    """The ``exp`` claim of a JWT, in Unix seconds (read, not verified:
    only to know when to renew)."""
    if not token:
        return None
    try:
        claims = json.loads(b64u_decode(token.split(".")[1]))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (ValueError, IndexError):
        return None


def needs_renewal(token: Optional[str], renew_before: float) -> bool:
    """Whether ``token`` expires within ``renew_before`` seconds."""
    expiry = token_expiry(token)
    return expiry is not None and expiry - time.time() < renew_before


def correlation_of(body: bytes) -> Optional[str]:
    """The correlation id of a reply, read before opening it."""
    try:
        envelope = json.loads(body)
        metadata = envelope.get("metadata") or {}
        correlation = metadata.get("correlation_id")
        return str(correlation) if correlation is not None else None
    except (ValueError, AttributeError):
        return None


def loads_id(body: bytes) -> Optional[str]:
    """The ``id`` of a body, if it is a JSON object with a string one."""
    envelope = json.loads(body)
    message_id = envelope.get("id") if isinstance(envelope, dict) else None
    return message_id if isinstance(message_id, str) else None


def outcome(opened: Opened) -> Any:
    """A Response's result; an Error raised as its exception."""
    payload = opened.payload
    if opened.kind == "Error":
        if not isinstance(payload, dict):
            raise ReplyInvalid("an Error without a payload object")
        correlation = (opened.envelope.get("metadata") or {}).get("correlation_id")
        raise error_for(str(payload.get("code")), str(payload.get("message")), correlation)
    if opened.kind != "Response" or not isinstance(payload, dict) or "result" not in payload:
        raise ReplyInvalid(f"not a Response: {opened.kind}")
    return payload["result"]


def settle(body: bytes, settings: Settings, level: str) -> Any:
    """Opens a reply to a request of ``level`` and returns its result, or
    raises its Error (an :class:`McpError`) or :class:`ReplyInvalid`."""
    opened = open_reply(body, settings.signing, settings.encryption, level)
    return outcome(opened)


def opened_envelope(body: bytes, settings: Settings, level: str) -> dict[str, Any]:
    """A reply to a request of ``level`` as a whole envelope, its signature
    checked and its payload decrypted."""
    opened = open_reply(body, settings.signing, settings.encryption, level)
    envelope = dict(opened.envelope)
    envelope["payload"] = opened.payload
    return envelope


def connect_plain(settings: Settings) -> socket.socket:
    """A TCP connection, with Nagle off (requests are small)."""
    sock = socket.create_connection(
        (settings.host, settings.port), timeout=settings.connect_timeout
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


__all__ = [
    "ALPN",
    "McpError",
    "Settings",
    "check_alpn",
    "connect_plain",
    "correlation_of",
    "frame",
    "frame_length",
    "needs_renewal",
    "settle",
    "tls_context",
    "tls_error",
]
