"""The service's OpenAPI document, written from the same pydantic models that validate requests.

BentoML's generated document listed 200/400/404/500 for every path while the service also answers
401, 409, 413, 415 and 422, described error bodies the service does not send, and lost the
nullability of optional fields. This one is OpenAPI 3.1, whose schemas are JSON Schema, so
pydantic's schemas go in unchanged (``null`` where a field is optional); each operation lists the
statuses it can answer, all with the one error shape of ``serving.refusals``; event types are
enumerated from the taxonomies in force. A client generated from it works against the service,
and the fuzz test checks every answer against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.api_models import ErrorOut

REF = "#/components/schemas/{model}"
DOC_PATH = "/docs.json"

STATUS_TEXT = {
    400: "Malformed request: not JSON, a missing or unknown field, a wrong type, a value out of bounds, a "
         "time without a zone, before 1970 or in the future.",
    401: "Missing or wrong API key.",
    404: "Unknown lead.",
    409: "An id already stored with different content.",
    413: "Body larger than PROSPECT_MAX_BODY_BYTES.",
    415: "Body not sent as application/json.",
    422: "Well-formed but refused: too many items, an unknown event type, or a time before the lead existed.",
    503: "The store stayed busy for longer than its write timeout; nothing was stored, send again.",
}
COMMON = (400, 401, 413, 415)


@dataclass(frozen=True)
class Operation:
    path: str
    summary: str
    request: type[BaseModel] | None  # None: an empty JSON object
    response: type[BaseModel]
    refusals: tuple[int, ...] = ()


def openapi_document(operations: list[Operation], title: str, version: str, secured: bool,
                     event_types: dict[str, list[str]]) -> dict:
    """The document; ``event_types`` maps a request model name to the event types it accepts."""
    models = {op.request for op in operations if op.request} | {op.response for op in operations} | {ErrorOut}
    keyed = [(m, "validation") for m in models if m is not ErrorOut] + [(ErrorOut, "serialization")]
    _, top = models_json_schema(keyed, ref_template=REF)
    schemas = top.get("$defs", {})
    for name, types in event_types.items():
        if name in schemas:
            schemas[name]["properties"]["type"]["enum"] = sorted(types)
    paths = {op.path: {"post": _operation(op)} for op in operations}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"apiKey": []}]
    return doc


def _operation(op: Operation) -> dict:
    body_schema = {"$ref": REF.format(model=op.request.__name__)} if op.request else {"type": "object"}
    error = {"application/json": {"schema": {"$ref": REF.format(model=ErrorOut.__name__)}}}
    responses = {"200": {"description": "OK",
                         "content": {"application/json": {"schema": {"$ref": REF.format(model=op.response.__name__)}}}}}
    for status in sorted({*COMMON, *op.refusals}):
        responses[str(status)] = {"description": STATUS_TEXT[status], "content": error}
    return {"summary": op.summary, "operationId": op.path.strip("/"),
            "requestBody": {"required": op.request is not None,
                            "content": {"application/json": {"schema": body_schema}}},
            "responses": responses}


class OpenApiMiddleware:
    """Answer ``GET /docs.json`` with the document, rebuilt only when ``key()`` changes (a model swap)."""

    def __init__(self, app, key: Callable[[], object], document: Callable[[], dict]) -> None:  # noqa: ANN001
        self.app = app
        self.key, self.document = key, document
        self.cached: tuple[object, bytes] | None = None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or scope["path"] != DOC_PATH or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        key = self.key()
        if self.cached is None or self.cached[0] != key:
            self.cached = (key, json.dumps(self.document()).encode())
        body = self.cached[1]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
