"""Choosing the tiers: where sales draws the line, from validation data; saved with the model.

Two policies set the prospect-ready cut-off: a share of validation leads (percentiles), or the
weekly capacity of the sales team (how many leads it can call a week), turned into a cut-off
through the recent arrival rate of leads. The chosen :class:`runtime.tiers.Thresholds` are what a
bundle carries and a running model applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from runtime.tiers import Thresholds


def choose_thresholds(p: np.ndarray, ready_share: float = 0.05, warming_share: float = 0.15) -> Thresholds:
    """Cut-offs that send the top ``ready_share`` of leads to sales and flag the next ``warming_share``."""
    ready = float(np.quantile(p, 1 - ready_share))
    warming = float(np.quantile(p, 1 - ready_share - warming_share))
    return Thresholds(ready=ready, warming=min(warming, ready), ready_share=ready_share, warming_share=warming_share,
                      policy=f"percentiles: the top {ready_share:.0%} of validation snapshots are prospect-ready")


def capacity_thresholds(p: np.ndarray, lead_ids: np.ndarray, per_week: float, arrivals_per_week: float,
                        warming_share: float = 0.15) -> Thresholds:
    """Cut-offs that send sales about ``per_week`` leads a week.

    A lead reaches sales once, when its probability first crosses the cut-off, so the weekly count
    is the arrival rate times the share of leads whose highest probability (over their validation
    snapshots) reaches it. The cut-off is the quantile of those per-lead highs that makes the share
    ``per_week / arrivals_per_week``; warming covers the next ``warming_share`` of leads.
    """
    if per_week <= 0 or arrivals_per_week <= 0:
        raise ValueError(f"capacity and arrival rate must be positive (got {per_week:g} and {arrivals_per_week:g})")
    highs = pd.Series(p).groupby(np.asarray(lead_ids)).max().to_numpy()
    share = min(per_week / arrivals_per_week, 1.0)
    ready = float(np.quantile(highs, 1 - share))
    warming = float(np.quantile(highs, max(1 - share - warming_share, 0.0)))
    return Thresholds(ready=ready, warming=min(warming, ready), ready_share=float(np.mean(p >= ready)),
                      warming_share=float(np.mean((p >= warming) & (p < ready))), capacity_per_week=per_week,
                      policy=f"capacity: about {per_week:g} prospect-ready leads a week at the recent arrival rate "
                             f"of {arrivals_per_week:.0f} leads a week")


def arrivals_per_week(created_at: pd.Series, weeks: float = 8.0) -> float:
    """Leads that arrived per week over the last ``weeks`` weeks of the data."""
    end = created_at.max()
    return float((created_at > end - pd.Timedelta(weeks=weeks)).sum() / weeks)
