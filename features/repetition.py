"""Repetition: does the lead come back -- counts in windows, active days, sessions, regularity."""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import US_PER_DAY, last_index_where, prefix_sum

WINDOWS = (7, 30, 90)


def repetition(ctx: Context) -> dict[str, np.ndarray]:
    """Action counts per window, distinct active days, sessions, return visits and visit regularity."""
    ev, start, pos = ctx.inbound, ctx.start, ctx.pos
    out: dict[str, np.ndarray] = {"events_total": (pos - start).astype(np.float64)}
    for days in WINDOWS:
        out[f"events_{days}d"] = (pos - ctx.window_start(days)).astype(np.float64)

    day = ev.ts // US_PER_DAY
    new_day = ctx.lead_first | (np.diff(day, prepend=-1) != 0)
    days_prefix = prefix_sum(new_day.astype(np.int64))
    out["active_days"] = (days_prefix[pos] - days_prefix[start]).astype(np.float64)
    w30 = ctx.window_start(30)
    # the window's first action may share its day with earlier actions: that day still counts once
    carried = (w30 < pos) & ~new_day[np.minimum(w30, max(ev.size - 1, 0))] if ev.size else np.zeros(ctx.n, bool)
    out["active_days_30d"] = (days_prefix[pos] - days_prefix[w30] + carried).astype(np.float64)

    sessions = (ctx.session_starts[pos] - ctx.session_starts[start]).astype(np.float64)
    out["sessions"] = sessions
    out["return_visits"] = np.maximum(sessions - 1, 0)

    # regularity: gaps between consecutive session starts of the same lead
    prev_start = np.r_[-1, last_index_where(ctx.new_session)[:-1]] if ev.size else np.zeros(0, np.int64)
    is_gap = ctx.new_session & ~ctx.lead_first
    gap_days = np.where(is_gap, (ev.ts - ev.ts[np.maximum(prev_start, 0)]) / US_PER_DAY, 0.0)
    g1, g2 = prefix_sum(gap_days), prefix_sum(gap_days ** 2)
    n_gaps = sessions - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_gaps >= 1, (g1[pos] - g1[start]) / n_gaps, np.nan)
        var = np.maximum((g2[pos] - g2[start]) / n_gaps - mean ** 2, 0.0)
        out["visit_gap_mean_days"] = mean
        out["visit_gap_cv"] = np.where((n_gaps >= 2) & (mean > 0), np.sqrt(var) / mean, np.nan)
    return out
