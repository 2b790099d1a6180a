"""What the marketing report shows, computed from the champion and the store (no drawing, no HTML).

Everything is measured on the champion's own held-out (eval) leads, rebuilt from the split
parameters saved in its bundle (``training.evaluation``), the window promotion compares models on, so the page describes how the model does on leads it has not
learned from. Importance is the mean absolute per-feature contribution (in log-odds, the values the
per-lead reasons come from: TreeSHAP's, and for a blend both parts' as blended) next to LightGBM's
split gain (of the trees alone); both are grouped by the registry's feature families.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from runtime.bundle import Bundle
from training.evaluation import SplitParams, evaluation_window, window_probabilities
from training.metrics import calibration_curve, gains_curve
from runtime.tiers import TIERS

CONTRIBUTION_SAMPLE = 20_000
"""Contributions cost about 0.2 ms a row; a sample this size gives stable means in a few seconds."""
DEPENDENCE_FAMILIES = ("recency", "repetition", "channel_depth")
CUTOFF_SCORES = (50, 60, 70, 80, 85, 90, 95, 97, 99)


@dataclass
class ReportNumbers:
    metadata: dict
    window: str  # which snapshots the figures describe
    n_snapshots: int
    n_leads: int
    base_rate: float
    importance: pd.DataFrame  # feature, description, family, mean_abs_contribution, gain
    families: pd.DataFrame  # family, mean_abs_contribution, gain (shares of the total)
    dependence: dict[str, pd.DataFrame]  # feature -> value, contribution (a sample), binned probability
    by_origin: pd.DataFrame  # origin, snapshots, leads, prospects, rate
    by_stage: pd.DataFrame  # deepest stage reached, snapshots, leads, prospects, rate
    calibration: pd.DataFrame  # predicted, observed, n
    gains: pd.DataFrame  # share_of_leads, share_of_prospects
    scores: pd.DataFrame  # score, tier, label (every held-out snapshot)
    tiers: pd.DataFrame  # tier, snapshots, share, prospects, rate
    cutoffs: pd.DataFrame  # score cut-off, probability, leads per week, precision, share of prospects found
    metrics: pd.DataFrame  # model vs baselines on the training run's validation part
    ready_threshold: float  # the probability the prospect-ready tier starts at


def compute(bundle: Bundle, frames: StoreFrames, taxonomy: Taxonomy, seed: int = 7) -> ReportNumbers:
    meta = bundle.metadata
    window = evaluation_window(SplitParams.from_metadata(meta), frames, taxonomy)
    snaps, split, held = window.all_snapshots, window.split, window.snapshots
    matrix, p = window_probabilities(bundle, window, frames)
    y = window.y
    specs = bundle.vectorizer.feature_set_.specs
    names = [s.name for s in specs]

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(held), min(CONTRIBUTION_SAMPLE, len(held)), replace=False))
    booster = bundle.booster
    contributions = bundle.contributions(matrix[sample])[:, :-1]
    gain = booster.feature_importance("gain", iteration=booster.best_iteration or None)
    importance = pd.DataFrame({
        "feature": names, "description": [s.description for s in specs], "family": [s.family for s in specs],
        "mean_abs_contribution": np.abs(contributions).mean(axis=0), "gain": gain / max(gain.sum(), 1e-12),
    }).sort_values("mean_abs_contribution", ascending=False, ignore_index=True)
    families = importance.groupby("family", as_index=False)[["mean_abs_contribution", "gain"]].sum()
    families["mean_abs_contribution"] /= max(families["mean_abs_contribution"].sum(), 1e-12)
    families = families.sort_values("mean_abs_contribution", ascending=False, ignore_index=True)

    dependence = {}
    for family in DEPENDENCE_FAMILIES:
        top = importance[importance["family"] == family].head(1)
        if top.empty:
            continue
        name = top["feature"].iloc[0]
        col = names.index(name)
        dependence[name] = pd.DataFrame({"value": matrix[sample, col].astype(float),
                                         "contribution": contributions[:, col],
                                         "probability": p[sample]})

    stage_col = names.index("deepest_stage")
    stages = ["none yet", *bundle.vectorizer.feature_set_.vocab.stages]
    level = np.nan_to_num(matrix[:, stage_col].astype(float)).astype(int)
    leads = frames.leads.set_index("lead_id")
    origin = held["lead_id"].map(leads["source"]).fillna("unknown").to_numpy() if "source" in leads else \
        np.full(len(held), "unknown")
    by_origin = _rates(pd.DataFrame({"origin": origin, "lead_id": held["lead_id"], "label": y}), "origin")
    by_stage = _rates(pd.DataFrame({"deepest stage reached": [stages[min(v, len(stages) - 1)] for v in level],
                                    "lead_id": held["lead_id"], "label": y}), "deepest stage reached")
    order = {s: i for i, s in enumerate(stages)}
    by_stage = by_stage.sort_values("deepest stage reached", key=lambda s: s.map(order), ignore_index=True)

    score = bundle.score(p)
    tier = bundle.thresholds.tier(p)
    scores = pd.DataFrame({"score": score, "tier": tier, "label": y})
    tiers = scores.groupby("tier").agg(snapshots=("label", "size"), prospects=("label", "sum")).reindex(TIERS,
                                                                                                    fill_value=0)
    tiers["share"] = tiers["snapshots"] / max(len(scores), 1)
    tiers["rate"] = tiers["prospects"] / tiers["snapshots"].clip(lower=1)
    tiers = tiers.reset_index(names="tier")

    weeks = max((held["as_of"].max() - held["as_of"].min()) / pd.Timedelta(days=7), 1.0)
    # the held-out half holds a share of the window's leads; scale the weekly counts to all of them
    window_leads = snaps.loc[split.fit_half | split.eval_half, "lead_id"].nunique()
    scale = window_leads / max(held["lead_id"].nunique(), 1)
    rows = []
    for cut in CUTOFF_SCORES:
        chosen = score >= cut
        rows.append({"score at least": cut,
                     "probability at least": float(bundle.score_scale[cut]),
                     "leads a week to sales": chosen.sum() / weeks * scale,
                     "become prospects": y[chosen].mean() if chosen.any() else float("nan"),
                     "share of all prospects": y[chosen].sum() / max(y.sum(), 1)})
    metrics = pd.DataFrame(meta["metrics"]).T.reset_index(names="model")
    return ReportNumbers(
        metadata=meta, window=split.description, n_snapshots=len(held), n_leads=int(held["lead_id"].nunique()),
        base_rate=float(y.mean()) if len(y) else float("nan"), importance=importance, families=families,
        dependence=dependence, by_origin=by_origin, by_stage=by_stage, calibration=calibration_curve(y, p),
        gains=gains_curve(y, p), scores=scores, tiers=tiers, cutoffs=pd.DataFrame(rows), metrics=metrics,
        ready_threshold=bundle.thresholds.ready)


def _rates(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    out = frame.groupby(by).agg(snapshots=("label", "size"), leads=("lead_id", "nunique"),
                                prospects=("label", "sum")).reset_index()
    out["rate"] = out["prospects"] / out["snapshots"]
    return out.sort_values("snapshots", ascending=False, ignore_index=True)
