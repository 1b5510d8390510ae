"""A Python client for mcp-engine.

```python
from mcp_engine_client import Client

with Client.from_credentials("credentials.json") as client:
    print(client.call("demo.echo", {"hi": 1}, level="Critical"))
```

Every Error reply arrives as a subclass of :class:`McpError` (one per
protocol code, with ``.code`` and ``.retryable``); transport faults as
:class:`TransportError`.
"""

from .aio import AsyncClient
from .client import Client
from .credentials import Credentials
from .envelope import NamedKey
from .errors import (
    ERRORS,
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    ConnectionLost,
    EncryptionFailed,
    HandlerNotFound,
    InternalError,
    InvalidFormat,
    McpError,
    MessageTooLarge,
    NetworkError,
    ReplayDetected,
    ReplyInvalid,
    ResourceExhausted,
    SignatureInvalid,
    StateError,
    Timeout,
    TlsError,
    TokenExpired,
    TransportError,
    Unavailable,
    UnsupportedVersion,
    ValidationFailed,
)

__version__ = "0.1.0"

__all__ = [
    "ERRORS",
    "AccessDenied",
    "AsyncClient",
    "AuthenticationFailed",
    "Client",
    "ConfigurationError",
    "ConnectionLost",
    "Credentials",
    "EncryptionFailed",
    "HandlerNotFound",
    "InternalError",
    "InvalidFormat",
    "McpError",
    "MessageTooLarge",
    "NamedKey",
    "NetworkError",
    "ReplayDetected",
    "ReplyInvalid",
    "ResourceExhausted",
    "SignatureInvalid",
    "StateError",
    "Timeout",
    "TlsError",
    "TokenExpired",
    "TransportError",
    "Unavailable",
    "UnsupportedVersion",
    "ValidationFailed",
]
