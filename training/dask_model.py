"""LightGBM trained on a Dask cluster (``lightgbm.dask``), stopped early as the single-process model is.

``lightgbm.dask`` has no early stopping (LightGBM issue 3712: workers that stop at different rounds
hang), so the rounds are grown in steps: each step continues the model on the workers
(``init_model``), the client scores the new trees on the validation fit half, and training stops
once the validation log loss has not improved for ``early_stopping_rounds`` -- the rule
``lightgbm.early_stopping`` applies. The best round is kept as ``best_iteration``, which is what
bundles save and scoring uses.
"""

from __future__ import annotations

import math

import dask.array as da
from dask import delayed
import lightgbm as lgb
import numpy as np
from distributed import Client, wait
from lightgbm.dask import DaskLGBMClassifier

from training.model import ModelParams, lightgbm_config

STEP_ROUNDS = 100
"""Rounds added per step; the model overshoots its best round by at most this plus the patience."""


def _logloss(y: np.ndarray, raw: np.ndarray) -> float:
    # log(1 + exp(-z)) for positives, log(1 + exp(z)) for negatives, computed without overflow
    z = np.where(y > 0, -raw, raw)
    return float(np.mean(np.logaddexp(0.0, z)))


def _spread(client: Client, X: np.ndarray, y: np.ndarray, w: np.ndarray, workers: int
            ) -> tuple[da.Array, da.Array, da.Array]:
    """The training rows (and their weights) as Dask arrays of one block per worker, already on the workers."""
    rows = max(math.ceil(len(y) / workers), 1)
    starts = range(0, len(y), rows)
    blocks = client.scatter([(X[i:i + rows], y[i:i + rows], w[i:i + rows]) for i in starts])

    def column(k: int, array: np.ndarray) -> da.Array:
        return da.concatenate([da.from_delayed(delayed(_part)(b, k), (min(rows, len(y) - i), *array.shape[1:]),
                                               array.dtype) for i, b in zip(starts, blocks, strict=True)])

    dX, dy, dw = client.persist([column(0, X), column(1, y), column(2, w)])
    wait([dX, dy, dw])
    return dX, dy, dw


def _part(block: tuple, k: int) -> np.ndarray:
    return block[k]


def dask_lightgbm(client: Client):  # noqa: ANN201 - returns fit_lightgbm's signature
    """A ``fit_booster`` for :func:`training.train.fit` that trains on the client's Dask workers."""

    def fit(X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None, y_valid: np.ndarray | None,
            categorical: list[int], params: ModelParams, seed: int, weight: np.ndarray | None = None,
            rounds: int | None = None) -> lgb.Booster:
        workers = max(len(client.scheduler_info()["workers"]), 1)
        # lightgbm.dask sets each worker's threads itself; the metric is the client's, below
        config = {k: v for k, v in lightgbm_config(y, params, seed).items() if k not in ("num_threads", "metric")}
        dX, dy, dw = _spread(client, X, y, np.ones(len(y)) if weight is None else weight, workers)
        if rounds is not None:  # the refit: a fixed number of trees, no validation rows
            model = DaskLGBMClassifier(client=client, n_estimators=max(int(rounds), 1), **config)
            return model.fit(dX, dy, sample_weight=dw, categorical_feature=categorical).booster_
        booster, raw = None, np.zeros(len(y_valid))
        losses: list[float] = []
        while len(losses) < params.max_rounds:
            step = min(STEP_ROUNDS, params.max_rounds - len(losses))
            model = DaskLGBMClassifier(client=client, n_estimators=step, **config)
            model.fit(dX, dy, sample_weight=dw, categorical_feature=categorical, init_model=booster)
            booster = model.booster_
            for k in range(len(losses), booster.current_iteration()):
                raw += booster.predict(X_valid, start_iteration=k, num_iteration=1, raw_score=True)
                losses.append(_logloss(y_valid, raw))
            best = int(np.argmin(losses))
            if len(losses) - 1 - best >= params.early_stopping_rounds or booster.current_iteration() < len(losses):
                break
        booster.best_iteration = best + 1
        return booster

    return fit
