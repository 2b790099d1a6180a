"""Origin and timing: which channel brought the lead, and when in the week it is active.

Business hours are 08:00-18:00 UTC, Monday to Friday; leads' own time zones are rarely known.
"""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, prefix_sum

US_PER_HOUR = 3_600_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def timing(ctx: Context) -> dict[str, np.ndarray]:
    """Share of actions in business hours and at weekends."""
    ev, start, pos = ctx.inbound, ctx.start, ctx.pos
    weekday = (ctx.day + EPOCH_WEEKDAY) % 7
    hour = (ev.ts - ctx.day * US_PER_DAY) // US_PER_HOUR
    weekend = weekday >= 5
    business = ~weekend & (hour >= 8) & (hour < 18)
    total = (pos - start).astype(np.float64)
    out = {}
    for name, flags in (("share_business_hours", business), ("share_weekend", weekend)):
        counts = prefix_sum(flags)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(total > 0, (counts[pos] - counts[start]) / total, np.nan)
    return out
