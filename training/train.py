"""One training run: snapshots -> features -> split -> guards -> LightGBM -> calibration -> evaluation.

Seeded end to end: the same store content and config give the same model, thresholds and figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
import pandas as pd

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames, store_snapshots
from features.history import first_recorded_after_touch, first_sales_touch
from features.snapshots import SnapshotConfig
from features.vectorizer import FeatureInput, FeatureVectorizer
from runtime.calibration import Calibrator
from runtime.tiers import Thresholds
from training.baselines import rule_score
from training.guards import (Minimums, check_leakage, check_minimum_data, check_snapshots, dominance_notes,
                             dominant_features)
from training.metrics import by_group, evaluate, gains_curve
from training.model import ModelParams, fit_lightgbm
from training.robust import (BLEND_WEIGHTS, HALF_LIVES, RobustModel, base_rate_by_month, drift_line, fit_linear,
                             fit_robust, linear_raw)
from training.rows import LocalRows, Rows, bounded, column, scores
from training.split import Split, split_snapshots
from training.tiers import arrivals_per_week, capacity_thresholds, choose_thresholds

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
    half_lives: tuple[float | None, ...] = HALF_LIVES
    """Candidate half-lives (days) of the recency weights; the fit half chooses (None: equal weights)."""
    blend_weights: tuple[float, ...] = BLEND_WEIGHTS
    """Candidate weights of LightGBM in the blend with the logistic regression ((1.0,): LightGBM alone)."""
    refit: bool = False
    """Refit the chosen model on the training and fit-half leads, calibrated on cross-fitted scores
    (False: ship the model fitted on the training part alone, calibrated on its fit-half scores).
    Off by default: measured side by side it gained 0.001 ROC AUC on X Education (5-fold, within
    noise) but lost 0.004 out of time on generated data and 0.002 on the drift scenario, where it
    fell under the logistic regression (see the README's training section)."""
    capacity_per_week: float | None = None
    """Set the prospect-ready cut-off so that about this many leads a week reach it (else: ready_share)."""
    client_rows: int = 200_000
    """When the feature rows stay on a cluster's workers (``--engine dask``): at most this many rows
    of the matrix are brought to the client at once -- the seeded samples the leakage guard and the
    logistic regressions (the blend's and the baseline's) are fitted on. 200,000 rows of about 60
    float32 features are about 50 MB (twice that as a DataFrame), whatever the data's size. A
    single-process run holds the whole matrix anyway, and its logistic regressions read every
    training row."""


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
    robust: RobustModel  # the blend, half-life and the fit-half figures behind each choice
    drift: pd.DataFrame  # part, month, snapshots, base_rate
    drift_line: str
    dominance: list[str]  # features carrying a dominant share of the model, with the question to ask
    baseline_scores: dict[str, np.ndarray]  # rule_score / logistic -> their scores on the eval half
    trained_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass
class Prepared:
    """Snapshots and their features, computed once; splits and folds reuse them."""

    snapshots: pd.DataFrame
    matrix: np.ndarray | Rows
    """The feature matrix here, or rows left on a cluster's workers (``training.dask_rows.DaskRows``)."""
    y: np.ndarray
    vectorizer: FeatureVectorizer
    late_recorded: dict[str, float] = field(default_factory=dict)
    """Per attribute with history: share of its leads whose value was first written after the first sales touch."""

    def rows(self) -> Rows:
        if isinstance(self.matrix, np.ndarray):
            return LocalRows(self.matrix, self.vectorizer.to_frame(self.matrix))
        return self.matrix


def prepare(frames: StoreFrames, taxonomy: Taxonomy, config: TrainConfig = TrainConfig()) -> Prepared:
    attributes = tuple(a for a in frames.attributes if not (config.drop_after_contact and a.role == "after_contact"))
    snapshots = store_snapshots(frames, taxonomy, config.snapshots)
    check_snapshots(snapshots, frames.leads, frames.feedback, config.minimums)
    X = FeatureInput(snapshots[["lead_id", "as_of"]], frames.leads, frames.events, frames.history)
    vectorizer = FeatureVectorizer(taxonomy=taxonomy, attributes=attributes).fit(X)
    late = {} if frames.history is None or frames.history.empty else first_recorded_after_touch(
        frames.history, frames.leads["lead_id"],
        first_sales_touch(frames.leads, frames.events, frames.feedback, taxonomy.inbound_types))
    return Prepared(snapshots, vectorizer.transform_matrix(X), snapshots["label"].to_numpy().astype(np.int64),
                    vectorizer, late)


def train(frames: StoreFrames, taxonomy: Taxonomy, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train, calibrate and evaluate a model on the store's leads, events and feedback."""
    prepared = prepare(frames, taxonomy, config)
    split = split_snapshots(prepared.snapshots, config.snapshots.horizon_days, config.valid_share, config.seed)
    return fit(prepared, split, config, arrivals_per_week(frames.leads["created_at"]))


def _rule_score(feature_set, matrix: np.ndarray, frame: pd.DataFrame) -> np.ndarray:  # noqa: ANN001, ARG001
    """The rule score of a block of rows (``Rows.map``'s signature)."""
    return rule_score(frame, feature_set)


DOMINANCE_SAMPLE = 5_000
"""Fit-half rows whose contributions decide which features dominate the model."""


def _client_limit(wanted: int, rows: Rows, config: TrainConfig) -> int:
    """Rows a step may read whole: ``wanted``, and no more than ``config.client_rows`` when the rows are elsewhere."""
    return wanted if rows.holds_all else min(wanted, config.client_rows)


def _guard(prepared: Prepared, rows: Rows, split: Split, config: TrainConfig) -> dict[str, str]:
    y = prepared.y
    check_minimum_data(y[split.train], y[split.fit_half | split.eval_half], config.minimums)
    sample = bounded(np.flatnonzero(split.train), _client_limit(GUARD_SAMPLE, rows, config), config.seed)
    return check_leakage(rows.take(sample)[0], y[sample], prepared.vectorizer.feature_set_, config.allow_leaky,
                         config.seed, prepared.late_recorded)


def fit(prepared: Prepared, split: Split, config: TrainConfig = TrainConfig(), arrivals: float | None = None,
        fit_booster: Callable[..., lgb.Booster] = fit_lightgbm) -> TrainResult:
    """Guards, the drift-robust model on ``split.train`` (choices and calibration on ``split.fit_half``), figures on ``split.eval_half``.

    ``arrivals`` (leads a week, recently) sets the tiers when ``config.capacity_per_week`` asks for a capacity.
    ``fit_booster`` trains the trees (``fit_lightgbm``'s signature): here, or on a Dask cluster, on
    what ``Prepared.rows()`` gives it. When the rows are on workers only vectors and samples of at
    most ``config.client_rows`` rows come here.
    """
    snapshots, y, vectorizer = prepared.snapshots, prepared.y, prepared.vectorizer
    rows = prepared.rows()
    linear_rows = None if rows.holds_all else config.client_rows
    fs = vectorizer.feature_set_
    allowed = _guard(prepared, rows, split, config)
    model = fit_robust(rows, y, snapshots["as_of"], split.train, split.fit_half, fs, config.model, config.seed,
                       config.half_lives, config.blend_weights, fit_booster,
                       groups=snapshots["lead_id"].to_numpy(), refit=config.refit, linear_rows=linear_rows)
    booster = model.booster
    p_fit = model.fit_probabilities  # out of fold: the refitted model has seen the fit half
    eval_rows = rows.select(split.eval_half)
    p_eval = scores(eval_rows, model.probability)
    thresholds = choose_thresholds(p_fit, config.ready_share, config.warming_share)
    if config.capacity_per_week is not None:
        thresholds = capacity_thresholds(p_fit, snapshots.loc[split.fit_half, "lead_id"].to_numpy(),
                                         config.capacity_per_week, arrivals, config.warming_share)
    y_eval = y[split.eval_half]
    logistic, cats = fit_linear(rows, y, split.train, fs, config.seed, linear_rows)
    baselines = {"rule_score": scores(eval_rows, partial(_rule_score, fs)),
                 "logistic": scores(eval_rows, partial(linear_raw, logistic, cats))}
    metrics = {
        "model": evaluate(y_eval, p_eval),
        # a points score ranks but is no probability: its calibration figures are not applicable
        "rule_score": evaluate(y_eval, baselines["rule_score"], probability=False),
        "logistic": evaluate(y_eval, baselines["logistic"]),
    }
    segment = config.segment or next((s.name.removeprefix("attr_") for s in fs.specs
                                      if s.family == "profile" and s.dtype == "category"), None)
    per_segment = by_group(y_eval, p_eval, column(eval_rows, f"attr_{segment}")) if segment else pd.DataFrame()
    importance = pd.DataFrame({
        "feature": fs.names,
        "gain": booster.feature_importance("gain"),
        "family": [s.family for s in fs.specs],
        "description": [s.description for s in fs.specs],
    }).sort_values("gain", ascending=False, ignore_index=True)
    fit_rows = np.flatnonzero(split.fit_half)[:_client_limit(DOMINANCE_SAMPLE, rows, config)]
    shipped = model.explanations(*rows.take(fit_rows))  # the blend as served, and its parts
    drift = base_rate_by_month(snapshots, split)
    as_of = snapshots["as_of"]
    return TrainResult(
        booster=booster, calibrator=model.calibrator, vectorizer=vectorizer, thresholds=thresholds,
        score_scale=np.quantile(p_fit, np.linspace(0, 1, 101)), split=split,
        metrics=metrics, per_channel=by_group(y_eval, p_eval, column(eval_rows, "origin")), per_segment=per_segment,
        gains=gains_curve(y_eval, p_eval), importance=importance, eval_labels=y_eval, eval_probabilities=p_eval,
        example_matrix=rows.take(np.flatnonzero(split.eval_half)[:5])[0],
        calibration_losses=model.calibration_losses, leaky_allowed=allowed,
        data_window=(f"{as_of.min():%Y-%m-%d}", f"{as_of.max():%Y-%m-%d}"), robust=model, drift=drift,
        drift_line=drift_line(drift, y[split.train], y[split.fit_half | split.eval_half]), baseline_scores=baselines,
        dominance=dominance_notes(dominant_features(shipped, fs), fs),
    )
