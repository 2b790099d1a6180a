"""Tiers: where sales draws the line, chosen from validation data and saved with the model."""

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

    def tier(self, p: np.ndarray) -> np.ndarray:
        return np.where(p >= self.ready, TIERS[0], np.where(p >= self.warming, TIERS[1], TIERS[2]))

    def to_dict(self) -> dict:
        return asdict(self)


def choose_thresholds(p: np.ndarray, ready_share: float = 0.05, warming_share: float = 0.15) -> Thresholds:
    """Cut-offs that send the top ``ready_share`` of leads to sales and flag the next ``warming_share``."""
    ready = float(np.quantile(p, 1 - ready_share))
    warming = float(np.quantile(p, 1 - ready_share - warming_share))
    return Thresholds(ready=ready, warming=min(warming, ready), ready_share=ready_share, warming_share=warming_share)
