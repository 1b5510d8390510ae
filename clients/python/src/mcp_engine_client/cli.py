"""``mcp-py call COMMAND [ARGS_JSON]``: one command, its reply printed as
one line of JSON (payload decrypted), with ``mcp-engine send``'s flags and
exit codes: 0 on a Response, 1 on an Error, 2 when it cannot send or gets
no reply (unreachable server, TLS failure, timeout, bad flags)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from .client import Client
from .credentials import Credentials
from .envelope import LEVELS, NamedKey, b64u_decode, dumps
from .errors import McpError, TransportError


def _named_key(text: str) -> NamedKey:
    kid, sep, path = text.partition("=")
    if not sep or not kid or not path:
        raise argparse.ArgumentTypeError("expected KID=FILE")
    try:
        return NamedKey(kid, b64u_decode(Path(path).read_text(encoding="utf-8").strip()))
    except (OSError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{path}: {e}") from e


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="mcp-py", description=__doc__)
    commands = top.add_subparsers(dest="subcommand", required=True)
    call = commands.add_parser("call", help="send one command and print the reply")
    call.add_argument("command")
    call.add_argument("args", nargs="?", help="the command's args, as JSON")
    call.add_argument("--credentials", type=Path, help="credentials.json")
    call.add_argument("--level", choices=LEVELS, default="Standard")
    call.add_argument("--role", default="admin", help="whose token to send (default admin)")
    call.add_argument("--timeout-ms", type=int, default=10_000)
    call.add_argument("--addr", help="HOST:PORT (overrides the credentials)")
    call.add_argument("--plain", action="store_true", help="TCP without TLS")
    call.add_argument("--ca-cert", type=Path)
    call.add_argument("--server-name")
    call.add_argument("--token")
    call.add_argument("--signing-key", type=_named_key, metavar="KID=FILE")
    call.add_argument("--encryption-key", type=_named_key, metavar="KID=FILE")
    call.add_argument(
        "--binary",
        action="store_true",
        help="not supported: the Python client speaks the JSON codec only",
    )
    return top


def _client(options: argparse.Namespace) -> Client:
    credentials = Credentials.load(options.credentials) if options.credentials else None
    addr = options.addr or (credentials.addr if credentials else None)
    if addr is None:
        raise TransportError("no server: give --credentials or --addr")
    host, _, port = addr.rpartition(":")
    token = options.token or (
        credentials.tokens.get(options.role) if credentials is not None else None
    )
    return Client(
        host.strip("[]"),
        int(port),
        token=token,
        signing=options.signing_key or (credentials.signing if credentials else None),
        encryption=options.encryption_key or (credentials.encryption if credentials else None),
        ca_cert=options.ca_cert or (credentials.ca_cert if credentials else None),
        server_name=options.server_name or (credentials.server_name if credentials else None),
        tls=not options.plain and (credentials.tls if credentials else True),
        timeout=options.timeout_ms / 1000,
        reconnect_attempts=1,
        renew_before=0,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code."""
    options = parser().parse_args(argv)
    if options.binary:
        print("mcp-py: --binary: the Python client speaks the JSON codec only", file=sys.stderr)
        return 2
    try:
        args = json.loads(options.args) if options.args is not None else None
    except ValueError as e:
        print(f"mcp-py: ARGS_JSON is not JSON: {e}", file=sys.stderr)
        return 2
    try:
        with _client(options) as client:
            reply = client.request(options.command, args, level=options.level)
    except (TransportError, McpError, OSError, ValueError, KeyError) as e:
        print(f"mcp-py: {e}", file=sys.stderr)
        return 2
    print(dumps(reply))
    return 0 if reply.get("type") == "Response" else 1


if __name__ == "__main__":
    sys.exit(main())
