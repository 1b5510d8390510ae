"""The protocol's errors (docs/protocol.md section 7) as exceptions.

Every Error reply a peer sends arrives as a subclass of :class:`McpError`,
one per protocol code, with ``.code`` (the code's string) and ``.retryable``.
Faults of this side (a TLS handshake refused, a connection lost, no reply in
time) are :class:`TransportError` and its subclasses.
"""

from __future__ import annotations

from typing import Optional


class McpError(Exception):
    """An Error reply: ``code`` is the protocol's code string."""

    code: str = "internal_error"
    category: str = "system"
    retryable: bool = False

    def __init__(self, message: str, correlation_id: Optional[str] = None) -> None:
        super().__init__(f"{self.code}: {message}")
        self.message = message
        self.correlation_id = correlation_id


class InvalidFormat(McpError):
    """The message is not well-formed."""

    code, category = "invalid_format", "protocol"


class ValidationFailed(McpError):
    """The message breaks an envelope rule."""

    code, category = "validation_failed", "protocol"


class MessageTooLarge(McpError):
    """The message exceeds the size limit."""

    code, category = "message_too_large", "protocol"


class UnsupportedVersion(McpError):
    """The protocol version is not supported."""

    code, category = "unsupported_version", "protocol"


class HandlerNotFound(McpError):
    """No handler for the command."""

    code, category = "handler_not_found", "protocol"


class StateError(McpError):
    """The message does not fit the current state."""

    code, category = "state_error", "protocol"


class AuthenticationFailed(McpError):
    """Authentication failed."""

    code, category = "authentication_failed", "security"


class TokenExpired(McpError):
    """The token has expired."""

    code, category = "token_expired", "security"


class AccessDenied(McpError):
    """Access denied."""

    code, category = "access_denied", "security"


class SignatureInvalid(McpError):
    """The signature is invalid."""

    code, category = "signature_invalid", "security"


class EncryptionFailed(McpError):
    """The payload could not be decrypted."""

    code, category = "encryption_failed", "security"


class ReplayDetected(McpError):
    """The message was already received."""

    code, category = "replay_detected", "security"


class ResourceExhausted(McpError):
    """A capacity limit was reached (a rate limit among them); retryable."""

    code, category, retryable = "resource_exhausted", "system", True


class Timeout(McpError):
    """The handler did not answer in time; retryable."""

    code, category, retryable = "timeout", "system", True


class Unavailable(McpError):
    """The service is unavailable; retryable."""

    code, category, retryable = "unavailable", "system", True


class ConfigurationError(McpError):
    """The configuration is invalid."""

    code, category = "configuration_error", "system"


class NetworkError(McpError):
    """A network error occurred; retryable."""

    code, category, retryable = "network_error", "system", True


class InternalError(McpError):
    """An internal error occurred."""

    code, category = "internal_error", "system"


ERRORS: dict[str, type[McpError]] = {
    cls.code: cls
    for cls in (
        InvalidFormat,
        ValidationFailed,
        MessageTooLarge,
        UnsupportedVersion,
        HandlerNotFound,
        StateError,
        AuthenticationFailed,
        TokenExpired,
        AccessDenied,
        SignatureInvalid,
        EncryptionFailed,
        ReplayDetected,
        ResourceExhausted,
        Timeout,
        Unavailable,
        ConfigurationError,
        NetworkError,
        InternalError,
    )
}


def error_for(code: str, message: str, correlation_id: Optional[str] = None) -> McpError:
    """The exception of ``code`` (an unknown code: :class:`InternalError`)."""
    return ERRORS.get(code, InternalError)(message, correlation_id)


class TransportError(Exception):
    """A fault of this side or the connection, not an Error reply."""


class ConnectionLost(TransportError):
    """The connection closed with calls in flight; they may be retried."""


class TlsError(TransportError):
    """TLS failed: the certificate, the CA, TLS 1.3 or ALPN ``mcp/1``."""


class ReplyInvalid(TransportError):
    """A reply this client cannot trust: a bad signature, a failed
    decryption, or less protection than the request's level requires."""
