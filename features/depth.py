"""Channel depth: how far the lead has gone, when it got there, and through how many channels."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, last_index_where, prefix_sum

DISTINCT_BY_LOOP_MAX = 64
"""Up to this many channel values, first occurrences are found with one pass per channel (no sort)."""


def _first_of_channel(ctx: Context) -> np.ndarray:
    """True for the first action of each (lead, channel) pair, in time order."""
    ev = ctx.inbound
    codes = np.unique(ev.any_channel) if ev.size else np.zeros(0, np.int32)
    lead_start = ev.start[ev.lead] if ev.size else np.zeros(0, np.int64)
    if codes.size <= DISTINCT_BY_LOOP_MAX:
        first = np.zeros(ev.size, dtype=bool)
        for code in codes:
            mask = ev.any_channel == code
            before = np.r_[-1, last_index_where(mask)[:-1]]
            first |= mask & (before < lead_start)
        return first
    pair = ev.lead * (int(ev.any_channel.max()) + 1) + ev.any_channel
    _, first_idx = np.unique(pair, return_index=True)
    first = np.zeros(ev.size, dtype=bool)
    first[first_idx] = True
    return first


def depth(ctx: Context) -> dict[str, np.ndarray]:
    """Deepest stage and days since reaching it, actions per stage, channels used, time to the first deep action."""
    ev, start, pos, has = ctx.inbound, ctx.start, ctx.pos, ctx.has_events
    out: dict[str, np.ndarray] = {}
    if ev.size:
        running = np.maximum.accumulate(ev.lead * 16 + ev.level)
        level_so_far = running - ev.lead * 16
        deepest = np.where(has, level_so_far[ctx.last], 0)
        rose = ctx.lead_first | (np.diff(level_so_far, prepend=0) > 0)
        reached = last_index_where(rose)[ctx.last]
        out["deepest_stage"] = deepest.astype(np.float64)
        out["days_since_deepest_stage_reached"] = ctx.days_since(ev.ts[reached], has)
    else:
        out["deepest_stage"] = np.zeros(ctx.n)
        out["days_since_deepest_stage_reached"] = np.full(ctx.n, np.nan)

    for level, stage in enumerate(ctx.vocab.stages, start=1):
        counts = ctx.level_prefix(level)
        out[f"events_{stage}"] = (counts[pos] - counts[start]).astype(np.float64)

    channels = prefix_sum(_first_of_channel(ctx).astype(np.int64))
    out["distinct_channels"] = (channels[pos] - channels[start]).astype(np.float64)

    # first deep action of each lead: the next deep index at or after the lead's first action
    if ev.size:
        next_deep = np.minimum.accumulate(np.where(ctx.deep, np.arange(ev.size), ev.size)[::-1])[::-1]
        first_deep = next_deep[np.minimum(start, ev.size - 1)]
        valid = has & (first_deep < pos)
        safe = np.minimum(first_deep, ev.size - 1)
        out["days_first_touch_to_deep"] = np.where(valid, (ev.ts[safe] - ev.ts[np.minimum(start, ev.size - 1)])
                                                   / US_PER_DAY, np.nan)
    else:
        out["days_first_touch_to_deep"] = np.full(ctx.n, np.nan)

    w30 = ctx.window_start(30)
    recent = pos - w30
    deep_recent = ctx.deep_prefix[pos] - ctx.deep_prefix[w30]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share_deep_30d"] = np.where(recent > 0, deep_recent / recent, np.nan)
    return out
