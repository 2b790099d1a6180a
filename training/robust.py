"""Drift-robust fitting: recency weights, a LightGBM / logistic blend and calibration on the latest leads.

When the base rate or the lead mix moves between the training window and today, three standard
measures keep the shipped model from losing to a plain baseline:

- **Recency weights.** Training snapshots weigh ``0.5 ** (age / half_life)``, age counted back from
  the latest training snapshot; the half-life (or none) is chosen by ROC AUC on the fit half.
- **A blend decided on the fit half.** The regularised logistic regression (the project's baseline,
  fitted with the same weights) is blended with LightGBM on the log-odds scale,
  ``w * logit(lgbm) + (1 - w) * logit(logistic)``; ``w`` from a small grid, chosen by fit-half ROC
  AUC (:func:`pick_weight`), so a model that drifts worse than the linear one cannot be shipped alone.
- **Calibration on the most recent labelled window.** The calibrator is fitted on the fit half,
  which holds the latest leads sales has answered about, not on the training window.

Nothing here looks at the eval half: every choice is made on the fit half only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.registry import FeatureSet
from runtime.calibration import Calibrator
from runtime.contributions import contributions, linear_contributions, preprocessed_means, tree_contributions
from runtime.raw import blend, logistic_scores, raw_scores
from runtime.treeshap import TreeShap
from training.baselines import logistic_baseline
from training.calibration import fit_calibrator
from training.model import ModelParams, fit_lightgbm
from training.rows import Rows, bounded, scores
from training.split import in_fit_half

HALF_LIVES: tuple[float | None, ...] = (None, 180.0, 60.0)
"""Candidate half-lives in days (None: every training snapshot weighs the same)."""
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
"""Candidate weights of LightGBM in the blend; the first is the default a blend must beat (LightGBM
alone: its reasons are TreeSHAP's alone, and the bundle carries no logistic part)."""
MIN_GAIN = 0.001
"""Fit-half ROC AUC a departure from the default must earn: a half-life must beat the best milder
one (stronger recency weighting departs further from equal weights), a blend must beat LightGBM
alone (:func:`pick_weight`)."""


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
    rounds: dict[str, int] = field(default_factory=dict)  # early-stopped and refitted trees, rows of each
    fit_probabilities: np.ndarray | None = None
    """Calibrated out-of-fold probabilities of the fit half: tiers and the score scale come from these,
    not from the refitted model's in-sample scores."""
    linear_means: np.ndarray | None = None
    """The logistic part's preprocessed columns averaged over the rows it was fitted on: the reference
    its contributions to the reasons are measured from (``runtime.contributions``)."""

    def raw(self, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        linear = logistic_scores(self.linear, frame, self.categorical) if self.linear is not None else None
        return blend(raw_scores(self.booster, matrix), linear, self.weight)

    def probability(self, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return np.clip(self.calibrator(self.raw(matrix, frame)), 0.0, 1.0)

    @cached_property
    def treeshap(self) -> TreeShap:
        """The trees' TreeSHAP tables, built once for every explanation of this model."""
        return TreeShap.from_booster(self.booster)

    def contributions(self, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to :meth:`raw`'s log-odds, as the shipped bundle computes them."""
        return contributions(self.booster, matrix, frame, self.linear, self.categorical, self.linear_means,
                             self.weight, self.treeshap)

    def explanations(self, matrix: np.ndarray, frame: pd.DataFrame) -> list[np.ndarray]:
        """The served contributions, then each part's that enters the blend with a positive weight (the guard's)."""
        served = self.contributions(matrix, frame)
        if self.linear is None or self.weight >= 1.0:
            return [served]
        parts = [served, linear_contributions(self.linear, frame, self.categorical, self.linear_means)]
        return parts + ([tree_contributions(self.booster, matrix, self.treeshap)] if self.weight > 0 else [])


def tree_raw(booster: lgb.Booster, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:  # noqa: ARG001
    """The trees' scores of a block of rows (``Rows.map``'s signature)."""
    return raw_scores(booster, matrix)


def linear_raw(model, categorical: list[str], matrix: np.ndarray,  # noqa: ANN001, ARG001
               frame: pd.DataFrame) -> np.ndarray:
    """The logistic regression's scores of a block of rows (``Rows.map``'s signature)."""
    return logistic_scores(model, frame, categorical)


def fit_linear(rows: Rows, y: np.ndarray, mask: np.ndarray, feature_set: FeatureSet, seed: int,
               limit: int | None, weight: np.ndarray | None = None) -> tuple[object, list[str]]:
    """The logistic regression on the rows of ``mask`` (``weight``: one per such row), or a seeded sample of ``limit``.

    A logistic regression needs its rows in one place; when they are not here already (Dask), at
    most ``limit`` of them are brought here, so the client's memory does not grow with the data.
    """
    everything = np.flatnonzero(mask)
    index = bounded(everything, limit, seed)
    _, frame = rows.take(index)
    w = None if weight is None else weight[np.searchsorted(everything, index)]
    return logistic_baseline(frame, y[index], feature_set, seed, sample_weight=w)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else 0.5


@dataclass(frozen=True)
class _Data:
    """What every fit inside :func:`fit_robust` reads: features, labels, as-of times and the feature set."""

    rows: Rows
    y: np.ndarray
    as_of: pd.Series
    feature_set: FeatureSet
    params: ModelParams
    seed: int
    fit_booster: Callable[..., lgb.Booster]
    linear_rows: int | None  # rows a logistic regression may bring here (None: all)

    def linear(self, mask: np.ndarray, weight: np.ndarray | None) -> tuple[object, list[str]]:
        return fit_linear(self.rows, self.y, mask, self.feature_set, self.seed, self.linear_rows, weight)

    @property
    def categorical(self) -> list[int]:
        return [i for i, s in enumerate(self.feature_set.specs) if s.dtype == "category"]


def _choose_half_life(d: _Data, train: np.ndarray, fit: np.ndarray, half_lives: tuple[float | None, ...],
                      choices: dict[str, float]) -> tuple[float | None, lgb.Booster]:
    """One early-stopped LightGBM per candidate half-life on ``train``; the best fit-half ROC AUC wins."""
    timed = pd.DatetimeIndex(d.as_of[train]).nunique() > 1
    best: tuple[float, float | None, lgb.Booster] | None = None
    train_rows, fit_rows = d.rows.select(train), d.rows.select(fit)
    for half_life in (half_lives if timed else (None,)):
        w = recency_weights(d.as_of[train], half_life)
        booster = d.fit_booster(train_rows.native, d.y[train], fit_rows.native, d.y[fit], d.categorical, d.params,
                                d.seed, weight=w)
        auc = _auc(d.y[fit], scores(fit_rows, partial(tree_raw, booster)))
        choices["half_life_" + ("none" if half_life is None else f"{half_life:g}")] = auc
        if best is None or auc > best[0] + MIN_GAIN:
            best = (auc, half_life, booster)
    return best[1], best[2]


def pick_weight(aucs: dict[float, float]) -> float:
    """The LightGBM weight to ship, from each candidate's fit-half ROC AUC (in ``BLEND_WEIGHTS``' order).

    The first candidate (LightGBM alone) stays unless the best of the others beats it by MIN_GAIN;
    that margin is what a blend must earn, as it ships a second model and mixes its reasons in.
    Among the blends the best one wins outright: none of them is simpler than another, and a margin
    between them would only favour whichever comes first in the grid. (It did: on the drift scenario
    the fit half rated 0.75 and 0.5 at 0.8450 and 0.8451, the margin kept 0.75, and the eval half
    scored it under the logistic regression; the README's quality figures give the seeds.)
    """
    candidates = list(aucs)
    first, blends = candidates[0], candidates[1:]
    best = max(blends, key=lambda w: aucs[w], default=first)
    return best if aucs[best] > aucs[first] + MIN_GAIN else first


def _choose_weight(y: np.ndarray, tree: np.ndarray, linear: np.ndarray, blend_weights: tuple[float, ...],
                   choices: dict[str, float]) -> float:
    """The LightGBM weight of the blend chosen by :func:`pick_weight` on the fit half's ROC AUC of each."""
    aucs = {w: _auc(y, blend(tree, linear, w)) for w in blend_weights}
    choices.update({f"lightgbm_weight_{w:g}": auc for w, auc in aucs.items()})
    return pick_weight(aucs)


def _refit(d: _Data, rows: np.ndarray, rounds: int, half_life: float | None, with_linear: bool
           ) -> tuple[lgb.Booster, object | None, list[str]]:
    """LightGBM with a fixed number of trees (and the logistic part of a blend) on ``rows``, recency-weighted."""
    w = recency_weights(d.as_of[rows], half_life)
    booster = d.fit_booster(d.rows.select(rows).native, d.y[rows], None, None, d.categorical, d.params, d.seed,
                            weight=w, rounds=rounds)
    linear, cats = d.linear(rows, w) if with_linear else (None, [])
    return booster, linear, cats


def _scaled(rounds: int, rows: np.ndarray, train: np.ndarray) -> int:
    """Early stopping chose ``rounds`` on the training rows; more rows carry proportionally more trees."""
    return max(int(round(rounds * rows.sum() / max(train.sum(), 1))), 1)


def _cross_fitted(d: _Data, train: np.ndarray, fit: np.ndarray, groups: np.ndarray, rounds: int,
                  half_life: float | None, weight: float) -> np.ndarray:
    """Out-of-fold blended scores of the fit half: each fold scored by a refit that never saw its leads.

    The shipped model is refitted on the fit half too, so its own fit-half scores are in-sample (too
    confident); a calibrator fitted on them would shrink nothing. Folds are by lead (a seeded hash).
    """
    fold = in_fit_half(pd.Series(groups), d.seed + 1)
    raw = np.full(len(d.y), np.nan)
    for held_mask in (fold, ~fold):
        held = fit & held_mask
        if not held.any():
            continue
        rows = train | (fit & ~held_mask)
        booster, linear, cats = _refit(d, rows, _scaled(rounds, rows, train), half_life, weight < 1.0)
        held_rows = d.rows.select(held)
        lin = scores(held_rows, partial(linear_raw, linear, cats)) if linear is not None else None
        raw[held] = blend(scores(held_rows, partial(tree_raw, booster)), lin, weight)
    return raw[fit]


def _linear_means(d: _Data, linear, cats: list[str], mask: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The reference of the logistic part's contributions: its preprocessed columns averaged over the
    rows it was fitted on (the same seeded sample :func:`fit_linear` took when they are elsewhere)."""
    _, frame = d.rows.take(bounded(np.flatnonzero(mask), d.linear_rows, d.seed))
    return preprocessed_means(linear, frame, cats)


def fit_robust(rows: Rows, y: np.ndarray, as_of: pd.Series, train: np.ndarray,
               fit: np.ndarray, feature_set: FeatureSet, params: ModelParams, seed: int,
               half_lives: tuple[float | None, ...] = HALF_LIVES,
               blend_weights: tuple[float, ...] = BLEND_WEIGHTS,
               fit_booster: Callable[..., lgb.Booster] = fit_lightgbm, groups: np.ndarray | None = None,
               refit: bool = False, linear_rows: int | None = None) -> RobustModel:
    """Choose the half-life, the trees' rounds and the blend on the fit half; calibrate on the fit half.

    Choices are made by models fitted on ``train`` and judged on ``fit``. With ``refit`` the shipped
    model is then refitted on ``train | fit`` (the fit half holds the latest answered leads: the ones that matter most
    under drift) with the early-stopped rounds scaled to the larger data, and calibrated on cross-fitted
    (out-of-fold) fit-half scores. ``groups`` (lead ids) keep a lead's snapshots in one fold.
    ``refit=False`` (the default, see ``TrainConfig.refit``) ships the model fitted on ``train`` and
    calibrates on its fit-half scores.
    ``fit_booster`` trains the trees (``fit_lightgbm``'s signature, sample weights included) on
    ``Rows.native``: here or on Dask. ``rows`` are the features, here or on workers; a logistic
    regression reads at most ``linear_rows`` of them (a seeded sample; None: all).
    """
    d = _Data(rows, y, as_of, feature_set, params, seed, fit_booster, linear_rows)
    choices: dict[str, float] = {}
    half_life, booster = _choose_half_life(d, train, fit, half_lives, choices)
    linear, cats = d.linear(train, recency_weights(as_of[train], half_life))
    fit_rows = rows.select(fit)
    tree_fit = scores(fit_rows, partial(tree_raw, booster))
    linear_fit = scores(fit_rows, partial(linear_raw, linear, cats))
    weight = _choose_weight(y[fit], tree_fit, linear_fit, blend_weights, choices)
    rounds = {"early_stopped_trees": int(booster.best_iteration or booster.current_iteration()),
              "train_rows": int(train.sum())}
    fitted_on = train
    if refit and fit.any():
        everything = fitted_on = train | fit
        rounds.update(refit_trees=_scaled(rounds["early_stopped_trees"], everything, train),
                      refit_rows=int(everything.sum()))
        raw_fit = _cross_fitted(d, train, fit, np.arange(len(y)) if groups is None else groups,
                                rounds["early_stopped_trees"], half_life, weight)
        booster, linear, cats = _refit(d, everything, rounds["refit_trees"], half_life, weight < 1.0)
    else:
        raw_fit = blend(tree_fit, linear_fit, weight)
    calibrator, losses = fit_calibrator(raw_fit, y[fit], seed)
    means = _linear_means(d, linear, cats, fitted_on) if weight < 1.0 else None
    return RobustModel(booster, linear if weight < 1.0 else None, cats, weight, half_life, calibrator, losses,
                       choices, rounds, np.clip(calibrator(raw_fit), 0.0, 1.0), means)


def base_rate_by_month(snapshots: pd.DataFrame, split) -> pd.DataFrame:  # noqa: ANN001 - training.split.Split
    """Snapshots and prospect rate per calendar month of the as-of time, for the training and validation parts."""
    parts = np.where(split.train, "training", np.where(split.fit_half | split.eval_half, "validation", ""))
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
