"""Request limits as ASGI middleware: body size, requests per connection, and the time to answer.

The declared Content-Length is checked first; a body sent without one (chunked) is counted as it
arrives, so a client cannot get around the limit by leaving the header out.
"""

from __future__ import annotations

import asyncio
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


class DeadlineMiddleware:
    """A 504 when a request has not started its answer within ``timeout`` seconds (BentoML's ``traffic.timeout``).

    BentoML's own ``TimeoutMiddleware`` never cancels its timer: every request's timer, with its
    future and the request's context (OpenTelemetry span included), stays scheduled for the full
    timeout after the answer. After a 10-second burst of 16 clients a worker's oldest generation held
    73,000-100,000 objects, 3,500-4,600 requests' timers, futures, contexts and spans among them, and
    the cycle collector walked them on each full collection: pauses of up to 80 ms landing on whatever
    request ran then (a 1,000-lead batch after the burst). This one cancels its timer once the answer
    starts, and a request that fails before answering fails at once, not at the deadline.
    """

    def __init__(self, app, timeout: float) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started = loop.create_future()
        timer = loop.call_later(self.timeout, _expire, started)

        async def answering(message: dict) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, answering))
        task.add_done_callback(lambda _: started.done() or started.set_result(None))
        try:
            await started
        except asyncio.TimeoutError:
            if task.cancel():
                body = json.dumps({"error": f"not able to process the request in {self.timeout:g} seconds"})
                await send({"type": "http.response.start", "status": 504,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body.encode()})
            return
        finally:
            timer.cancel()
        await task


def _expire(started: asyncio.Future) -> None:
    if not started.done():
        started.set_exception(asyncio.TimeoutError())


def install_deadline() -> None:
    """Make BentoML build its applications with :class:`DeadlineMiddleware` for ``traffic.timeout``
    (BentoML has no setting for it; its middleware class is looked up when the application is built)."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = DeadlineMiddleware
