"""API-key check as ASGI middleware: every path but health, readiness and metrics needs the key."""

from __future__ import annotations

import hmac
import json

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")


class ApiKeyMiddleware:
    def __init__(self, app, api_key: str | None) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or self.expected is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send 'Authorization: Bearer <key>'" if not given else "wrong API key"
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
