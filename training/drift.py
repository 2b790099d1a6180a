"""Population stability index: how far a live distribution has moved from the training one.

PSI = sum over bins of (live share - reference share) * ln(live share / reference share). The usual
reading: below 0.1 stable, 0.1-0.25 moved, above 0.25 shifted. Numeric values are binned at the
reference's deciles; categories (and "missing") are bins of their own, so a feature that starts
being missing, or a new origin channel, shows up too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.registry import FeatureSpec

BINS = 10
FLOOR = 1e-4
"""Shares are floored here so that an empty bin on one side gives a large, finite PSI."""


def psi_from_counts(reference: np.ndarray, live: np.ndarray) -> float:
    ref = np.maximum(reference / max(reference.sum(), 1), FLOOR)
    cur = np.maximum(live / max(live.sum(), 1), FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: np.ndarray, live: np.ndarray, categorical: bool = False) -> float:
    """PSI of one feature; NaN (missing) is a bin of its own."""
    reference, live = np.asarray(reference, dtype=float), np.asarray(live, dtype=float)
    ref_missing, live_missing = np.isnan(reference), np.isnan(live)
    if categorical:
        edges = np.unique(reference[~ref_missing])
        ref_bins = np.searchsorted(edges, reference[~ref_missing])
        live_known = live[~live_missing]
        # categories the training window never saw count together as one more bin
        live_bins = np.where(np.isin(live_known, edges), np.searchsorted(edges, live_known), len(edges))
        n = len(edges) + 1
    else:
        edges = np.unique(np.quantile(reference[~ref_missing], np.linspace(0, 1, BINS + 1)[1:-1])) \
            if (~ref_missing).any() else np.array([])
        ref_bins = np.searchsorted(edges, reference[~ref_missing], side="right")
        live_bins = np.searchsorted(edges, live[~live_missing], side="right")
        n = len(edges) + 1
    ref_counts = np.append(np.bincount(ref_bins, minlength=n), ref_missing.sum())
    live_counts = np.append(np.bincount(live_bins, minlength=n), live_missing.sum())
    return psi_from_counts(ref_counts, live_counts)


def feature_drift(reference: np.ndarray, live: np.ndarray, specs: tuple[FeatureSpec, ...]) -> pd.DataFrame:
    """PSI per feature (columns of the two matrices), most moved first, with each feature's plain words."""
    rows = [{"feature": s.name, "description": s.description, "family": s.family,
             "psi": psi(reference[:, j], live[:, j], s.dtype == "category"),
             "reference_missing": float(np.isnan(reference[:, j]).mean()),
             "live_missing": float(np.isnan(live[:, j]).mean())}
            for j, s in enumerate(specs)]
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)
