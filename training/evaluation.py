"""A bundle's evaluation window, rebuilt from the split parameters saved in the bundle.

Training holds out the latest leads and splits them by lead into a *fit* half (early stopping,
calibration, blending) and an *eval* half (the reported figures). Whoever later measures the model
-- promotion, the report, the model card -- must measure it on leads it was not fitted on, so the
split is not re-derived with default settings: the bundle saves its cadence, horizon, validation
share, seed and cutoff, and :func:`evaluation_window` rebuilds exactly that split on the store's
current data. Leads that arrived after training are in the window too (the model has never seen
them); the fit half is recognised by a seeded hash of the lead id, so it stays the same as data grows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames, store_snapshots
from features.snapshots import SnapshotConfig
from features.vectorizer import FeatureInput
from training.split import Split, split_snapshots


@dataclass(frozen=True)
class SplitParams:
    """What it takes to rebuild a training run's split: saved in the bundle's metadata as ``split_params``."""

    cadence_days: float = 7.0
    horizon_days: float = 30.0
    valid_share: float = 0.25
    seed: int = 7
    cutoff: str | None = None  # ISO time of the first validation arrival; None for data without timestamps

    @property
    def snapshots(self) -> SnapshotConfig:
        return SnapshotConfig(self.cadence_days, self.horizon_days)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict) -> SplitParams:
        """The saved parameters; a bundle from before they were saved falls back to its cadence, horizon and seed."""
        if "split_params" in metadata:
            return cls(**metadata["split_params"])
        return cls(metadata["cadence_days"], metadata["horizon_days"], seed=metadata.get("seed", 7))


def split_with(snapshots: pd.DataFrame, params: SplitParams) -> Split:
    """The split a run with these parameters made, applied to ``snapshots`` (its saved cutoff, if any)."""
    cutoff = pd.Timestamp(params.cutoff) if params.cutoff else None
    return split_snapshots(snapshots, params.horizon_days, params.valid_share, params.seed, cutoff=cutoff)


@dataclass
class Window:
    """Snapshots a model was not fitted on, and the split they come from."""

    snapshots: pd.DataFrame  # lead_id, as_of, label of the window's rows, index reset
    split: Split  # over all snapshots of the current data
    all_snapshots: pd.DataFrame
    mask: np.ndarray  # the window's rows among all_snapshots

    @property
    def y(self) -> np.ndarray:
        return self.snapshots["label"].to_numpy().astype(np.int64)

    def describe(self) -> str:
        s = self.snapshots
        return (f"{s['lead_id'].nunique():,} held-out leads ({len(s):,} snapshots, {int(s['label'].sum()):,} "
                f"prospects) of the split: {self.split.description}")


def evaluation_window(params: SplitParams, frames: StoreFrames, taxonomy: Taxonomy,
                      not_fitted_by: SplitParams | None = None) -> Window:
    """The eval half of the split ``params`` describe, on the current data.

    ``not_fitted_by`` removes, in addition, every lead a second model (with those parameters) was
    trained, stopped early or calibrated on, so that both are compared on leads neither has seen.
    """
    snapshots = store_snapshots(frames, taxonomy, params.snapshots)
    split = split_with(snapshots, params)
    mask = split.eval_half.copy()
    if not_fitted_by is not None:
        other = split_with(snapshots, not_fitted_by)
        seen = set(snapshots.loc[other.train | other.fit_half, "lead_id"])
        mask &= ~snapshots["lead_id"].isin(seen).to_numpy()
    return Window(snapshots.loc[mask].reset_index(drop=True), split, snapshots, mask)


def window_probabilities(bundle, window: Window, frames: StoreFrames) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(feature matrix, calibrated probabilities) of a bundle on a window's snapshots."""
    X = FeatureInput(window.snapshots[["lead_id", "as_of"]], frames.leads, frames.events, frames.history)
    matrix = bundle.vectorizer.transform_matrix(X)
    return matrix, bundle.probability(matrix)
