"""Drift-robust fitting: recency weights, a LightGBM / logistic blend and calibration on the latest leads.

When the base rate or the lead mix moves between the training window and today, three standard
measures keep the shipped model from losing to a plain baseline:

- **Recency weights.** Training snapshots weigh ``0.5 ** (age / half_life)``, age counted back from
  the latest training snapshot; the half-life (or none) is chosen by ROC AUC on the fit half.
- **A blend decided on the fit half.** The regularised logistic regression (the project's baseline,
  fitted with the same weights) is blended with LightGBM on the log-odds scale,
  ``w * logit(lgbm) + (1 - w) * logit(logistic)``; ``w`` from a small grid, chosen by fit-half ROC
  AUC, so a model that drifts worse than the linear one cannot be shipped alone.
- **Calibration on the most recent labelled window.** The calibrator is fitted on the fit half,
  which holds the latest leads sales has answered about, not on the training window.

Nothing here looks at the eval half: every choice is made on the fit half only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.registry import FeatureSet
from training.baselines import logistic_baseline, logistic_scores
from training.calibration import Calibrator, fit_calibrator
from training.model import ModelParams, fit_lightgbm, raw_scores

HALF_LIVES: tuple[float | None, ...] = (None, 180.0, 60.0)
"""Candidate half-lives in days (None: every training snapshot weighs the same)."""
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
"""Candidate weights of LightGBM in the blend; the first wins ties (LightGBM alone keeps exact reasons)."""
MIN_GAIN = 0.001
"""A candidate must beat the simpler choice by this much fit-half ROC AUC to be preferred."""
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def blend(tree_p: np.ndarray, linear_p: np.ndarray | None, weight: float) -> np.ndarray:
    """The blended (uncalibrated) score: LightGBM alone when ``weight`` is 1 or there is no linear part."""
    if linear_p is None or weight >= 1.0:
        return tree_p
    return 1.0 / (1.0 + np.exp(-(weight * _logit(tree_p) + (1 - weight) * _logit(linear_p))))


def recency_weights(as_of: pd.Series, half_life_days: float | None) -> np.ndarray:
    """``0.5 ** (age / half_life)``, age in days back from the latest of these snapshots; ones without a half-life."""
    if half_life_days is None or len(as_of) == 0:
        return np.ones(len(as_of))
    t = pd.DatetimeIndex(as_of)
    age = ((t.max() - t) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    return 0.5 ** (age / half_life_days)


@dataclass
class RobustModel:
    booster: lgb.Booster
    linear: object | None  # the fitted logistic pipeline when it is part of the blend
    categorical: list[str]
    weight: float  # of LightGBM in the blend
    half_life_days: float | None
    calibrator: Calibrator
    calibration_losses: dict[str, float]
    choices: dict[str, float]  # fit-half ROC AUC of every candidate, for the record

    def raw(self, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        linear = logistic_scores(self.linear, frame, self.categorical) if self.linear is not None else None
        return blend(raw_scores(self.booster, matrix), linear, self.weight)

    def probability(self, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return np.clip(self.calibrator(self.raw(matrix, frame)), 0.0, 1.0)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else 0.5


def fit_robust(matrix: np.ndarray, frame: pd.DataFrame, y: np.ndarray, as_of: pd.Series, train: np.ndarray,
               fit: np.ndarray, feature_set: FeatureSet, params: ModelParams, seed: int,
               half_lives: tuple[float | None, ...] = HALF_LIVES,
               blend_weights: tuple[float, ...] = BLEND_WEIGHTS,
               fit_booster: Callable[..., lgb.Booster] = fit_lightgbm) -> RobustModel:
    """Fit LightGBM per candidate half-life, pick one, blend with the logistic regression, calibrate (fit half).

    ``fit_booster`` trains the trees (``fit_lightgbm``'s signature, sample weights included): here or on Dask.
    """
    categorical = [i for i, s in enumerate(feature_set.specs) if s.dtype == "category"]
    timed = pd.DatetimeIndex(as_of[train]).nunique() > 1
    choices: dict[str, float] = {}
    best: tuple[float, float | None, lgb.Booster, np.ndarray] | None = None
    for half_life in (half_lives if timed else (None,)):
        w = recency_weights(as_of[train], half_life)
        booster = fit_booster(matrix[train], y[train], matrix[fit], y[fit], categorical, params, seed, weight=w)
        auc = _auc(y[fit], raw_scores(booster, matrix[fit]))
        choices["half_life_" + ("none" if half_life is None else f"{half_life:g}")] = auc
        if best is None or auc > best[0] + MIN_GAIN:
            best = (auc, half_life, booster, w)
    _, half_life, booster, w = best
    tree_fit = raw_scores(booster, matrix[fit])
    linear, cats = logistic_baseline(frame[train], y[train], feature_set, seed, sample_weight=w)
    linear_fit = logistic_scores(linear, frame[fit], cats)
    weight, top = blend_weights[0], -1.0
    for candidate in blend_weights:
        auc = _auc(y[fit], blend(tree_fit, linear_fit, candidate))
        choices[f"lightgbm_weight_{candidate:g}"] = auc
        if auc > top + MIN_GAIN:
            weight, top = candidate, auc
    raw_fit = blend(tree_fit, linear_fit, weight)
    calibrator, losses = fit_calibrator(raw_fit, y[fit], seed)
    return RobustModel(booster, linear if weight < 1.0 else None, cats, weight, half_life, calibrator, losses, choices)


def base_rate_by_month(snapshots: pd.DataFrame, split) -> pd.DataFrame:  # noqa: ANN001 - training.split.Split
    """Snapshots and prospect rate per calendar month of the as-of time, for the training and validation parts."""
    parts = np.where(split.train, "training", np.where(split.fit | split.eval, "validation", ""))
    frame = pd.DataFrame({"part": parts, "label": snapshots["label"].to_numpy(),
                          "month": pd.DatetimeIndex(snapshots["as_of"]).tz_convert("UTC").strftime("%Y-%m")})
    frame = frame[frame["part"] != ""]
    out = frame.groupby(["part", "month"])["label"].agg(snapshots="size", base_rate="mean").reset_index()
    return out.sort_values(["part", "month"], ignore_index=True)


def drift_line(table: pd.DataFrame, y_train: np.ndarray, y_valid: np.ndarray) -> str:
    """One line: the base rate per month in the training and validation parts, and whether it moved."""
    def months(part: str) -> str:
        rows = table[table["part"] == part]
        return ", ".join(f"{r.month} {r.base_rate:.1%}" for r in rows.itertuples()) or "none"

    train_rate = float(y_train.mean()) if len(y_train) else float("nan")
    valid_rate = float(y_valid.mean()) if len(y_valid) else float("nan")
    moved = train_rate > 0 and not 2 / 3 <= valid_rate / train_rate <= 3 / 2
    verdict = ("the base rate moved: probabilities are calibrated on the latest leads and training weighs recent "
               "snapshots more when that helps" if moved else "no large move in the base rate")
    return (f"drift: base rate {train_rate:.1%} in training ({months('training')}) vs {valid_rate:.1%} in "
            f"validation ({months('validation')}); {verdict}")
