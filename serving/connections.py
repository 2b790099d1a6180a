"""Connection limits the HTTP server lacks: a deadline for the request head, and a cap per worker.

uvicorn (under BentoML) starts no timer until a first response is sent, so a client that connects
and sends its headers slowly, or nothing at all, holds a connection forever: 2,000 such sockets
stayed open. This protocol closes a connection whose request head is not complete within
``header_timeout`` of connecting (or of starting a request on a kept-alive connection), closes idle
kept-alive connections after ``keepalive_timeout``, and past ``max_connections`` closes the
connection that has waited longest for its head, so that ordinary requests keep being served.
It is installed as uvicorn's "auto" HTTP protocol, which BentoML's workers use.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    keepalive_timeout = 5.0
    max_connections = 1000

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.keepalive_timeout
        self.head_deadline = None
        self.waiting_since = 0.0

    def connection_made(self, transport) -> None:  # noqa: ANN001
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_deadline is None:
            self._await_head()

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self.waiting_since = self.loop.time()
        self.head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        waiting = [c for c in self.connections if isinstance(c, GuardedHttpProtocol) and c.head_deadline is not None
                   and c is not self]
        if waiting:
            oldest = min(waiting, key=lambda c: c.waiting_since)
            oldest._head_arrived()
            oldest.transport.close()


def install(header_timeout: float, keepalive_timeout: float, max_connections: int) -> None:
    """Make the guarded protocol the one uvicorn picks for ``http="auto"`` in this process."""
    from uvicorn import config

    GuardedHttpProtocol.header_timeout = header_timeout
    GuardedHttpProtocol.keepalive_timeout = keepalive_timeout
    GuardedHttpProtocol.max_connections = max_connections
    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedHttpProtocol"
