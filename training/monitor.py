"""Model health after go-live: the live period against the training window, and what sales said since.

Three questions, each answered from the store:

- Have the leads changed? Weekly snapshots of the live period against those of the training window,
  built the same way and vectorised by the champion's own vectoriser: PSI per feature, most moved
  first, in the feature registry's words.
- Have the scores changed? The distribution of the scores served (the score log) against the
  training window's, and the tier shares.
- Does the model still hold? Feedback that arrived after a score was served, joined through the
  score log: the score sales saw, not a recomputed one. ROC AUC and calibration of those scores,
  and per tier the share sales marked prospect, not prospect (by reason) or left unanswered, with
  the feedback delay. Only scores whose horizon has passed count, as in training.

Crossing a configured limit raises an alarm; ``prospect monitor`` exits non-zero on any alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.dataset import StoreFrames
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput
from runtime.bundle import Bundle
from training.drift import feature_drift, psi
from training.metrics import calibration_curve, expected_calibration_error
from runtime.tiers import TIERS

MAX_AGE_DAYS = 120.0
"""Only snapshots of leads up to this old are compared: unanswered old leads pile up, so their share
grows month by month whatever the leads do, which would read as drift in every time-since feature."""
SAMPLE = 20_000
"""Snapshots per side the drift is measured on (a seeded sample): PSI needs shares, not every row."""
MIN_ANSWERED_POSITIVES = 20


@dataclass(frozen=True)
class HealthLimits:
    feature_psi: float = 0.25
    score_psi: float = 0.25
    auc_drop: float = 0.10


@dataclass
class Health:
    version: str | None
    training_window: tuple[str, str]
    live_window: tuple[str, str]
    n_reference: int
    n_live: int
    drift: pd.DataFrame  # feature, description, family, psi, missing shares; most moved first
    score_psi: float
    score_source: str
    tiers: pd.DataFrame  # tier, training share, live share
    reference_p: np.ndarray
    live_p: np.ndarray
    feedback: pd.DataFrame  # per tier: scores, prospect, not_prospect, unanswered (shares) and reasons
    metrics: dict  # on served scores with feedback: n, prospects, roc_auc, ece, validation_roc_auc, delay
    calibration: pd.DataFrame
    alarms: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.alarms else 0

    def headline(self) -> dict:
        """The figures worth a gauge: what cron and dashboards watch."""
        return {"max_feature_psi": float(self.drift["psi"].max()) if len(self.drift) else 0.0,
                "score_psi": self.score_psi, "feedback_roc_auc": self.metrics.get("roc_auc", float("nan")),
                "feedback_ece": self.metrics.get("ece", float("nan")), "scores_with_feedback": self.metrics["n"],
                "feedback_delay_days": self.metrics.get("delay_days", float("nan")), "alarms": len(self.alarms),
                "live_prospect_ready_share": float(self.tiers.loc[self.tiers["tier"] == TIERS[0], "live share"].iloc[0])}


def all_snapshots(frames: StoreFrames, cadence_days: float, max_age_days: float = MAX_AGE_DAYS) -> pd.DataFrame:
    """Every weekly (lead, as-of) snapshot up to each lead's first answer, of leads up to ``max_age_days`` old.

    A zero-length horizon makes every snapshot observed, so the snapshot builder keeps them all;
    the labels are not used here.
    """
    snaps = build_snapshots(frames.leads, frames.events, frames.feedback, SnapshotConfig(cadence_days, 0.0))
    created = snaps["lead_id"].map(frames.leads.set_index("lead_id")["created_at"])
    return snaps[(snaps["as_of"] - created) <= pd.Timedelta(days=max_age_days)]


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n, random_state=seed).sort_index() if len(frame) > n else frame


def outcomes(served: pd.DataFrame, feedback: pd.DataFrame, horizon_days: float, until: pd.Timestamp) -> pd.DataFrame:
    """For each served score whose horizon has passed: sales' first answer after it, within the horizon.

    ``outcome`` is prospect, not_prospect or unanswered; ``reason`` the reason code of a not_prospect;
    ``delay_days`` the days from serving to the answer.
    """
    horizon = pd.Timedelta(days=horizon_days)
    done = served[served["served_at"] + horizon <= until].reset_index(drop=True)
    fb = feedback.sort_values("ts")
    joined = pd.merge_asof(done.sort_values("served_at").reset_index(),
                           fb[["lead_id", "ts", "outcome", "reason"]].rename(columns={"ts": "answered_at"}),
                           left_on="served_at", right_on="answered_at", by="lead_id", direction="forward",
                           allow_exact_matches=False).set_index("index").sort_index()
    answered = joined["answered_at"].notna() & (joined["answered_at"] <= joined["served_at"] + horizon)
    joined["outcome"] = joined["outcome"].where(answered, "unanswered")
    joined["reason"] = joined["reason"].where(answered & (joined["outcome"] == "not_prospect"))
    joined["delay_days"] = ((joined["answered_at"] - joined["served_at"]) / pd.Timedelta(days=1)).where(answered)
    return joined


def feedback_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Per tier: scores served, and the shares sales marked prospect, not prospect (by reason) or left unanswered."""
    rows = []
    for tier in TIERS:
        part = joined[joined["tier"] == tier]
        n = len(part)
        share = (lambda o, p=part, k=n: float((p["outcome"] == o).sum() / k) if k else float("nan"))
        reasons = part["reason"].dropna().value_counts()
        rows.append({"tier": tier, "scores": n, "prospect": share("prospect"), "not prospect": share("not_prospect"),
                     "unanswered": share("unanswered"),
                     "not-prospect reasons": ", ".join(f"{r} {c}" for r, c in reasons.items()) or "–"})
    return pd.DataFrame(rows)


