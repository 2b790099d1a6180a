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

from collections.abc import Sequence
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


def check_snapshots(snapshots: pd.DataFrame, leads: pd.DataFrame, feedback: pd.DataFrame,
                    need: Minimums = Minimums()) -> None:
    """Stop before any split when the snapshots cannot make a training run, saying what was found.

    The usual cause of none at all is an export that stamps every answer at the moment the lead
    arrived (the call that created the lead also decided it): there is no moment before the answer
    to learn from.
    """
    positives = int(snapshots["label"].sum()) if len(snapshots) else 0
    if len(snapshots) >= need.snapshots and positives >= need.positives + need.valid_positives:
        return
    found = f"{len(leads):,} leads gave {len(snapshots):,} labelled snapshots with {positives:,} prospects"
    created = leads.set_index("lead_id")["created_at"]
    first_answer = feedback.groupby("lead_id")["ts"].min() if len(feedback) else pd.Series(dtype=object)
    at_arrival = int((first_answer <= created.reindex(first_answer.index)).sum()) if len(first_answer) else 0
    if len(leads) and at_arrival == len(leads):
        raise TrainingStopped(
            f"not enough labelled data to train: {len(leads):,} leads, all answered at the moment they arrived: "
            "there is no moment before the answer to learn from. If the answer comes from the first contact, "
            "stamp it after the contact (or map the lead's creation to an earlier moment, such as the first "
            "visit or form), so that each lead has a time before sales decided about it.")
    why = f" ({at_arrival:,} of them answered at the moment they arrived)" if at_arrival else ""
    censored = snapshots.attrs.get("censored", 0)
    left = f"; {censored:,} snapshots left out because their horizon runs past the end of the data" if censored \
        else ""
    raise TrainingStopped(
        f"not enough labelled data to train: {found}{why}{left} (need {need.snapshots} snapshots and "
        f"{need.positives + need.valid_positives} prospects). Ingest more feedback, widen the horizon, or lower "
        "the minimums.")


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


DOMINANT_SHARE = 0.2
"""A profile attribute carrying this share of the model's total contribution (mean |contribution|) is named."""
DOMINANT_ANY_SHARE = 0.4
"""Any feature carrying this share is named (behaviour features are point-in-time by construction, so
only a larger share is worth a question)."""


def dominant_features(explanations: Sequence[np.ndarray], feature_set: FeatureSet, share: float = DOMINANT_SHARE,
                      any_share: float = DOMINANT_ANY_SHARE) -> dict[str, float]:
    """{feature: share of the total mean absolute contribution} for each dominant feature, largest first.

    ``explanations``: per-feature contributions of the shipped model on some rows, each (n, n_features + 1)
    (``RobustModel.explanations``): the served blend's, and each part's that enters it with a positive
    weight; a feature's share is its largest among them. A leak can hide in one part: the logistic
    part of a blend puts a little on every one of some fifty features, which dilutes the blend's
    shares (a planted call duration: 33% of the trees' total, 19% of a 0.75 blend's).

    Dominant: a profile attribute (a column of the export) at or above ``share``, any feature at or
    above ``any_share``.

    No statistic can tell when a column was written: a "duration of the call" recorded during the
    call that decides the outcome separates prospects only moderately on its own (far under the
    leakage guard's limit) yet becomes the model's strongest feature. Naming a feature that carries
    a dominant share, with the question whether it is known before contact, lets a person decide.
    """
    shares = np.zeros(len(feature_set.specs))
    for phi in explanations:
        if len(phi):
            mean_abs = np.abs(phi[:, :-1]).mean(axis=0)
            shares = np.maximum(shares, mean_abs / max(mean_abs.sum(), 1e-12))
    specs = feature_set.specs
    return {specs[i].name: float(shares[i]) for i in np.argsort(-shares)
            if shares[i] >= (share if specs[i].family == "profile" else any_share)}


def dominance_notes(shares: dict[str, float], feature_set: FeatureSet) -> list[str]:
    """The question to ask about each dominant feature, in plain words."""
    specs = {s.name: s for s in feature_set.specs}
    notes = []
    for name, share in shares.items():
        origin = ("a profile attribute from the mapping" if specs[name].family == "profile"
                  else "computed from events before the as-of time")
        notes.append(f"{name} carries {share:.0%} of the model's total contribution ({origin}): is it known before "
                     "contact? If it is written during or after the contact that decides the outcome (a call's "
                     "duration, a sales note), mark it after_contact in the mapping and retrain.")
    return notes
