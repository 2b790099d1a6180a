"""The tiers a bundle carries: the cut-offs sales draws its lines at, applied to calibrated probabilities.

Choosing the cut-offs (a share of validation leads, or the sales team's weekly capacity) is
training's job, in ``training.tiers``; a running model only applies the saved ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

TIERS = ("prospect-ready", "warming", "early lead")


@dataclass(frozen=True)
class Thresholds:
    ready: float  # calibrated probability at or above which a lead is prospect-ready
    warming: float
    ready_share: float  # the share of validation snapshots each cut-off was chosen to pass
    warming_share: float
    policy: str = "percentiles"  # what set the cut-offs, in words (model card, /model_info)
    capacity_per_week: float | None = None

    def tier(self, p: np.ndarray) -> np.ndarray:
        return np.where(p >= self.ready, TIERS[0], np.where(p >= self.warming, TIERS[1], TIERS[2]))

    def to_dict(self) -> dict:
        return asdict(self)
