"""A training run end to end: train, save the bundle, log the run to MLflow and register the challenger.

``prospect train``, the retrain job and the retraining notebook all call this, so a model trained
from any of them is saved, logged and registered the same way, in the folders the settings name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from training.bundle import save_bundle
from runtime.registry import use_tracking
from training.tracking import log_training
from training.train import TrainConfig, TrainResult, train


@dataclass(frozen=True)
class Registered:
    """A trained model as the registry now knows it: the challenger until a promotion says otherwise."""

    result: TrainResult
    bundle_dir: Path
    run_id: str
    version: str


def register(result: TrainResult, config: TrainConfig, settings: Settings) -> Registered:
    """Save a trained model's bundle under the settings' bundles folder, log its run and register it."""
    bundle_dir = save_bundle(result, config, settings.bundles_dir / result.trained_at.replace(":", ""))
    use_tracking(settings.resolved_tracking_uri, settings.artifact_root)
    run_id, version = log_training(result, config, bundle_dir)
    return Registered(result, bundle_dir, run_id, version)


def train_and_register(frames: StoreFrames, taxonomy: Taxonomy, config: TrainConfig, settings: Settings) -> Registered:
    return register(train(frames, taxonomy, config), config, settings)
