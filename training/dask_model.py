"""LightGBM trained on a Dask cluster (``lightgbm.dask``), stopped early as the single-process model is.

``lightgbm.dask`` has no early stopping (LightGBM issue 3712: workers that stop at different rounds
hang), so the rounds are grown in steps: each step continues the model on the workers
(``init_model``), the workers score the new trees on their blocks of the validation fit half and
send back the updated raw scores and per-round log-loss sums, and training stops once the validation
log loss has not improved for ``early_stopping_rounds`` -- the rule ``lightgbm.early_stopping``
applies. The best round is kept as ``best_iteration``, which is what bundles save and scoring uses.
Training and validation rows stay on the workers (``training.dask_rows.DaskRows``): the client
sends labels and weights and receives one raw score per validation row.
"""

from __future__ import annotations

from functools import partial

import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client, wait
from lightgbm.dask import DaskLGBMClassifier

from training.dask_rows import DaskRows
from training.model import ModelParams, lightgbm_config

STEP_ROUNDS = 100
"""Rounds added per step; the model overshoots its best round by at most this plus the patience."""


def _grow_raw(booster: lgb.Booster, start: int, matrix: np.ndarray, frame: pd.DataFrame,  # noqa: ARG001
              y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One block's raw scores after the trees from round ``start`` on, and its log-loss sum after each round."""
    raw = raw.copy()
    sums = []
    for k in range(start, booster.current_iteration()):
        raw += booster.predict(matrix, start_iteration=k, num_iteration=1, raw_score=True)
        # log(1 + exp(-z)) for positives, log(1 + exp(z)) for negatives, computed without overflow
        sums.append(float(np.sum(np.logaddexp(0.0, np.where(y > 0, -raw, raw)))))
    return raw, np.asarray(sums)


def _rows(X: object, what: str) -> DaskRows:
    if not isinstance(X, DaskRows):
        raise TypeError(f"dask_lightgbm trains on feature rows kept on the workers (training.dask_rows.DaskRows), "
                        f"got {type(X).__name__} for the {what}: prepare the features with --engine dask")
    return X


def dask_lightgbm(client: Client):  # noqa: ANN201 - returns fit_lightgbm's signature
    """A ``fit_booster`` for :func:`training.train.fit` that trains on the client's Dask workers."""

    def fit(X: DaskRows, y: np.ndarray, X_valid: DaskRows | None, y_valid: np.ndarray | None,
            categorical: list[int], params: ModelParams, seed: int, weight: np.ndarray | None = None,
            rounds: int | None = None) -> lgb.Booster:
        rows = _rows(X, "training rows")
        # lightgbm.dask sets each worker's threads itself; the metric is the client's, below
        config = {k: v for k, v in lightgbm_config(y, params, seed).items() if k not in ("num_threads", "metric")}
        dX, dy, dw = client.persist([rows.array(), rows.chunked(y),
                                     rows.chunked(np.ones(len(y)) if weight is None else weight)])
        wait([dX, dy, dw])
        if rounds is not None:  # the refit: a fixed number of trees, no validation rows
            model = DaskLGBMClassifier(client=client, n_estimators=max(int(rounds), 1), **config)
            return model.fit(dX, dy, sample_weight=dw, categorical_feature=categorical).booster_
        valid = _rows(X_valid, "validation rows")
        booster, raw = None, np.zeros(len(y_valid))
        losses: list[float] = []
        while len(losses) < params.max_rounds:
            step = min(STEP_ROUNDS, params.max_rounds - len(losses))
            model = DaskLGBMClassifier(client=client, n_estimators=step, **config)
            model.fit(dX, dy, sample_weight=dw, categorical_feature=categorical, init_model=booster)
            booster = model.booster_
            parts = valid.map(partial(_grow_raw, booster, len(losses)), y_valid, raw)
            raw = np.concatenate([p[0] for p in parts])
            losses.extend((np.sum([p[1] for p in parts], axis=0) / max(len(y_valid), 1)).tolist())
            best = int(np.argmin(losses))
            if len(losses) - 1 - best >= params.early_stopping_rounds or booster.current_iteration() < len(losses):
                break
        booster.best_iteration = best + 1
        return booster

    return fit
