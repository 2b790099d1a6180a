"""LightGBM trained on a Dask cluster (``lightgbm.dask``), stopped early as the single-process model is.

``lightgbm.dask`` has no early stopping (LightGBM issue 3712: workers that stop at different rounds
hang), so the rounds are grown in steps: each step continues the model on the workers
(``init_model``), the workers score the new trees on their blocks of the validation fit half and
send back the updated raw scores and per-round log-loss sums, and training stops once the validation
log loss has not improved for ``early_stopping_rounds`` -- the rule ``lightgbm.early_stopping``
applies. The best round is kept as ``best_iteration``, which is what bundles save and scoring uses.
Training and validation rows stay on the workers (``training.dask_rows.DaskRows``): the client
sends labels and weights and receives one raw score per validation row.

A worker that dies during a step fails that step, not the run. ``lightgbm.dask`` pins each training
part to its worker (``allow_other_workers=False``), so Dask alone would wait for the dead worker
forever, and the peers wait for it inside LightGBM's network set-up. The client therefore watches
the workers while a step runs (:func:`_grow_surviving`): when one of them leaves, the step's pinned
tasks are cancelled, the peers still inside the step are restarted (their data is recomputed from
the lake partitions), and the step is grown again from the model of the previous step, up to
``STEP_RETRIES`` times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client, Future, wait
from lightgbm.dask import DaskLGBMClassifier

from training.dask_rows import DaskRows
from training.model import ModelParams, lightgbm_config

STEP_ROUNDS = 100
"""Rounds added per step; the model overshoots its best round by at most this plus the patience."""
STEP_RETRIES = 2
HEAL_S = 300.0
"""How long a run waits for a cluster with no worker left to have one again before it fails."""
WATCH_S = 0.5
"""How often the client looks for lost workers while a step runs."""
PINNED = ("_train_part-", "_acquire_port-")
"""Key prefixes of the tasks ``lightgbm.dask`` pins to one worker: they can never run once it is gone."""

log = logging.getLogger(__name__)


class WorkerLost(RuntimeError):
    """A worker left the cluster while a training step ran on it."""


def _workers(client: Client) -> set[str]:
    return set(client.scheduler_info(n_workers=-1)["workers"])


def _watched(client: Client, grow: Callable[[], lgb.Booster], before: set[str]) -> lgb.Booster:
    """``grow()``, or :class:`WorkerLost` when one of the workers ``before`` (those at its start) leaves
    before it ends.

    ``grow`` runs here; a thread watches the workers and, on a loss, cancels the step's pinned tasks,
    which ends ``grow``'s wait on them with an error.
    """
    lost: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_S):
            if gone := before - _workers(client):
                lost.update(gone)
                client.cancel([Future(key, client) for key in list(client.futures) if str(key).startswith(PINNED)],
                              force=True)
                return

    watcher = threading.Thread(target=watch, name="dask-step-watch", daemon=True)
    watcher.start()
    try:
        return grow()
    except Exception as exc:  # a peer may fail first (LightGBM's socket error), before the loss shows
        time.sleep(2 * WATCH_S)  # the scheduler's news of the loss may lag the peer's error
        if gone := lost or before - _workers(client):
            raise WorkerLost(f"{len(gone)} of {len(before)} workers left during the step") from exc
        raise
    finally:
        done.set()
        watcher.join()


def _grow_surviving(client: Client, grow: Callable[[], lgb.Booster], what: str) -> lgb.Booster:
    """``grow()``, grown again on a healed cluster when a worker dies during it (module docstring)."""
    for _ in range(STEP_RETRIES):
        before = _workers(client)
        try:
            return _watched(client, grow, before)
        except WorkerLost as exc:
            log.warning("dask training: %s; growing %s again", exc, what)
            # the peers may still wait inside LightGBM's network set-up for the worker that left
            peers = list(before & _workers(client))
            if peers:
                client.restart_workers(peers, raise_for_error=False)
            _heal(client, len(before))
    return _watched(client, grow, _workers(client))  # a third loss is the run's error


def _heal(client: Client, wanted: int, patience_s: float = 60.0) -> None:
    """Wait until the cluster has ``wanted`` workers again (nannies restart the dead), or go on with those
    there are after ``patience_s``; a cluster with none left is the run's error."""
    deadline = time.monotonic() + patience_s
    while len(_workers(client)) < wanted and time.monotonic() < deadline:
        time.sleep(WATCH_S)
    client.wait_for_workers(1, timeout=HEAL_S)


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

        def grow(n: int, init_model: lgb.Booster | None) -> lgb.Booster:
            model = DaskLGBMClassifier(client=client, n_estimators=n, **config)
            return model.fit(dX, dy, sample_weight=dw, categorical_feature=categorical, init_model=init_model).booster_

        if rounds is not None:  # the refit: a fixed number of trees, no validation rows
            return _grow_surviving(client, partial(grow, max(int(rounds), 1), None), "the refit")
        valid = _rows(X_valid, "validation rows")
        booster, raw = None, np.zeros(len(y_valid))
        losses: list[float] = []
        while len(losses) < params.max_rounds:
            step = min(STEP_ROUNDS, params.max_rounds - len(losses))
            booster = _grow_surviving(client, partial(grow, step, booster), f"the step from round {len(losses)}")
            parts = valid.map(partial(_grow_raw, booster, len(losses)), y_valid, raw)
            raw = np.concatenate([p[0] for p in parts])
            losses.extend((np.sum([p[1] for p in parts], axis=0) / max(len(y_valid), 1)).tolist())
            best = int(np.argmin(losses))
            if len(losses) - 1 - best >= params.early_stopping_rounds or booster.current_iteration() < len(losses):
                break
        booster.best_iteration = best + 1
        return booster

    return fit
