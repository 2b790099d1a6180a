"""Checks that stop a training run before it produces a model nobody should trust.

- Minimum data: too few labelled snapshots or prospects, or a single class, stops with the numbers
  found and the numbers needed.
- Leakage: a column the mapping marks as written by sales after contact, an attribute whose values
  the attribute history shows were mostly first written after the lead's first sales touch, or any single feature
  that alone separates prospects from the rest almost perfectly (ROC AUC 0.95 or more on the
  training part), is almost always the answer leaking into the question. Training stops and names
  it; an explicit override lets it through, and the run records that it did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.registry import FeatureSet

LEAKY_AUC = 0.95
LATE_RECORDED_SHARE = 0.5
"""An attribute whose values were first written after the lead's first sales touch for more than this
share of its leads is sales' note of the contact rather than a fact known before it."""


class TrainingStopped(ValueError):
    """Training refused to go on; the message says why and what would fix it."""


@dataclass(frozen=True)
class Minimums:
    snapshots: int = 200
    positives: int = 20
    valid_positives: int = 10


def check_minimum_data(y_train: np.ndarray, y_valid: np.ndarray, need: Minimums = Minimums()) -> None:
    problems = []
    if len(y_train) < need.snapshots:
        problems.append(f"{len(y_train)} labelled snapshots in the training part (need {need.snapshots})")
    if y_train.sum() < need.positives:
        problems.append(f"{int(y_train.sum())} prospects in the training part (need {need.positives})")
    if len(y_train) and len(np.unique(y_train)) < 2:
        problems.append(f"a single class in the training part (every label is {int(y_train[0])})")
    if y_valid.sum() < need.valid_positives:
        problems.append(f"{int(y_valid.sum())} prospects in the validation part (need {need.valid_positives})")
    if problems:
        raise TrainingStopped("not enough labelled data to train: " + "; ".join(problems)
                              + ". Ingest more feedback, widen the horizon, or lower the minimums.")


def _oof_category_scores(codes: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold positive rate of each row's category, so rare categories cannot memorise labels."""
    scores = np.full(len(y), y.mean())
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for fit, held in folds.split(codes.reshape(-1, 1), y):
        rates = pd.Series(y[fit]).groupby(codes[fit]).mean()
        scores[held] = pd.Series(codes[held]).map(rates).fillna(y[fit].mean()).to_numpy()
    return scores


def single_feature_auc(matrix: np.ndarray, y: np.ndarray, feature_set: FeatureSet, seed: int = 0) -> dict[str, float]:
    """ROC AUC of each feature alone (the better of both directions); categoricals by out-of-fold rate."""
    out = {}
    for col, spec in enumerate(feature_set.specs):
        x = matrix[:, col].astype(np.float64)
        if spec.dtype == "category":
            score = _oof_category_scores(np.where(np.isnan(x), -1, x).astype(np.int64), y, seed)
        else:
            low = np.nanmin(x) - 1 if np.isfinite(x).any() else 0.0
            score = np.where(np.isnan(x), low, x)
        if np.unique(score).size < 2:
            out[spec.name] = 0.5
            continue
        auc = roc_auc_score(y, score)
        out[spec.name] = float(max(auc, 1 - auc))
    return out


def check_leakage(matrix: np.ndarray, y: np.ndarray, feature_set: FeatureSet, allow: tuple[str, ...] = (),
                  seed: int = 0, late_recorded: dict[str, float] | None = None) -> dict[str, str]:
    """Stop on leaky features; return {feature: reason} for those let through by ``allow``.

    ``late_recorded`` gives, per attribute with history, the share of its leads whose value was first
    written at or after their first sales touch (``features.history.first_recorded_after_touch``).
    """
    reasons: dict[str, str] = {}
    for spec in feature_set.specs:
        if spec.role == "after_contact":
            reasons[spec.name] = "the mapping marks it as recorded by sales after contact"
    for attribute, share in (late_recorded or {}).items():
        name = f"attr_{attribute}"
        if share > LATE_RECORDED_SHARE and name in feature_set.names:
            late = (f"the history shows {share:.0%} of its values were first recorded after the lead's first "
                    "sales touch (outbound event or feedback)")
            reasons[name] = f"{reasons[name]}; {late}" if name in reasons else late
    for name, auc in single_feature_auc(matrix, y, feature_set, seed).items():
        if auc >= LEAKY_AUC:
            extra = f"alone it separates prospects with ROC AUC {auc:.3f} (limit {LEAKY_AUC})"
            reasons[name] = f"{reasons[name]}; {extra}" if name in reasons else extra
    blocked = {k: v for k, v in reasons.items() if k not in allow}
    if blocked:
        lines = "; ".join(f"{name}: {why}" for name, why in blocked.items())
        raise TrainingStopped(f"training stopped, likely leakage in {len(blocked)} feature(s): {lines}. "
                              "Drop these columns from the mapping, or allow them explicitly "
                              "(--allow-leaky NAME) if you are sure they are known before contact.")
    return {k: v for k, v in reasons.items() if k in allow}
