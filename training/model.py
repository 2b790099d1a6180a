"""The LightGBM model: fitted on the training part, stopped early on the validation fit half."""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np


@dataclass(frozen=True)
class ModelParams:
    learning_rate: float = 0.05
    num_leaves: int = 15
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    min_data_in_leaf: int | None = None
    """None: scaled with the training rows (rows / 1000, between 20 and 200)."""
    min_data_per_group: int | None = None
    """Snapshots a category needs before LightGBM may split on it alone, so rare values (one
    country, one landing page) cannot memorise a handful of labels. None: scaled like min_data_in_leaf."""
    cat_smooth: float | None = None
    """None: scaled with the training rows (rows / 5000, between 10 and 50)."""
    lambda_l2: float | None = None
    """None: scaled with the training rows (rows / 30000, between 1 and 10)."""
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    threads: int = 2
    balance: bool = False
    """Weight prospects up (square root of the class ratio); off by default, as calibration needs
    honest scores and LightGBM handles the imbalance through its histograms anyway."""


def fit_lightgbm(X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None, y_valid: np.ndarray | None,
                 categorical: list[int], params: ModelParams, seed: int, weight: np.ndarray | None = None,
                 rounds: int | None = None) -> lgb.Booster:
    """Fit with early stopping on log loss; deterministic for a given seed, data and thread count.

    ``weight``: per-row sample weights (recency weighting), None for equal weights.
    ``rounds``: grow exactly this many trees and look at no validation rows (the refit on every
    labelled lead, once early stopping has chosen the rounds); the validation arguments are then unused.
    """
    config = lightgbm_config(y, params, seed)
    train = lgb.Dataset(X, label=y, weight=weight, categorical_feature=categorical, free_raw_data=True)
    if rounds is not None:
        return lgb.train(config, train, num_boost_round=max(int(rounds), 1))
    valid = lgb.Dataset(X_valid, label=y_valid, categorical_feature=categorical, reference=train)
    return lgb.train(config, train, num_boost_round=params.max_rounds, valid_sets=[valid],
                     callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)])


def lightgbm_config(y: np.ndarray, params: ModelParams, seed: int) -> dict:
    """LightGBM parameters for these training labels: the same for one process and for Dask workers."""
    positives = max(int(y.sum()), 1)
    # regularisation that suits a million snapshots starves a few thousand: scale it with the data
    rows = len(y)
    per_leaf = params.min_data_in_leaf or int(np.clip(rows / 1000, 20, 200))
    per_group = params.min_data_per_group or int(np.clip(rows / 1000, 20, 200))
    smooth = params.cat_smooth or float(np.clip(rows / 5000, 10, 50))
    l2 = params.lambda_l2 or float(np.clip(rows / 30000, 1, 10))
    config = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": per_leaf,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": l2,
        "min_data_per_group": per_group,
        "cat_smooth": smooth,
        "cat_l2": l2,
        "scale_pos_weight": float(np.sqrt((len(y) - positives) / positives)) if params.balance else 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": params.threads,
        "verbose": -1,
    }
    return config
