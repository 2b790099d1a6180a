"""Fitting the calibrator that turns raw model scores into probabilities that mean what they say.

Two standard calibrators, isotonic regression and Platt scaling (a logistic fit on the raw
score's log-odds); which one is used is chosen by cross-validated log loss on held-out data, not
assumed: isotonic needs more data and can overfit small validation sets, Platt cannot bend. The
fitted :class:`runtime.calibration.Calibrator` is what a bundle carries and a running model applies.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from runtime.calibration import EPS, Calibrator, logit


def _fit(method: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist())
    lr = LogisticRegression(C=1e6).fit(logit(raw).reshape(-1, 1), y)
    return Calibrator("platt", [float(lr.coef_[0, 0]), float(lr.intercept_[0])], [])


def fit_calibrator(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[Calibrator, dict[str, float]]:
    """Choose isotonic or Platt by 5-fold log loss on (raw, y), refit the winner on all of it."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    losses = {}
    for method in ("isotonic", "platt"):
        pred = np.empty_like(raw, dtype=np.float64)
        for fit, held in folds.split(raw.reshape(-1, 1), y):
            pred[held] = _fit(method, raw[fit], y[fit])(raw[held])
        losses[method] = float(log_loss(y, np.clip(pred, EPS, 1 - EPS)))
    best = min(losses, key=losses.get)
    return _fit(best, raw, y), losses
