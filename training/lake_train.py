"""Training on an event lake: features bucket by bucket (here or on Dask), then the usual run.

Only the feature matrix of the snapshots is held in memory -- never the events -- and the run after
it (split, guards, LightGBM, calibration, baselines, evaluation) is :func:`training.train.fit`, so a
lake-trained model is the same kind of bundle and MLflow run as a store-trained one. On the Dask
engine the matrix is not held here at all: it stays on the workers, block by block
(``training.dask_rows``), and the client holds the snapshots' columns and bounded samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import lightgbm as lgb
import numpy as np

from features.partitioned import Engine, LakeJob, lake_features
from training.model import fit_lightgbm
from training.split import split_snapshots
from training.train import Prepared, TrainConfig, TrainResult, fit


def prepare_lake(job: LakeJob, engine: Engine) -> Prepared:
    """The lake's snapshots, labels and features: the matrix here, or (Dask) left on the workers."""
    if engine.name == "dask":
        from training.dask_rows import lake_rows  # imports distributed, which a local run does not need

        snapshots, matrix, vectorizer = lake_rows(job, engine)
    else:
        snapshots, matrix, vectorizer = lake_features(job, engine)
    return Prepared(snapshots, matrix, snapshots["label"].to_numpy().astype(np.int64), vectorizer)


def train_lake(job: LakeJob, engine: Engine, config: TrainConfig = TrainConfig(),
               fit_booster: Callable[..., lgb.Booster] = fit_lightgbm) -> TrainResult:
    """Train, calibrate and evaluate on the lake's leads, events and feedback."""
    prepared = prepare_lake(replace(job, snapshots=config.snapshots), engine)
    split = split_snapshots(prepared.snapshots, config.snapshots.horizon_days, config.valid_share, config.seed)
    return fit(prepared, split, config, fit_booster=fit_booster)