def feedback_metrics(joined: pd.DataFrame, validation_auc: float) -> tuple[dict, pd.DataFrame]:
    y = (joined["outcome"] == "prospect").to_numpy().astype(int)
    p = joined["probability"].to_numpy(dtype=float)
    out = {"n": int(len(y)), "prospects": int(y.sum()), "validation_roc_auc": validation_auc,
           "delay_days": float(joined["delay_days"].median()) if joined["delay_days"].notna().any() else float("nan")}
    if len(np.unique(y)) == 2:
        out["roc_auc"] = float(roc_auc_score(y, p))
        out["ece"] = expected_calibration_error(y, p)
        return out, calibration_curve(y, p)
    return out, pd.DataFrame(columns=["predicted", "observed", "n"])


def check_health(bundle: Bundle, frames: StoreFrames, served: pd.DataFrame, since: pd.Timestamp | None = None,
                 days: float = 90.0, limits: HealthLimits = HealthLimits(), seed: int = 7) -> Health:
    """Compare ``days`` of live period from ``since`` (default: the day after the training window) with the
    last ``days`` of the training window.

    Periods of equal length on both sides: a lead's features depend on its age, and a window holding
    only young or only old leads would look shifted when nothing changed.
    """
    meta = bundle.metadata
    end = pd.Timestamp(meta["data_window"][1], tz="UTC") + pd.Timedelta(days=1)
    since = since if since is not None else end
    length = pd.Timedelta(days=days)
    snaps = all_snapshots(frames, meta["cadence_days"])
    until = min(since + length, snaps["as_of"].max())
    reference = _sample(snaps[(snaps["as_of"] >= end - length) & (snaps["as_of"] < end)], SAMPLE, seed)
    live = _sample(snaps[(snaps["as_of"] >= since) & (snaps["as_of"] < until)], SAMPLE, seed)
    if live.empty:
        raise ValueError(f"no lead activity after {since:%Y-%m-%d}: nothing to compare with the training window")
    vec = bundle.vectorizer
    matrices = [vec.transform_matrix(FeatureInput(s[["lead_id", "as_of"]], frames.leads, frames.events, frames.history))
                for s in (reference, live)]
    drift = feature_drift(*matrices, vec.feature_set_.specs)
    reference_p = bundle.probability(matrices[0])
    recent = served[(served["served_at"] >= since) & (served["served_at"] < until)]
    if len(recent):
        live_p, source = recent["probability"].to_numpy(dtype=float), f"{len(recent):,} scores served (score log)"
    else:
        live_p, source = bundle.probability(matrices[1]), "no scores logged: recomputed for the live snapshots"
    tiers = pd.DataFrame({"tier": TIERS,
                          "training share": [float(np.mean(bundle.thresholds.tier(reference_p) == t)) for t in TIERS],
                          "live share": [float(np.mean(bundle.thresholds.tier(live_p) == t)) for t in TIERS]})
    answered_until = frames.feedback["ts"].max() if len(frames.feedback) else until
    joined = outcomes(recent, frames.feedback, meta["horizon_days"], answered_until)
    metrics, calibration = feedback_metrics(joined, float(meta["metrics"]["model"]["roc_auc"]))
    health = Health(meta.get("version"), tuple(meta["data_window"]), (f"{since:%Y-%m-%d}", f"{until:%Y-%m-%d}"),
                    len(reference), len(live), drift, psi(reference_p, live_p), source, tiers, reference_p, live_p,
                    feedback_table(joined), metrics, calibration)
    health.alarms = alarms(health, limits)
    return health


def alarms(h: Health, limits: HealthLimits) -> list[str]:
    """The limits crossed, each in a sentence."""
    out = [f"{r.description} moved (PSI {r.psi:.2f} > {limits.feature_psi:g})"
           for r in h.drift.itertuples() if r.psi > limits.feature_psi]
    if h.score_psi > limits.score_psi:
        out.append(f"the score distribution moved (PSI {h.score_psi:.2f} > {limits.score_psi:g})")
    auc, valid = h.metrics.get("roc_auc"), h.metrics["validation_roc_auc"]
    if auc is not None and h.metrics["prospects"] >= MIN_ANSWERED_POSITIVES and auc < valid - limits.auc_drop:
        out.append(f"ROC AUC on feedback for served scores fell to {auc:.3f} (validation {valid:.3f})")
    return out
