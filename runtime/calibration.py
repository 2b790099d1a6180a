"""The calibrator a bundle carries: raw model scores to probabilities that mean what they say.

Fitting it (isotonic or Platt, chosen by cross-validated log loss) is training's job, in
``training.calibration``; applying it is all a running model does, so only that lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, with probabilities clipped away from 0 and 1 so that no score becomes infinite."""
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    method: str  # "isotonic" or "platt"
    x: list[float]  # isotonic: thresholds of raw scores; platt: [coef, intercept]
    y: list[float]  # isotonic: calibrated values at the thresholds

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        coef, intercept = self.x
        return 1.0 / (1.0 + np.exp(-(coef * logit(raw) + intercept)))

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        return cls(method=data["method"], x=list(data["x"]), y=list(data["y"]))
