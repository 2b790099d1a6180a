"""Recency: how fresh the lead's attention is, overall, per depth stage and per channel."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY


def recency(ctx: Context) -> dict[str, np.ndarray]:
    """Days since the last and first action, since creation, and since the last action per stage and channel."""
    has = ctx.has_events
    out = {
        "days_since_last_event": ctx.days_since(ctx.last, has),
        "days_since_first_event": ctx.days_since(ctx.first, has),
        "days_since_created": (ctx.as_of - ctx.created) / US_PER_DAY,
    }
    for level, stage in enumerate(ctx.vocab.stages, start=1):
        out[f"days_since_{stage}"] = ctx.days_since(*ctx.latest(ctx.stages[level]))
    missing = np.full(ctx.n, np.nan)
    for code, channel in enumerate(ctx.vocab.channels):
        group = ctx.channel_by_feature_code.get(code)
        out[f"days_since_channel_{channel}"] = missing.copy() if group is None else ctx.days_since(*ctx.latest(group))
    return out
