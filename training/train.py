"""One training run: snapshots -> features -> split -> guards -> LightGBM -> calibration -> evaluation.

Seeded end to end: the same store content and config give the same model, thresholds and figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
import pandas as pd

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput, FeatureVectorizer
from training.baselines import logistic_baseline, logistic_scores, rule_score
from training.calibration import Calibrator, fit_calibrator
from training.guards import Minimums, check_leakage, check_minimum_data
from training.metrics import by_group, evaluate, gains_curve
from training.model import ModelParams, fit_lightgbm, raw_scores
from training.split import Split, split_snapshots
from training.tiers import Thresholds, choose_thresholds

GUARD_SAMPLE = 200_000
"""The leakage guard scores each feature on at most this many training snapshots (seeded sample)."""


@dataclass(frozen=True)
class TrainConfig:
    snapshots: SnapshotConfig = SnapshotConfig()
    model: ModelParams = ModelParams()
    valid_share: float = 0.25
    seed: int = 7
    ready_share: float = 0.05
    warming_share: float = 0.15
    allow_leaky: tuple[str, ...] = ()
    drop_after_contact: bool = False
    minimums: Minimums = Minimums()
    segment: str | None = None
    """Attribute to break the evaluation down by (default: the first categorical profile attribute)."""


@dataclass
class TrainResult:
    booster: lgb.Booster
    calibrator: Calibrator
    vectorizer: FeatureVectorizer
    thresholds: Thresholds
    score_scale: np.ndarray  # 101 quantiles of calibrated validation probabilities (the 0-100 score)
    split: Split
    metrics: dict[str, dict[str, float]]  # model / rule_score / logistic -> figures on the eval half
    per_channel: pd.DataFrame
    per_segment: pd.DataFrame
    gains: pd.DataFrame
    importance: pd.DataFrame
    eval_labels: np.ndarray
    eval_probabilities: np.ndarray
    example_matrix: np.ndarray  # a few held-out feature rows: the MLflow input example
    calibration_losses: dict[str, float]
    leaky_allowed: dict[str, str]
    data_window: tuple[str, str]
    trained_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass
class Prepared:
    """Snapshots and their features, computed once; splits and folds reuse them."""

    snapshots: pd.DataFrame
    matrix: np.ndarray
    y: np.ndarray
    vectorizer: FeatureVectorizer


def prepare(frames: StoreFrames, taxonomy: Taxonomy, config: TrainConfig = TrainConfig()) -> Prepared:
    attributes = tuple(a for a in frames.attributes if not (config.drop_after_contact and a.role == "after_contact"))
    snapshots = build_snapshots(frames.leads, frames.events, frames.feedback, config.snapshots,
                                inbound_types=taxonomy.inbound_types)
    X = FeatureInput(snapshots[["lead_id", "as_of"]], frames.leads, frames.events)
    vectorizer = FeatureVectorizer(taxonomy=taxonomy, attributes=attributes).fit(X)
    return Prepared(snapshots, vectorizer.transform_matrix(X), snapshots["label"].to_numpy().astype(np.int64),
                    vectorizer)


def train(frames: StoreFrames, taxonomy: Taxonomy, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train, calibrate and evaluate a model on the store's leads, events and feedback."""
    prepared = prepare(frames, taxonomy, config)
    split = split_snapshots(prepared.snapshots, config.snapshots.horizon_days, config.valid_share, config.seed)
    return fit(prepared, split, config)


def fit(prepared: Prepared, split: Split, config: TrainConfig = TrainConfig(),
        fit_booster: Callable[..., lgb.Booster] = fit_lightgbm) -> TrainResult:
    """Guards, LightGBM on ``split.train``, early stopping and calibration on ``split.fit``, figures on ``split.eval``.

    ``fit_booster`` trains the trees (``fit_lightgbm``'s signature): here, or on a Dask cluster.
    """
    snapshots, matrix, y, vectorizer = prepared.snapshots, prepared.matrix, prepared.y, prepared.vectorizer
    fs = vectorizer.feature_set_
    check_minimum_data(y[split.train], y[split.fit | split.eval], config.minimums)
    rng = np.random.default_rng(config.seed)
    train_idx = np.flatnonzero(split.train)
    sample = np.sort(rng.choice(train_idx, GUARD_SAMPLE, replace=False)) if train_idx.size > GUARD_SAMPLE else train_idx
    allowed = check_leakage(matrix[sample], y[sample], fs, config.allow_leaky, config.seed)

    categorical = [i for i, s in enumerate(fs.specs) if s.dtype == "category"]
    booster = fit_booster(matrix[split.train], y[split.train], matrix[split.fit], y[split.fit], categorical,
                          config.model, config.seed)
    calibrator, losses = fit_calibrator(raw_scores(booster, matrix[split.fit]), y[split.fit], config.seed)
    p_fit = calibrator(raw_scores(booster, matrix[split.fit]))
    p_eval = calibrator(raw_scores(booster, matrix[split.eval]))
    thresholds = choose_thresholds(p_fit, config.ready_share, config.warming_share)

    frame = vectorizer.to_frame(matrix)
    y_eval = y[split.eval]
    logistic, cats = logistic_baseline(frame[split.train], y[split.train], fs, config.seed)
    metrics = {
        "model": evaluate(y_eval, p_eval),
        # a points score ranks but is no probability: its calibration figures are not applicable
        "rule_score": evaluate(y_eval, rule_score(frame[split.eval], fs), probability=False),
        "logistic": evaluate(y_eval, logistic_scores(logistic, frame[split.eval], cats)),
    }
    eval_frame = frame[split.eval]
    segment = config.segment or next((s.name.removeprefix("attr_") for s in fs.specs
                                      if s.family == "profile" and s.dtype == "category"), None)
    per_segment = by_group(y_eval, p_eval, eval_frame[f"attr_{segment}"]) if segment else pd.DataFrame()
    importance = pd.DataFrame({
        "feature": fs.names,
        "gain": booster.feature_importance("gain"),
        "family": [s.family for s in fs.specs],
        "description": [s.description for s in fs.specs],
    }).sort_values("gain", ascending=False, ignore_index=True)
    as_of = snapshots["as_of"]
    return TrainResult(
        booster=booster, calibrator=calibrator, vectorizer=vectorizer, thresholds=thresholds,
        score_scale=np.quantile(p_fit, np.linspace(0, 1, 101)), split=split,
        metrics=metrics, per_channel=by_group(y_eval, p_eval, eval_frame["origin"]), per_segment=per_segment,
        gains=gains_curve(y_eval, p_eval), importance=importance, eval_labels=y_eval, eval_probabilities=p_eval,
        example_matrix=matrix[split.eval][:5], calibration_losses=losses, leaky_allowed=allowed,
        data_window=(f"{as_of.min():%Y-%m-%d}", f"{as_of.max():%Y-%m-%d}"),
    )
