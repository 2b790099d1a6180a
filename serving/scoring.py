"""Scoring leads with the champion bundle: the one function the CLI and the HTTP service share.

Features come from the same vectoriser training used; the probability is the calibrated one; the
reasons are LightGBM's per-feature contributions for this lead (in log-odds), worded through the
feature registry so that a salesperson can read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.registry import FeatureSpec
from features.vectorizer import FeatureInput, to_micros
from store.event_store import EventStore
from training.bundle import Bundle

REASONS = 3


@dataclass(frozen=True)
class Reason:
    feature: str
    text: str  # a plain sentence with the value behind it
    impact: float  # contribution to the log-odds; positive raises the probability


@dataclass
class Scored:
    lead_id: str
    as_of: pd.Timestamp
    probability: float
    score: int
    tier: str
    reasons_for: list[Reason] = field(default_factory=list)
    reasons_against: list[Reason] = field(default_factory=list)
    model_version: str | None = None


def describe_value(spec: FeatureSpec, value: float, categories: tuple[str, ...] | None) -> str:
    """The value of a feature as a salesperson would say it."""
    if spec.dtype == "category":
        return "unknown" if math.isnan(value) else categories[int(value)]
    if math.isnan(value):
        return "none yet" if spec.unit == "days" else "unknown"
    if spec.unit == "days":
        return f"{value:.0f} days" if value >= 1.5 else ("1 day" if value >= 0.5 else "less than a day")
    if spec.unit == "share":
        return f"{value:.0%}"
    if spec.unit in ("count", "level"):
        return f"{value:.0f}"
    if spec.unit == "hours":
        return f"{value:.0f} hours"
    return f"{value:.2f}"


class Scorer:
    """Scores leads from the store or from given data with one loaded bundle."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.specs = bundle.vectorizer.feature_set_.specs
        self.categories = bundle.vectorizer.feature_set_.categories

    @property
    def version(self) -> str | None:
        return self.bundle.metadata.get("version")

    def score_matrix(self, matrix: np.ndarray, lead_ids: list[str], as_of: pd.DatetimeIndex) -> list[Scored]:
        p = self.bundle.probability(matrix)
        scores = self.bundle.score(p)
        tiers = self.bundle.thresholds.tier(p)
        booster = self.bundle.booster
        contributions = booster.predict(matrix, pred_contrib=True, num_iteration=booster.best_iteration or None)
        out = []
        for i, lead_id in enumerate(lead_ids):
            impact = contributions[i, :-1]  # the last column is the bias
            order = np.argsort(impact)
            reasons = [self._reason(j, matrix[i, j], impact[j]) for j in order]
            out.append(Scored(
                lead_id=lead_id, as_of=as_of[i], probability=float(p[i]), score=int(scores[i]), tier=str(tiers[i]),
                reasons_for=[r for r in reversed(reasons) if r.impact > 0][:REASONS],
                reasons_against=[r for r in reasons if r.impact < 0][:REASONS],
                model_version=self.version,
            ))
        return out

    def _reason(self, col: int, value: float, impact: float) -> Reason:
        spec = self.specs[col]
        text = f"{spec.description}: {describe_value(spec, float(value), self.categories.get(spec.name))}"
        return Reason(feature=spec.name, text=text, impact=float(impact))

    def score_frames(self, snapshots: pd.DataFrame, leads: pd.DataFrame, events: pd.DataFrame) -> list[Scored]:
        """Score (lead_id, as_of) rows from DataFrames (batch scoring of a file or of the store)."""
        matrix = self.bundle.vectorizer.transform_matrix(FeatureInput(snapshots, leads, events))
        return self.score_matrix(matrix, snapshots["lead_id"].tolist(), pd.DatetimeIndex(snapshots["as_of"]))

    def score_stored_lead(self, store: EventStore, lead_id: str, as_of: pd.Timestamp) -> Scored:
        """Score one lead of the store at ``as_of`` (its events read through the index)."""
        lead = store.lead(lead_id)
        if lead is None:
            raise KeyError(lead_id)
        events = store.lead_events(lead_id)
        as_of_us = int(to_micros(pd.DatetimeIndex([as_of]), "as_of")[0])
        matrix = self.bundle.vectorizer.transform_lead(lead, events.ts_us, events.type, list(events.channel), as_of_us)
        return self.score_matrix(matrix, [lead_id], pd.DatetimeIndex([as_of]))[0]
