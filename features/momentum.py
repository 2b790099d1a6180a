"""Momentum: is the lead's activity accelerating or fading against its own earlier rate?"""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY

SMOOTHING = 0.1
"""Actions per day added to both rates, so one action after a quiet month reads as a rise, not infinity."""


def momentum(ctx: Context) -> dict[str, np.ndarray]:
    """Log ratio of the recent daily rate (7 and 14 days) to the lead's earlier rate; days since the last deep action."""
    start, pos, has = ctx.start, ctx.pos, ctx.has_events
    out: dict[str, np.ndarray] = {}
    first_ts = ctx.ts_at(ctx.first)
    for days in (7, 14):
        w = ctx.window_start(days)
        recent_rate = (pos - w) / days
        prior = (w - start).astype(np.float64)
        prior_days = np.maximum((ctx.as_of - days * US_PER_DAY - first_ts) / US_PER_DAY, days)
        prior_rate = np.where(prior > 0, prior / prior_days, 0.0)
        out[f"momentum_{days}d"] = np.where(has, np.log((recent_rate + SMOOTHING) / (prior_rate + SMOOTHING)), np.nan)
    last_deep = np.full(ctx.n, -1, dtype=np.int64)
    for level in ctx.deep_levels:
        idx, valid = ctx.latest(ctx.stages[level])
        last_deep = np.where(valid, np.maximum(last_deep, idx), last_deep)
    out["days_since_deep_action"] = ctx.days_since(np.maximum(last_deep, 0), last_deep >= 0)
    return out
