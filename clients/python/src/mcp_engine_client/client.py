"""The synchronous client: the asyncio client run on an event loop thread
of its own, so that one TLS connection carries many calls at once (matched
by correlation id) and is read and written by one thread only (OpenSSL
does not allow a read and a write of one connection on two threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

from .aio import AsyncClient
from .credentials import Credentials
from .errors import ConnectionLost
from .errors import Timeout as TimeoutError_

T = TypeVar("T")


class Client:
    """A client of one mcp-engine server.

    ```python
    with Client.from_credentials("credentials.json") as client:
        client.call("demo.echo", {"hi": 1}, level="Critical")
    ```

    Takes the options of :class:`~mcp_engine_client.AsyncClient`: ``token``,
    ``signing``, ``encryption``, ``ca_cert``, ``server_name``, ``tls``,
    ``level`` (default ``Standard``), ``timeout`` (10 s), ``connect_timeout``,
    ``reconnect_attempts`` (5, with backoff), ``renew_before`` (renew the
    token through ``auth.renew`` when less than this many seconds are left,
    60), ``replay_stream`` (True: version 1.1 replay streams).
    """

    def __init__(self, host: str, port: int, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mcp-client-loop", daemon=True
        )
        self._thread.start()
        self._async = AsyncClient(host, port, **options)
        self._closed = False

    @classmethod
    def from_credentials(
        cls, credentials: Union[str, Path, Credentials], role: str = "admin", **options: Any
    ) -> Client:
        """A client from a ``credentials.json`` (a path or a loaded one),
        speaking with the token of ``role``."""
        if not isinstance(credentials, Credentials):
            credentials = Credentials.load(credentials)
        return cls(
            credentials.host, credentials.port, **credentials.client_options(role), **options
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def settings(self) -> Any:
        """The settings the client runs with."""
        return self._async.settings

    @property
    def token(self) -> Optional[str]:
        """The token requests carry now (renewed before it expires)."""
        return self._async.token

    @property
    def unmatched(self) -> int:
        """Replies that answered no request in flight (counted, dropped)."""
        return self._async.unmatched

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coroutine.close()
            raise ConnectionLost("the client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _wait(self, future: Future[T], what: str) -> T:
        # The coroutine keeps its own deadline; this one is a backstop.
        try:
            return future.result(self._async.settings.timeout + 30)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError_(f"no reply to {what}") from None

    def close(self) -> None:
        """Closes the connection and the loop; calls in flight raise
        ConnectionLost."""
        if self._closed:
            return
        asyncio.run_coroutine_threadsafe(self._async.close(), self._loop).result(10)
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def connect(self) -> None:
        """Connects now (calls connect when they need to)."""
        self._wait(self._run(self._async._connected()), "connect")

    def submit(
        self,
        command: str,
        args: Any = None,
        *,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
        resource: Optional[str] = None,
    ) -> Future[Any]:
        """Sends a command without waiting: a Future of its result (or of
        its Error). Many may be in flight on the connection at once."""
        return self._run(
            self._async.call(command, args, level=level, timeout=timeout, resource=resource)
        )

    def call(
        self,
        command: str,
        args: Any = None,
        *,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
        resource: Optional[str] = None,
    ) -> Any:
        """Runs ``command`` with ``args`` and returns its result; raises the
        Error's exception (an :class:`McpError`), or ``Timeout`` if no reply
        comes within ``timeout`` seconds."""
        future = self.submit(command, args, level=level, timeout=timeout, resource=resource)
        return self._wait(future, command)

    def request(
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
        alike (what ``mcp-py call`` prints)."""
        coroutine = self._async.request(
            command, args, level=level, timeout=timeout, resource=resource
        )
        return self._wait(self._run(coroutine), command)

    def send_raw(self, body: bytes, timeout: Optional[float] = None) -> Future[Any]:
        """Sends ``body`` as a JSON frame as it is: a Future of the reply's
        result or Error (see :meth:`AsyncClient.send_raw`)."""
        return self._run(self._async.send_raw(body, timeout))

    def publish(
        self,
        event: str,
        data: Any = None,
        *,
        ack: bool = False,
        level: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Optional[int]:
        """Publishes ``event``; with ``ack``, waits for the engine's answer
        and returns how many subscribers got it."""
        coroutine = self._async.publish(event, data, ack=ack, level=level, timeout=timeout)
        return self._wait(self._run(coroutine), event)

    def renew(self) -> str:
        """Trades the token for a fresh one (``auth.renew``) and uses it."""
        return self._wait(self._run(self._async.renew()), "auth.renew")
