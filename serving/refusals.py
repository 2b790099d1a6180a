"""How the service refuses: one JSON error shape, 415 for bodies that are not JSON, and logs without lead data.

BentoML answers a refused request in three shapes (an object, an object inside a list, pydantic's
list of problems) and logs every refusal at ERROR with a traceback that can carry SQL parameters or
the offending value. Here every 4xx body becomes ``{"error": "<field>: <problem>", "detail": [...]}``
(detail only for malformed requests), and log records keep the path, the status and the kind of
error only: a 4xx is logged at INFO (it is the client's mistake, not the server's).
"""

from __future__ import annotations

import json
import logging
import traceback

JSON_TYPES = ("application/json",)


def _json_answer(status: int, payload: dict) -> tuple[dict, dict]:
    """The two ASGI messages of a JSON answer."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


class JsonOnlyMiddleware:
    """POST bodies must be JSON: any other declared media type gets 415 before any parsing.

    Without this, ``multipart/form-data`` without a boundary reached BentoML's form parser and
    came back as a 500. A request without a Content-Type is read as JSON, as BentoML does.
    """

    def __init__(self, app, paths: frozenset[str]) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.paths = paths

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-type")
        media = declared.split(b";")[0].strip().lower().decode("latin-1") if declared is not None else None
        if media is None or media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
            await self.app(scope, receive, send)
            return
        for message in _json_answer(415, {"error": "Content-Type: the body must be JSON, sent as "
                                                 "'Content-Type: application/json'"}):
            await send(message)


def _field(loc: list) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "body"


def one_error(body: bytes, status: int) -> dict:
    """The single error shape for a 4xx body (BentoML's three shapes, or Starlette's plain text)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return {"error": body.decode("utf-8", "replace")[:200] or "the request was refused"}
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict):
        return {"error": "the request was refused"}
    detail = payload.get("detail")
    if status == 400 and isinstance(detail, list) and detail:
        problems = [f"{_field(d.get('loc') or [])}: {str(d.get('msg', '')).removeprefix('Value error, ')}"
                    for d in detail if isinstance(d, dict)]
        return {"error": "; ".join(problems), "detail": detail}
    return {"error": str(payload.get("error", "the request was refused"))}


class OneErrorShapeMiddleware:
    """Rewrite the JSON body of every 4xx answer from the inner application into :func:`one_error`."""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def shaping(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = json.dumps(one_error(b"".join(chunks), start["status"])).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",
                                                                                          b"content-type")]
            await send({**start, "headers": [*headers, (b"content-type", b"application/json"),
                                             (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, shaping)


def _status_of(exc: BaseException) -> int:
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, BentoMLException):
        return int(exc.error_code)
    return 500


class NoLeadDataFilter(logging.Filter):
    """Replace a record's traceback by the kind of error and where it was raised.

    Exception messages and tracebacks can hold lead ids, attribute values and SQL parameters; the
    kind (class name) and the innermost frame (file and line) say what went wrong without them.
    A refusal (4xx) becomes an INFO line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
        status = _status_of(exc)
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
        record.msg, record.args = "%s answered %d: %s%s", (path, status, type(exc).__name__, where)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if status < 500:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def keep_lead_data_out_of_logs() -> None:
    """Install :class:`NoLeadDataFilter` on BentoML's request-error logger and on every root handler."""
    scrub = NoLeadDataFilter()
    logging.getLogger("bentoml._internal.server.http_app").addFilter(scrub)
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrub)
