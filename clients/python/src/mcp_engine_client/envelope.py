"""Building, sealing and opening envelopes (docs/protocol.md sections 3
to 7a): the auth token, the replay stream, AES-256-GCM payload encryption
and the HMAC-SHA256 signature over the RFC 8785 canonical form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ReplyInvalid

LEVELS = ("Low", "Standard", "High", "Critical")
MAX_SAFE_INTEGER = 2**53 - 1


def b64u_encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Base64url without padding; anything else is refused."""
    if "=" in text or any(c not in _B64U for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64U = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _parse_int(text: str) -> Any:
    # Integers beyond 2^53 are their nearest double, as the engine and
    # every JavaScript peer read them (RFC 8785).
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(value)


def as_json_numbers(value: Any) -> Any:
    """``value`` with integers beyond 2^53 as their nearest double, as the
    engine (and RFC 8785) reads them: what is signed is what is read."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else float(value)
    if isinstance(value, dict):
        return {key: as_json_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json_numbers(item) for item in value]
    return value


def loads(text: str | bytes) -> Any:
    """JSON as the engine reads it."""
    return json.loads(text, parse_int=_parse_int)


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) of ``value``."""
    return rfc8785.dumps(value)


def timestamp_now() -> str:
    """Now, as RFC 3339 UTC with milliseconds (``2026-11-23T12:00:00.123Z``)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class NamedKey:
    """A key with the id the peer knows it by."""

    kid: str
    key: bytes


class Sealer:
    """Makes a sender's messages: ids, timestamps, its replay stream, its
    token, encryption and signature. Thread-safe."""

    def __init__(
        self,
        token: Optional[str],
        signing: Optional[NamedKey],
        encryption: Optional[NamedKey],
        replay_stream: bool = True,
    ) -> None:
        self.token = token
        self.signing = signing
        self.encryption = encryption
        self._lock = threading.Lock()
        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._stream = b64u_encode(secrets.token_bytes(16)) if replay_stream else None

    def _next(self) -> tuple[str, int]:
        with self._lock:
            self._count += 1
            return f"py-{self._prefix}-{self._count}", self._count

    def seal(
        self,
        kind: str,
        payload: Any,
        level: str,
        metadata: Optional[dict[str, Any]] = None,
    ) -> tuple[str, bytes]:
        """A message of ``kind`` with ``payload`` at ``level``: its id and
        its JSON body."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")
        message_id, seq = self._next()
        payload = as_json_numbers(payload)
        meta = as_json_numbers(dict(metadata or {}))
        if self._stream is not None:
            meta["replay"] = {"stream": self._stream, "seq": seq}
        timestamp = timestamp_now()
        security: dict[str, Any] = {
            "security_level": level,
            "encryption_info": None,
            "auth_token": self.token if level != "Low" else None,
        }
        body_payload: Any = payload
        if level == "Critical":
            if self.encryption is None:
                raise ValueError("Critical needs an encryption key")
            nonce = os.urandom(12)
            aad = f"{message_id}\n{kind}\n{timestamp}".encode()
            sealed = AESGCM(self.encryption.key).encrypt(nonce, dumps(payload).encode(), aad)
            body_payload = b64u_encode(sealed)
            security["encryption_info"] = {
                "algorithm": "AES-256-GCM",
                "key_id": self.encryption.kid,
                "nonce": b64u_encode(nonce),
            }
        envelope: dict[str, Any] = {
            "version": "1.1" if self._stream is not None else "1.0",
            "id": message_id,
            "type": kind,
            "payload": body_payload,
            "security": security,
            "timestamp": timestamp,
        }
        if meta:
            envelope["metadata"] = meta
        if level in ("High", "Critical"):
            if self.signing is None:
                raise ValueError(f"{level} needs a signing key")
            mac = hmac.new(self.signing.key, canonical(envelope), hashlib.sha256).digest()
            security["signature"] = f"{self.signing.kid}:{b64u_encode(mac)}"
        return message_id, dumps(envelope).encode()


@dataclass
class Opened:
    """A reply, its signature checked and its payload decrypted."""

    envelope: dict[str, Any]
    payload: Any

    @property
    def kind(self) -> str:
        return str(self.envelope.get("type"))

    @property
    def level(self) -> str:
        return str(self.envelope.get("security", {}).get("security_level"))


def open_reply(
    body: bytes,
    signing: Optional[NamedKey],
    encryption: Optional[NamedKey],
    request_level: Optional[str] = None,
) -> Opened:
    """Checks a reply's signature (if signed) and decrypts its payload (if
    encrypted). A Response to a request of ``request_level`` must carry
    that level's protection: signed at High and Critical, encrypted at
    Critical (an Error is plaintext and unsigned by the protocol)."""
    try:
        envelope = loads(body)
    except ValueError as e:
        raise ReplyInvalid(f"the reply is not JSON: {e}") from e
    if not isinstance(envelope, dict):
        raise ReplyInvalid("the reply is not a JSON object")
    security = envelope.get("security") or {}
    signature = security.get("signature")
    if signature is not None:
        _check_signature(envelope, str(signature), signing)
    payload = envelope.get("payload")
    info = security.get("encryption_info")
    if info is not None:
        payload = _decrypt(envelope, info, encryption)
    if envelope.get("type") == "Response" and request_level in ("High", "Critical"):
        if signature is None:
            raise ReplyInvalid(f"a Response to a {request_level} request must be signed")
        if request_level == "Critical" and info is None:
            raise ReplyInvalid("a Response to a Critical request must be encrypted")
    return Opened(envelope, payload)


def _check_signature(envelope: dict[str, Any], signature: str, key: Optional[NamedKey]) -> None:
    kid, _, mac_text = signature.partition(":")
    if key is None or kid != key.kid:
        raise ReplyInvalid(f"the reply is signed with an unknown key {kid!r}")
    unsigned = dict(envelope)
    unsigned["security"] = {k: v for k, v in envelope["security"].items() if k != "signature"}
    expected = hmac.new(key.key, canonical(unsigned), hashlib.sha256).digest()
    try:
        mac = b64u_decode(mac_text)
    except ValueError as e:
        raise ReplyInvalid("the reply's signature is not base64url") from e
    if not hmac.compare_digest(mac, expected):
        raise ReplyInvalid("the reply's signature does not match")


def _decrypt(envelope: dict[str, Any], info: Any, key: Optional[NamedKey]) -> Any:
    if not isinstance(info, dict) or info.get("algorithm") != "AES-256-GCM":
        raise ReplyInvalid("the reply is encrypted with an unknown algorithm")
    if key is None or info.get("key_id") != key.kid:
        raise ReplyInvalid(f"the reply is encrypted under an unknown key {info.get('key_id')!r}")
    aad = f"{envelope.get('id')}\n{envelope.get('type')}\n{envelope.get('timestamp')}".encode()
    try:
        plain = AESGCM(key.key).decrypt(
            b64u_decode(str(info.get("nonce"))), b64u_decode(str(envelope.get("payload"))), aad
        )
    except (InvalidTag, ValueError) as e:
        raise ReplyInvalid("the reply's payload does not decrypt") from e
    return loads(plain)
