"""The trees' scores: one thread for a service call, every core for bulk, the same bits either way."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from runtime.raw import SMALL_PREDICT_ROWS, raw_scores


class CountingBooster:
    """A booster that records the thread count each predict asked for (None: LightGBM's default)."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster, self.best_iteration, self.threads = booster, booster.best_iteration, []

    def predict(self, X: np.ndarray, **kwargs: object) -> np.ndarray:
        self.threads.append(kwargs.get("num_threads"))
        return self.booster.predict(X, **kwargs)


def test_a_service_batch_is_predicted_on_one_thread_with_the_bits_of_all_threads() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3_000, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=3_000) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_threads": 2, "verbose": -1, "num_leaves": 15},
                        lgb.Dataset(X, y), num_boost_round=30)
    service = rng.normal(size=(2_000, 8)).astype(np.float32)  # 1,000 leads now and a week earlier
    spy = CountingBooster(booster)
    got = raw_scores(spy, service)
    assert spy.threads == [1]
    assert np.array_equal(got.view(np.uint64), booster.predict(service).view(np.uint64))
    bulk = np.tile(service, (SMALL_PREDICT_ROWS // len(service) + 1, 1))
    assert np.array_equal(raw_scores(spy, bulk).view(np.uint64), np.tile(got, len(bulk) // len(service)).view(
        np.uint64))
    assert spy.threads == [1, None]  # many rows: LightGBM's default, every core
