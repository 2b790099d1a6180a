"""The service's response models built by one validation call equal the field-by-field build."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.criteria import CriterionResult
from serving.responses import response, responses
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
        criteria=[CriterionResult(f"c{j}", f"Label {j}", str(rng.choice(["met", "not_met", "unknown"])), f"why {j}")
                  for j in range(int(rng.integers(0, 6)))])


def test_validated_responses_equal_the_field_by_field_build() -> None:
    rng = np.random.default_rng(4)
    scored = [_scored(rng, k) for k in range(300)]
    ids = [None if k % 7 == 0 else f"id{k}" for k in range(300)]
    got = responses(scored, ids)
    want = [response(s, i) for s, i in zip(scored, ids, strict=True)]
    assert got == want
    assert [r.model_dump_json() for r in got] == [r.model_dump_json() for r in want]
    assert responses([], []) == []


def test_a_value_validation_refuses_falls_back_to_the_field_by_field_build() -> None:
    """A lead id kept as a number does not pass validation: the response is still given, as before."""
    odd = _scored(np.random.default_rng(1), 0)
    odd.lead_id = 12345  # type: ignore[assignment]
    got = responses([odd], ["x"])
    assert got == [response(odd, "x")] and got[0].lead_id == 12345
