"""Repetition: does the lead come back -- counts in windows, active days, sessions, regularity."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, diff, prefix_sum

WINDOWS = (7, 30, 90)


def repetition(ctx: Context) -> dict[str, np.ndarray]:
    """Action counts per window, distinct active days, sessions, return visits and visit regularity."""
    ev, start, pos = ctx.inbound, ctx.start, ctx.pos
    out: dict[str, np.ndarray] = {"events_total": (pos - start).astype(np.float64)}
    for days in WINDOWS:
        out[f"events_{days}d"] = (pos - ctx.window_start(days)).astype(np.float64)

    new_day = ctx.lead_first | (diff(ctx.day, 1) != 0)
    days_prefix = prefix_sum(new_day)
    out["active_days"] = (days_prefix[pos] - days_prefix[start]).astype(np.float64)
    w30 = ctx.window_start(30)
    # the window's first action may share its day with earlier actions: that day still counts once
    carried = (w30 < pos) & ~new_day[np.minimum(w30, ev.size - 1)] if ev.size else np.zeros(ctx.n, bool)
    out["active_days_30d"] = (days_prefix[pos] - days_prefix[w30] + carried).astype(np.float64)

    sessions = ctx.sessions
    lo, hi = sessions.prefix[start], sessions.prefix[pos]
    n_sessions = (hi - lo).astype(np.float64)
    out["sessions"] = n_sessions
    out["return_visits"] = np.maximum(n_sessions - 1, 0)

    # regularity: gaps between consecutive session starts; a lead's first session has no gap
    starts_ts = ev.ts[sessions.positions]
    gap = np.where(ctx.lead_first[sessions.positions], 0.0, diff(starts_ts, 0) / US_PER_DAY)
    g1, g2 = prefix_sum(gap), prefix_sum(gap * gap)
    n_gaps = n_sessions - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_gaps >= 1, (g1[hi] - g1[lo]) / n_gaps, np.nan)
        var = np.maximum((g2[hi] - g2[lo]) / n_gaps - mean * mean, 0.0)
        out["visit_gap_mean_days"] = mean
        out["visit_gap_cv"] = np.where((n_gaps >= 2) & (mean > 0), np.sqrt(var) / mean, np.nan)
    return out
