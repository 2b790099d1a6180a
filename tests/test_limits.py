"""The request deadline: a 504 for a request that does not answer in time, and nothing left behind by one that does.

BentoML's own timeout middleware kept every request's timer scheduled for the whole timeout after
the answer (with the request's future and context); after a burst the cycle collector walked
73,000-100,000 such objects on each full collection, pausing a worker up to 80 ms at a time.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from bentoml._internal.server.http import traffic

from serving.limits import DeadlineMiddleware, install_deadline


async def _fast(scope, receive, send) -> None:  # noqa: ANN001, ARG001 - an ASGI app
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _slow(scope, receive, send) -> None:  # noqa: ANN001
    await asyncio.sleep(5)
    await _fast(scope, receive, send)


async def _broken(scope, receive, send) -> None:  # noqa: ANN001, ARG001
    raise RuntimeError("failed before answering")


def _call(app, requests: int = 1) -> tuple[list[dict], int]:  # noqa: ANN001
    """Run ``requests`` requests through ``app``; the messages sent and the timers still scheduled after them."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> int:
        for _ in range(requests):
            await app({"type": "http", "path": "/score"}, receive, send)
        loop = asyncio.get_running_loop()
        return sum(not h.cancelled() for h in loop._scheduled)  # noqa: SLF001 - the loop's timer heap

    return sent, asyncio.run(run())


@pytest.mark.parametrize("middleware", [DeadlineMiddleware, traffic.TimeoutMiddleware])
def test_an_answered_request_leaves_no_timer_behind(middleware) -> None:  # noqa: ANN001
    sent, pending = _call(middleware(_fast, timeout=30), requests=500)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * 500
    if middleware is DeadlineMiddleware:
        assert pending == 0
    else:  # what BentoML's own middleware does (install_deadline replaces it): one live timer per request
        assert pending == 500


def test_a_request_that_does_not_answer_in_time_gets_a_504() -> None:
    sent, _ = _call(DeadlineMiddleware(_slow, timeout=0.05))
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {"error": "not able to process the request in 0.05 seconds"}


def test_a_request_that_fails_before_answering_fails_at_once() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(RuntimeError, match="failed before answering"):
            await DeadlineMiddleware(_broken, timeout=30)({"type": "http"}, None, None)
        return loop.time() - t0

    assert asyncio.run(run()) < 1


def test_bentoml_builds_its_applications_with_the_deadline(monkeypatch) -> None:  # noqa: ANN001
    from bentoml._internal.server.base_app import BaseAppFactory

    monkeypatch.setattr(traffic, "TimeoutMiddleware", traffic.TimeoutMiddleware)  # restored after the test
    install_deadline()

    class App(BaseAppFactory):
        name = "app"

        def __init__(self) -> None:
            super().__init__(timeout=30)

    assert [m.cls for m in App().middlewares] == [DeadlineMiddleware]
