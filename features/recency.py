"""Recency: how fresh the lead's attention is, overall, per depth stage and per channel."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, last_index_where


def recency(ctx: Context) -> dict[str, np.ndarray]:
    """Days since the last and first action, since creation, and since the last action per stage and channel."""
    ev, has = ctx.inbound, ctx.has_events
    out = {
        "days_since_last_event": ctx.days_since(ev.ts[ctx.last] if ev.size else ctx.as_of, has),
        "days_since_first_event": ctx.days_since(ev.ts[np.minimum(ctx.start, max(ev.size - 1, 0))]
                                                 if ev.size else ctx.as_of, has),
        "days_since_created": (ctx.as_of - ctx.created) / US_PER_DAY,
    }
    for level, stage in enumerate(ctx.vocab.stages, start=1):
        idx, valid = ctx.latest_where(last_index_where(ev.level == level))
        out[f"days_since_{stage}"] = ctx.days_since(ev.ts[idx] if ev.size else ctx.as_of, valid)
    for code, channel in enumerate(ctx.vocab.channels):
        idx, valid = ctx.latest_where(last_index_where(ev.channel == code))
        out[f"days_since_channel_{channel}"] = ctx.days_since(ev.ts[idx] if ev.size else ctx.as_of, valid)
    return out
