"""What the model has to beat, measured on the same split.

- A points-based rule score of the kind marketing teams build by hand: points for the most recent
  action at each depth stage, halved every two weeks, plus a little for recent volume.
- A logistic regression on the same features (median-imputed, scaled; categoricals one-hot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.registry import FeatureSet

STAGE_POINTS = (1.0, 3.0, 8.0, 20.0, 40.0)
HALF_LIFE_DAYS = 14.0


def rule_score(frame: pd.DataFrame, feature_set: FeatureSet) -> np.ndarray:
    """Hand-built lead score: decayed points per stage of the latest action, plus recent volume."""
    score = np.zeros(len(frame))
    for level, stage in enumerate(feature_set.vocab.stages):
        days = frame[f"days_since_{stage}"].to_numpy(dtype=np.float64)
        points = STAGE_POINTS[min(level, len(STAGE_POINTS) - 1)]
        score += np.where(np.isnan(days), 0.0, points * 0.5 ** (days / HALF_LIFE_DAYS))
    return score + np.sqrt(frame["events_30d"].to_numpy(dtype=np.float64))


def logistic_baseline(train: pd.DataFrame, y: np.ndarray, feature_set: FeatureSet, seed: int,  # noqa: ANN201
                      sample_weight: np.ndarray | None = None):
    numeric = [s.name for s in feature_set.specs if s.dtype == "float"]
    categorical = [s.name for s in feature_set.specs if s.dtype == "category"]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                              StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20), categorical),
    ])
    model = make_pipeline(prep, LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    as_object = train.astype({c: object for c in categorical})
    return model.fit(as_object, y, logisticregression__sample_weight=sample_weight), categorical


def logistic_scores(model, frame: pd.DataFrame, categorical: list[str]) -> np.ndarray:  # noqa: ANN001
    """Probabilities of the fitted pipeline, each row summed on its own in a fixed order.

    ``predict_proba`` goes through a matrix product whose rounding depends on how many rows it is
    given; a blended model's score must not change with the batch it was served in (a replayed
    score is compared with the served one bit for bit). The sum runs over the preprocessed columns in
    their order, block by block as :func:`_blocks` gives them, without assembling the whole matrix.
    """
    if len(frame) == 0:  # scikit-learn refuses empty input; a partition with no lead yet has no scores
        return np.zeros(0)
    regression = model[-1]
    weights = regression.coef_[0]
    z = np.full(len(frame), regression.intercept_[0])
    for start, block, rows in _blocks(model[:-1], frame, categorical):
        for j in range(block.shape[1]):  # column by column: the same order for every row
            column = block[:, j] * weights[start + j]
            z += column if rows is None else column[rows[j]]
    return expit(z)


def _blocks(prep, frame: pd.DataFrame, categorical: list[str]):  # noqa: ANN001, ANN202 - generator
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
    steps = [step for _, step in prep.steps] if hasattr(prep, "steps") else [prep]
    ct = steps[0] if len(steps) == 1 and isinstance(steps[0], ColumnTransformer) else None
    if ct is None or any(isinstance(t, str) and t != "drop" for _, t, _ in ct.transformers_):
        yield 0, np.asfortranarray(_dense(prep.transform(frame.astype(as_object)))), None
        return
    parts = sorted((ct.output_indices_[name].start, name, t, list(c)) for name, t, c in ct.transformers_
                   if not isinstance(t, str) and ct.output_indices_[name].stop > ct.output_indices_[name].start)
    for start, name, transformer, columns in parts:
        width = ct.output_indices_[name].stop - start
        widths = _one_hot_widths(transformer, len(columns))
        if len(frame) and set(columns) <= set(categorical) and widths and sum(widths) == width:
            yield start, *_distinct_one_hot(transformer, frame[columns], widths)
        else:
            yield start, np.asfortranarray(_dense(transformer.transform(frame[columns]))), None


def _one_hot_widths(encoder, n_columns: int) -> list[int] | None:  # noqa: ANN001
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
