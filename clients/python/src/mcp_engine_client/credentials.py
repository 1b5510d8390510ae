"""``credentials.json``, as ``mcp-engine serve`` (dev mode) and
``mcp-engine dev-config`` write it: where the server is, how to trust it,
the keys, and a token per role."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .envelope import NamedKey, b64u_decode


@dataclass
class Credentials:
    """What a client needs to reach and speak to one server."""

    addr: str
    tls: bool = True
    ca_cert: Optional[Path] = None
    server_name: Optional[str] = None
    jwt: Optional[NamedKey] = None
    signing: Optional[NamedKey] = None
    encryption: Optional[NamedKey] = None
    tokens: dict[str, str] = field(default_factory=dict)
    admin: Optional[str] = None

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    @classmethod
    def load(cls, path: Union[str, Path]) -> Credentials:
        """Reads ``path``; a relative ``ca_cert`` is taken from its folder."""
        path = Path(path)
        return cls.parse(path.read_text(encoding="utf-8"), base=path.parent)

    @classmethod
    def parse(cls, text: str, base: Optional[Path] = None) -> Credentials:
        """Reads the JSON ``text``."""
        data: dict[str, Any] = json.loads(text)
        ca = data.get("ca_cert")
        ca_path = None
        if ca is not None:
            ca_path = Path(ca)
            if not ca_path.is_absolute() and base is not None:
                ca_path = base / ca_path
        return cls(
            addr=str(data["addr"]),
            tls=bool(data.get("tls", True)),
            ca_cert=ca_path,
            server_name=data.get("server_name"),
            jwt=_key(data.get("jwt")),
            signing=_key(data.get("signing")),
            encryption=_key(data.get("encryption")),
            tokens=dict(data.get("tokens") or {}),
            admin=data.get("admin"),
        )

    def client_options(self, role: str) -> dict[str, Any]:
        """What a client needs of these credentials, speaking with the token
        of ``role`` (the keyword arguments of ``Client`` and
        ``AsyncClient``, after the host and port)."""
        return {
            "token": self.token(role),
            "signing": self.signing,
            "encryption": self.encryption,
            "ca_cert": self.ca_cert,
            "server_name": self.server_name,
            "tls": self.tls,
        }

    def token(self, role: str) -> str:
        """The token of ``role``; ``KeyError`` names the roles there are."""
        try:
            return self.tokens[role]
        except KeyError:
            roles = sorted(self.tokens)
            raise KeyError(f"no token for role {role!r} (there are: {roles})") from None


def _key(entry: Any) -> Optional[NamedKey]:
    if not entry:
        return None
    return NamedKey(kid=str(entry["kid"]), key=b64u_decode(str(entry["key"])))
