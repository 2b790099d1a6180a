"""How good a probability is: ranking, calibration and what it means for sales' workload."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-count bins of the prediction.

    Equal-count bins, because with a low base rate equal-width bins put nearly everything in the first.
    """
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            err += chunk.size * abs(y[chunk].mean() - p[chunk].mean())
    return float(err / len(y))


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean prediction against the observed rate, per equal-count bin of the prediction."""
    order = np.argsort(p, kind="stable")
    rows = [{"predicted": p[c].mean(), "observed": y[c].mean(), "n": c.size}
            for c in np.array_split(order, bins) if c.size]
    return pd.DataFrame(rows)


def lift_at(y: np.ndarray, p: np.ndarray, share: float = 0.1) -> float:
    """Prospect rate among the top ``share`` of leads by score, divided by the overall rate."""
    k = max(1, int(round(len(p) * share)))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def gains_curve(y: np.ndarray, p: np.ndarray, points: int = 20) -> pd.DataFrame:
    """Share of all prospects found when sales works the top x% of leads by score."""
    order = np.argsort(-p, kind="stable")
    found = np.cumsum(y[order]) / max(y.sum(), 1)
    shares = np.linspace(0, 1, points + 1)[1:]
    idx = np.maximum((shares * len(y)).astype(int) - 1, 0)
    return pd.DataFrame({"share_of_leads": shares, "share_of_prospects": found[idx]})


def evaluate(y: np.ndarray, p: np.ndarray, probability: bool = True) -> dict[str, float]:
    """The headline figures of one model on one set of snapshots; calibration only for probabilities."""
    two_classes = len(np.unique(y)) == 2
    nan = float("nan")
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else nan,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else nan,
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))) if probability else nan,
        "ece": expected_calibration_error(y, p) if probability else nan,
        "lift_top_decile": lift_at(y, p, 0.1),
        "base_rate": float(y.mean()),
        "n": int(len(y)),
    }


def by_group(y: np.ndarray, p: np.ndarray, groups: pd.Series, min_size: int = 30) -> pd.DataFrame:
    """The same figures per group (origin channel, segment); small groups are pooled as 'other'."""
    g = groups.astype("string").fillna("(missing)").to_numpy()
    counts = pd.Series(g).value_counts()
    g = np.where(pd.Series(g).map(counts).to_numpy() >= min_size, g, "other")
    rows = []
    for name in pd.unique(g):
        m = g == name
        rows.append({"group": name, **evaluate(y[m], p[m])})
    return pd.DataFrame(rows).sort_values("n", ascending=False).reset_index(drop=True)


@dataclass(frozen=True)
class PairedDifference:
    """ROC AUC of ``a`` minus that of ``b`` on the same snapshots, with a bootstrap interval by lead."""

    diff: float
    low: float
    high: float
    replicates: int
    level: float = 0.95

    def describe(self) -> str:
        return f"{self.diff:+.4f} (95% interval {self.low:+.4f} to {self.high:+.4f}, {self.replicates} replicates)"


def paired_bootstrap_auc(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, leads: np.ndarray, replicates: int = 1000,
                         seed: int = 0, level: float = 0.95) -> PairedDifference:
    """Resample *leads* (all of a lead's snapshots together) with replacement; both models see the same draw.

    Snapshots of one lead are not independent, so resampling rows would make the interval too
    narrow. Each replicate weights every snapshot by how often its lead was drawn.
    """
    codes, unique = pd.factorize(pd.Series(leads))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(replicates):
        weight = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))[codes]
        kept = weight > 0
        if np.unique(y[kept]).size < 2:
            continue
        diffs.append(roc_auc_score(y[kept], p_a[kept], sample_weight=weight[kept])
                     - roc_auc_score(y[kept], p_b[kept], sample_weight=weight[kept]))
    tail = (1 - level) / 2 * 100
    low, high = (np.percentile(diffs, [tail, 100 - tail]) if diffs else (float("nan"), float("nan")))
    return PairedDifference(float(roc_auc_score(y, p_a) - roc_auc_score(y, p_b)), float(low), float(high),
                            len(diffs), level)
