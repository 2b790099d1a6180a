"""The service's JSON answers, built straight from the scores, are the declared models' own JSON byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from serving.criteria import CriterionResult
from serving.api_models import BatchResponse, ScoreResponse
from serving.responses import batch_body, score_body, score_fields
from serving.scoring import Reason, Scored


def _scored(rng: np.random.Generator, k: int) -> Scored:
    def reasons(sign: float) -> list[Reason]:
        return [Reason(f"f{j}", f"text {j} é", sign * float(rng.random())) for j in range(int(rng.integers(0, 4)))]
    week_ago = None if rng.random() < 0.3 else int(rng.integers(0, 101))
    return Scored(
        lead_id=f"lead-{k}", as_of=pd.Timestamp("2025-06-01 12:34:56.789012", tz="UTC") + pd.Timedelta(days=k),
        probability=float(rng.choice([0.0, 1.0, rng.random(), 1e-300])), score=int(rng.integers(0, 101)),
        tier=str(rng.choice(["prospect-ready", "warming", "early lead"])), reasons_for=reasons(1.0),
        reasons_against=reasons(-1.0), model_version=None if k % 3 == 0 else str(k), score_week_ago=week_ago,
        trend=str(rng.choice(["improving", "steady", "fading", "new"])),
        with_reasons=bool(rng.random() < 0.8),
        criteria=[CriterionResult(f"c{j}", f"Label {j}", str(rng.choice(["met", "not_met", "unknown"])), f"why {j}")
                  for j in range(int(rng.integers(0, 6)))])


def test_the_answers_are_the_declared_models_json_byte_for_byte() -> None:
    rng = np.random.default_rng(4)
    scored = [_scored(rng, k) for k in range(300)]
    ids = [None if k % 7 == 0 else f"id{k}" for k in range(300)]
    models = [ScoreResponse.model_validate(score_fields(s, i)) for s, i in zip(scored, ids, strict=True)]
    assert [score_body(s, i) for s, i in zip(scored, ids, strict=True)] == [m.model_dump_json().encode() for m in models]
    want = BatchResponse(scores=models, unknown_lead_ids=["gone"], created_after_as_of=["late-1", "late-2"])
    assert batch_body(scored, ids, ["gone"], ["late-1", "late-2"]) == want.model_dump_json().encode()
    assert batch_body([], [], [], []) == b'{"scores":[],"unknown_lead_ids":[],"created_after_as_of":[]}'


def test_the_answer_keeps_the_time_zone_and_full_precision() -> None:
    """as_of in UTC with microseconds; a probability as small as 1e-300 is not rounded to 0."""
    s = _scored(np.random.default_rng(2), 0)
    s.probability = 1e-300
    body = json.loads(score_body(s, "x"))
    assert body["as_of"] == "2025-06-01T12:34:56.789012Z" and body["probability"] == 1e-300
