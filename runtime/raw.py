"""A bundle's raw (uncalibrated) score: the trees, the logistic part of a blend, and their blend.

Training computes the same raw scores while it chooses the blend and fits the calibrator, so both
sides call these functions: a score a service returns is the one training validated.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.sparse import issparse
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from runtime.calibration import logit

SMALL_PREDICT_ROWS = 10_000
"""Below this many rows the trees are walked on one thread: a service call (at most 2,000 rows: 1,000
leads now and a week earlier) runs in one of two workers on two cores, and a second thread per call
there only competes with the other worker and spin-waits. Two such workers at once, each featurising
and predicting 1,000-lead batches: 13-24 calls/s each with one thread against 9-16 with two, and
21-25 ms of CPU a call against 31-37 ms. Bulk scoring and training predict far more rows and keep
every core."""


def raw_scores(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """LightGBM's (uncalibrated) probabilities; the same bits whatever the thread count, as each row is
    predicted on its own."""
    threads = {"num_threads": 1} if len(X) < SMALL_PREDICT_ROWS else {}
    return booster.predict(X, num_iteration=booster.best_iteration or None, **threads)


def blend(tree_p: np.ndarray, linear_p: np.ndarray | None, weight: float) -> np.ndarray:
    """The blended (uncalibrated) score: LightGBM alone when ``weight`` is 1 or there is no linear part."""
    if linear_p is None or weight >= 1.0:
        return tree_p
    return 1.0 / (1.0 + np.exp(-(weight * logit(tree_p) + (1 - weight) * logit(linear_p))))


def logistic_scores(model, frame: pd.DataFrame, categorical: list[str]) -> np.ndarray:  # noqa: ANN001
    """Probabilities of the fitted pipeline, each row summed on its own in a fixed order.

    ``predict_proba`` goes through a matrix product whose rounding depends on how many rows it is
    given; a blended model's score must not change with the batch it was served in (a replayed
    score is compared with the served one bit for bit). The sum runs over the preprocessed columns in
    their order, block by block as :func:`blocks` gives them, without assembling the whole matrix.
    """
    if len(frame) == 0:  # scikit-learn refuses empty input; a partition with no lead yet has no scores
        return np.zeros(0)
    regression = model[-1]
    weights = regression.coef_[0]
    z = np.full(len(frame), regression.intercept_[0])
    for start, block, rows in blocks(model[:-1], frame, categorical):
        for j in range(block.shape[1]):  # column by column: the same order for every row
            column = block[:, j] * weights[start + j]
            z += column if rows is None else column[rows[j]]
    return expit(z)


def blocks(prep, frame: pd.DataFrame, categorical: list[str]):  # noqa: ANN001, ANN202 - generator
    """(first output column, block, rows) for the fitted preprocessing's output, in column order.

    ``rows`` is None when the block has a row per frame row; otherwise the block holds one row per
    distinct value and ``rows[j]`` picks each frame row's row for column j. scikit-learn's one-hot
    encoder maps object values to codes in a Python loop (about 3.5 s per 125k rows of ten columns:
    most of a blended bulk score's time), and each input column's one-hot block depends on that column
    alone, so the encoder runs on the distinct values only: the values are exactly those of
    ``prep.transform``. Anything but the lone ColumnTransformer of :func:`logistic_baseline` takes the
    plain path.
    """
    as_object = {c: object for c in categorical}
    ct = column_transformer(prep)
    if ct is None or any(isinstance(t, str) and t != "drop" for _, t, _ in ct.transformers_):
        yield 0, np.asfortranarray(_dense(prep.transform(frame.astype(as_object)))), None
        return
    parts = sorted((ct.output_indices_[name].start, name, t, list(c)) for name, t, c in ct.transformers_
                   if not isinstance(t, str) and ct.output_indices_[name].stop > ct.output_indices_[name].start)
    for start, name, transformer, columns in parts:
        width = ct.output_indices_[name].stop - start
        widths = one_hot_widths(transformer, len(columns))
        if len(frame) and set(columns) <= set(categorical) and widths and sum(widths) == width:
            yield start, *_distinct_one_hot(transformer, frame[columns], widths)
        else:
            yield start, np.asfortranarray(_dense(transformer.transform(frame[columns]))), None


def column_transformer(prep) -> ColumnTransformer | None:  # noqa: ANN001
    """The preprocessing's ColumnTransformer when it is the only step (as :func:`logistic_baseline` fits it)."""
    steps = [step for _, step in prep.steps] if hasattr(prep, "steps") else [prep]
    return steps[0] if len(steps) == 1 and isinstance(steps[0], ColumnTransformer) else None


def one_hot_widths(encoder, n_columns: int) -> list[int] | None:  # noqa: ANN001
    """Output columns per input column of a fitted OneHotEncoder without dropped categories (None otherwise)."""
    if not isinstance(encoder, OneHotEncoder) or encoder.drop_idx_ is not None:
        return None
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * n_columns
    return [len(c) - (0 if rare is None else len(rare) - 1) for c, rare in zip(encoder.categories_, infrequent,
                                                                             strict=True)]


def _distinct_one_hot(encoder, sub: pd.DataFrame, widths: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:  # noqa: ANN001
    """The encoding of each column's distinct values (missing included), and per output column the rows' codes.

    The distinct values go to the encoder as objects, as :func:`logistic_baseline` fitted it."""
    codes, values = [], []
    for c in sub.columns:
        code, uniques = pd.factorize(sub[c], use_na_sentinel=True)
        codes.append(np.where(code < 0, len(uniques), code))  # missing: the slot after the known values
        values.append([*uniques, np.nan])
    k = max(len(v) for v in values)
    table = pd.DataFrame({c: pd.Series(v + v[-1:] * (k - len(v)), dtype=object) for c, v in zip(sub.columns, values,
                                                                                              strict=True)})
    rows = [code for code, width in zip(codes, widths, strict=True) for _ in range(width)]
    return np.asfortranarray(_dense(encoder.transform(table))), rows


def _dense(X) -> np.ndarray:  # noqa: ANN001 - ndarray or scipy sparse
    return X.toarray() if issparse(X) else np.asarray(X, dtype=np.float64)
