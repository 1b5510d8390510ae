"""The asyncio client: the same calls as :class:`~mcp_engine_client.Client`,
as coroutines, on one connection with many calls in flight."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from pathlib import Path
from typing import Any, Optional, Union

from . import core
from .credentials import Credentials
from .envelope import NamedKey, Sealer
from .errors import ConnectionLost, McpError, TlsError, TransportError
from .errors import Timeout as TimeoutError_


class AsyncClient:
    """A client of one mcp-engine server, for asyncio.

    >>> async with AsyncClient.from_credentials("credentials.json") as client:  # doctest: +SKIP
    ...     await client.call("demo.echo", {"hi": 1}, level="Critical")
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: Optional[str] = None,
        signing: Optional[NamedKey] = None,
        encryption: Optional[NamedKey] = None,
        ca_cert: Union[str, Path, None] = None,
        server_name: Optional[str] = None,
        tls: bool = True,
        level: str = "Standard",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_attempts: int = 5,
        renew_before: float = 60.0,
        replay_stream: bool = True,
    ) -> None:
        self.settings = core.Settings(
            host=host,
            port=port,
            token=token,
            signing=signing,
            encryption=encryption,
            tls=tls,
            ca_cert=Path(ca_cert) if ca_cert is not None else None,
            server_name=server_name,
            level=level,
            timeout=timeout,
            connect_timeout=connect_timeout,
            reconnect_attempts=reconnect_attempts,
            renew_before=renew_before,
            replay_stream=replay_stream,
        )
        self._sealer = Sealer(token, signing, encryption, replay_stream)
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reader_task: Optional[asyncio.Task[None]] = None
        self._pending: dict[str, tuple[asyncio.Future[Any], str, bool]] = {}
        # Raw requests whose Error may name no message (a body that is not
        # well-formed), answered in order.
        self._uncorrelated: deque[tuple[asyncio.Future[Any], str, bool]] = deque()
        self.unmatched = 0
        self._connect_lock: Optional[asyncio.Lock] = None
        self._renew_lock: Optional[asyncio.Lock] = None
        self._closed = False

    @classmethod
    def from_credentials(
        cls, credentials: Union[str, Path, Credentials], role: str = "admin", **options: Any
    ) -> AsyncClient:
        """A client from a ``credentials.json``, with the token of ``role``."""
        if not isinstance(credentials, Credentials):
            credentials = Credentials.load(credentials)
        return cls(
            credentials.host, credentials.port, **credentials.client_options(role), **options
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def token(self) -> Optional[str]:
        """The token requests carry now."""
        return self._sealer.token

    async def close(self) -> None:
        """Closes the connection; calls in flight raise ConnectionLost."""
        self._closed = True
        await self._drop(ConnectionLost("the client was closed"))

    async def _drop(self, error: TransportError) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        self._fail_pending(error)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _fail_pending(self, error: TransportError) -> None:
        pending, self._pending = self._pending, {}
        waiting = list(pending.values()) + list(self._uncorrelated)
        self._uncorrelated.clear()
        for future, _, _ in waiting:
            if not future.done():
                future.set_exception(error)

    async def _open(self) -> None:
        s = self.settings
        context: Optional[ssl.SSLContext] = core.tls_context(s) if s.tls else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    s.host,
                    s.port,
                    ssl=context,
                    server_hostname=(s.server_name or s.host) if context else None,
                ),
                s.connect_timeout,
            )
        except ssl.SSLError as e:
            raise core.tls_error(e, s) from e
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectionLost(f"cannot connect to {s.host}:{s.port}: {e}") from e
        if context is not None:
            tls = writer.get_extra_info("ssl_object")
            try:
                core.check_alpn(tls)
            except TlsError:
                writer.close()
                raise
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _connected(self) -> asyncio.StreamWriter:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._closed:
                raise ConnectionLost("the client is closed")
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            delay = self.settings.reconnect_backoff
            for attempt in range(self.settings.reconnect_attempts):
                try:
                    await self._open()
                    assert self._writer is not None
                    return self._writer
                except TlsError:
                    raise
                except ConnectionLost:
                    if attempt + 1 == self.settings.reconnect_attempts:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            raise ConnectionLost("cannot connect")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(5)
                length = core.frame_length(header[:4])
                body = await reader.readexactly(length)
                correlation = core.correlation_of(body)
                entry = self._pending.pop(correlation, None) if correlation else None
                if entry is None and correlation is None and self._uncorrelated:
                    entry = self._uncorrelated.popleft()
                if entry is None:
                    self.unmatched += 1
                    continue
                future, level, raw = entry
                if future.done():
                    continue
                try:
                    if raw:
                        future.set_result(core.opened_envelope(body, self.settings, level))
                    else:
                        future.set_result(core.settle(body, self.settings, level))
                except (McpError, TransportError) as e:
                    future.set_exception(e)
        except (asyncio.IncompleteReadError, OSError, TransportError) as e:
            error = e if isinstance(e, TransportError) else ConnectionLost(f"connection lost: {e}")
            self._fail_pending(error)
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    async def _send(
        self,
        kind: str,
        payload: Any,
        level: str,
        metadata: Optional[dict[str, Any]],
        reply: bool,
        raw: bool = False,
    ) -> Optional[asyncio.Future[Any]]:
        message_id, body = self._sealer.seal(kind, payload, level, metadata)
        return await self._write(message_id, body, level, reply, raw)

    async def _write(
        self, message_id: Optional[str], body: bytes, level: str, reply: bool, raw: bool
    ) -> Optional[asyncio.Future[Any]]:
        writer = await self._connected()
        future: Optional[asyncio.Future[Any]] = None
        if reply:
            future = asyncio.get_running_loop().create_future()
            if message_id is None:
                self._uncorrelated.append((future, level, raw))
            else:
                self._pending[message_id] = (future, level, raw)
        try:
            writer.write(core.frame(body))
            await writer.drain()
        except OSError as e:
            if message_id is not None:
                self._pending.pop(message_id, None)
            raise ConnectionLost(f"sending failed: {e}") from e
        return future

    async def _renew_if_due(self) -> None:
        if not core.needs_renewal(self._sealer.token, self.settings.renew_before):
            return
        if self._renew_lock is None:
            self._renew_lock = asyncio.Lock()
        async with self._renew_lock:
            if core.needs_renewal(self._sealer.token, self.settings.renew_before):
                await self.renew()

    async def renew(self) -> str:
        """Trades the token for a fresh one (``auth.renew``) and uses it."""
        result = await self._wait(
            await self._send("Command", {"command": "auth.renew"}, "Standard", None, True),
            self.settings.timeout,
            "auth.renew",
        )
        token = str(result["token"])
        self._sealer.token = token
        self.settings.token = token
        return token

    @staticmethod
    async def _wait(future: Optional[asyncio.Future[Any]], wait: float, what: str) -> Any:
        assert future is not None
        try:
            return await asyncio.wait_for(future, wait)
        except asyncio.TimeoutError:
            raise TimeoutError_(f"no reply to {what} within {wait} s") from None

    async def request(
        self,
        command: str,
        args: Any = None,
        *,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
        resource: Optional[str] = None,
    ) -> dict[str, Any]:
        """Runs ``command`` and returns the whole reply envelope, its
        signature checked and its payload decrypted: a Response or an Error
        alike."""
        envelope: dict[str, Any] = await self._command(
            command, args, level, timeout, resource, raw=True
        )
        return envelope

    async def send_raw(self, body: bytes, timeout: Optional[float] = None) -> Any:
        """Sends ``body`` as a JSON frame as it is (for tests and tools that
        make their own envelopes) and returns the reply's result or raises
        its Error; matched by the body's ``id`` when it can be read, else by
        order among such requests."""
        try:
            message_id = core.loads_id(body)
        except ValueError:
            message_id = None
        future = await self._write(message_id, body, "Standard", True, False)
        wait = self.settings.timeout if timeout is None else timeout
        return await self._wait(future, wait, "a raw request")

    async def call(
        self,
        command: str,
        args: Any = None,
        *,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
        resource: Optional[str] = None,
    ) -> Any:
        """Runs ``command`` and returns its result; raises its Error's
        exception, or ``Timeout``."""
        return await self._command(command, args, level, timeout, resource, raw=False)

    async def _command(
        self,
        command: str,
        args: Any,
        level: Optional[str],
        timeout: Optional[float],
        resource: Optional[str],
        raw: bool,
    ) -> Any:
        await self._renew_if_due()
        future = await self._send(
            "Command",
            _command(command, args, resource),
            level or self.settings.level,
            None,
            True,
            raw=raw,
        )
        wait = self.settings.timeout if timeout is None else timeout
        return await self._wait(future, wait, command)

    async def publish(
        self,
        event: str,
        data: Any = None,
        *,
        ack: bool = False,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Optional[int]:
        """Publishes ``event``; with ``ack``, returns how many subscribers
        got it."""
        await self._renew_if_due()
        metadata = {"ack": True} if ack else None
        future = await self._send(
            "Event", {"event": event, "data": data}, level or self.settings.level, metadata, ack
        )
        if not ack:
            return None
        wait = self.settings.timeout if timeout is None else timeout
        result = await self._wait(future, wait, event)
        return int(result["delivered"])


def _command(command: str, args: Any, resource: Optional[str]) -> dict[str, Any]:
    """A Command's payload (docs/protocol.md section 7)."""
    payload: dict[str, Any] = {"command": command}
    if args is not None:
        payload["args"] = args
    if resource is not None:
        payload["resource"] = resource
    return payload
