"""API-key check as ASGI middleware: every path but health, readiness and metrics needs the key.

Each key has a caller name (``PROSPECT_API_KEY_NAME`` for ``PROSPECT_API_KEY``; ``name:key`` pairs
in ``PROSPECT_API_KEYS``); the name of the key a request came with is put in the ASGI scope under
``CALLER``, where the score log reads it. The key itself is never recorded.
"""

from __future__ import annotations

import hmac
import json

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")
CALLER = "prospect.caller"
"""Scope key holding the caller's name (``anonymous`` when the service runs without keys)."""


def parse_keys(api_key: str | None, name: str, more: str | None) -> dict[str, str]:
    """Keys by caller name from the settings; a malformed ``name:key`` pair is refused at start-up."""
    keys = {name: api_key} if api_key else {}
    for pair in filter(None, (p.strip() for p in (more or "").split(","))):
        caller, _, key = pair.partition(":")
        if not caller or not key:
            raise ValueError("PROSPECT_API_KEYS: give 'name:key' pairs separated by commas")
        keys[caller] = key
    return keys


class ApiKeyMiddleware:
    def __init__(self, app, keys: dict[str, str]) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.expected = [(f"Bearer {key}".encode(), caller) for caller, key in keys.items()] or None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or self.expected is None or scope["path"] in OPEN_PATHS:
            scope[CALLER] = "anonymous"
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        # every key is compared, so the time taken does not tell which one nearly matched
        matches = [caller for expected, caller in self.expected if hmac.compare_digest(given, expected)]
        if matches:
            scope[CALLER] = matches[0]
            await self.app(scope, receive, send)
            return
        message = "missing API key: send 'Authorization: Bearer <key>'" if not given else "wrong API key"
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
