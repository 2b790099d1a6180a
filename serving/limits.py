"""Request-size limit as ASGI middleware: oversized bodies get 413 before any parsing.

The declared Content-Length is checked first; a body sent without one (chunked) is counted as it
arrives, so a client cannot get around the limit by leaving the header out.
"""

from __future__ import annotations

import json


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send, size)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send, size: int) -> None:  # noqa: ANN001
        text = f"request body too large: {size:,} bytes or more; the limit is {self.max_bytes:,} bytes"
        body = json.dumps({"error": text}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class KeepAliveLimitMiddleware:
    """Close a keep-alive connection after ``max_requests`` requests (like nginx's ``keepalive_requests``).

    BentoML's workers share one listening socket, and the first worker to wake takes every
    connection that is waiting: 16 clients that connect at once often all land on one worker and
    stay there, leaving the other core idle (measured: half the runs at 180-330 requests a second
    with one worker at 0% CPU, the other half at 490-590). Asking clients to reconnect now and then
    lets the idle worker pick connections up, at the cost of one local handshake per ``max_requests``.
    """

    def __init__(self, app, max_requests: int) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.max_requests = max_requests
        self.served: dict[tuple, int] = {}  # requests so far per client (host, port): one connection

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        client = scope.get("client")
        if scope["type"] != "http" or not client:
            await self.app(scope, receive, send)
            return
        key = tuple(client)
        count = self.served.get(key, 0) + 1
        if count < self.max_requests:
            if len(self.served) > 10_000:  # entries of connections the clients closed themselves
                self.served.clear()
            self.served[key] = count
            await self.app(scope, receive, send)
            return
        self.served.pop(key, None)

        async def closing(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
