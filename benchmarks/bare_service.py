"""The floor under the score service: a trivial BentoML service with the same workers and the same
request shape, measured by benchmarks/serving.py with the same load generator.

What it answers costs nothing, so its latency and throughput are BentoML's and the machine's alone.
"""

from __future__ import annotations

import os

import bentoml
from pydantic import BaseModel


class Request(BaseModel):
    lead_id: str
    as_of: str | None = None


class Answer(BaseModel):
    lead_id: str
    score: int


@bentoml.service(name="bare-floor", traffic={"timeout": 30}, workers=int(os.environ.get("PROSPECT_SERVE_WORKERS", "2")))
class Bare:
    @bentoml.api(route="/score")
    async def score(self, request: Request, /) -> Answer:
        """Answer at once: no store, no model."""
        return Answer(lead_id=request.lead_id, score=50)
