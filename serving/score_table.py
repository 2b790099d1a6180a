"""Scores as a table: one row per lead, the columns a CRM import or a spreadsheet reads.

``prospect score --out`` writes it as CSV. Reasons are joined into one readable cell per side, and
each explicit criterion gets its own column, so a sales tool can filter on "budget: met".
"""

from __future__ import annotations

import pandas as pd

from serving.scoring import Scored


def score_rows(scored: list[Scored], score_ids: list[str]) -> pd.DataFrame:
    """One row per scored lead, with the score id under which the score log keeps it."""
    return pd.DataFrame([{
        "score_id": score_id, "lead_id": s.lead_id, "probability": round(s.probability, 4), "score": s.score,
        "tier": s.tier, "reasons_for": " | ".join(r.text for r in s.reasons_for),
        "reasons_against": " | ".join(r.text for r in s.reasons_against), "trend": s.trend,
        "score_week_ago": s.score_week_ago, **{f"criterion_{c.name}": c.status for c in s.criteria},
        "model_version": s.model_version,
    } for s, score_id in zip(scored, score_ids, strict=True)])
