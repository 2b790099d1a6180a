"""Channel depth: how far the lead has gone, when it got there, and through how many channels."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, prefix_sum

CHANNEL_GROUPS_MAX = 64
"""Up to this many channel values, distinct channels are counted from the channel groups (no sort)."""


def _distinct_channels(ctx: Context) -> np.ndarray:
    groups = ctx.channels
    if len(groups) <= CHANNEL_GROUPS_MAX:
        total = np.zeros(ctx.n, dtype=np.int64)
        for group in groups.values():
            total += ctx.count(group, ctx.start) > 0
        return total.astype(np.float64)
    ev = ctx.inbound
    pair = ev.lead * (int(ev.any_channel.max()) + 1) + ev.any_channel
    first = np.zeros(ev.size, dtype=bool)
    first[np.unique(pair, return_index=True)[1]] = True
    firsts = prefix_sum(first)
    return (firsts[ctx.pos] - firsts[ctx.start]).astype(np.float64)


def depth(ctx: Context) -> dict[str, np.ndarray]:
    """Deepest stage and days since reaching it, actions per stage, channels used, time to the first deep action."""
    start, pos, has = ctx.start, ctx.pos, ctx.has_events
    out: dict[str, np.ndarray] = {}
    counts = {level: ctx.count(group, start) for level, group in ctx.stages.items()}
    deepest = np.zeros(ctx.n, dtype=np.int64)
    reached = np.zeros(ctx.n, dtype=np.int64)
    for level, group in ctx.stages.items():
        here = counts[level] > 0
        deepest = np.where(here, level, deepest)
        reached = np.where(here, ctx.earliest(group)[0], reached)
    out["deepest_stage"] = deepest.astype(np.float64)
    out["days_since_deepest_stage_reached"] = ctx.days_since(reached, has)
    for level, stage in enumerate(ctx.vocab.stages, start=1):
        out[f"events_{stage}"] = counts[level].astype(np.float64)
    out["distinct_channels"] = _distinct_channels(ctx)

    # the lead's first deep action: the earliest first action over the deep stages
    first_deep = np.full(ctx.n, np.iinfo(np.int64).max)
    for level in ctx.deep_levels:
        idx, valid = ctx.earliest(ctx.stages[level])
        first_deep = np.where(valid, np.minimum(first_deep, idx), first_deep)
    any_deep = first_deep < np.iinfo(np.int64).max
    safe = np.where(any_deep, first_deep, 0)
    out["days_first_touch_to_deep"] = np.where(any_deep, (ctx.ts_at(safe) - ctx.ts_at(ctx.first)) / US_PER_DAY, np.nan)

    w30 = ctx.window_start(30)
    recent = pos - w30
    deep_recent = sum(ctx.count(ctx.stages[level], w30) for level in ctx.deep_levels)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share_deep_30d"] = np.where(recent > 0, deep_recent / recent, np.nan)
    return out
