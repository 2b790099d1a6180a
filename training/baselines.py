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
    score is compared with the served one bit for bit).
    """
    X = _prepared(model[:-1], frame, categorical)
    regression = model[-1]
    z = np.full(len(X), regression.intercept_[0])
    for j, weight in enumerate(regression.coef_[0]):  # column by column: the same order for every row
        z += X[:, j] * weight
    return expit(z)


def _prepared(prep, frame: pd.DataFrame, categorical: list[str]) -> np.ndarray:  # noqa: ANN001
    """The fitted preprocessing's output as a dense matrix, one-hot blocks encoded once per distinct value.

    scikit-learn's one-hot encoder maps object values to codes in a Python loop (about 3.5 s per 125k
    rows of ten columns: most of a blended bulk score's time). Each input column's one-hot block depends
    on that column alone, so the encoder is run on one row per distinct value and its blocks are spread
    back to the rows: exactly the values of ``prep.transform``. Anything but the lone ColumnTransformer of
    :func:`logistic_baseline` takes the plain path.
    """
    as_object = {c: object for c in categorical}
    steps = [step for _, step in prep.steps] if hasattr(prep, "steps") else [prep]
    ct = steps[0] if len(steps) == 1 and isinstance(steps[0], ColumnTransformer) else None
    if ct is None or any(isinstance(t, str) and t != "drop" for _, t, _ in ct.transformers_):
        return _dense(prep.transform(frame.astype(as_object)))
    X = np.zeros((len(frame), max((s.stop for s in ct.output_indices_.values()), default=0)), order="F")
    for name, transformer, columns in ct.transformers_:
        where = ct.output_indices_[name]
        if isinstance(transformer, str) or where.stop == where.start:
            continue  # dropped
        sub = frame[list(columns)]
        widths = _one_hot_widths(transformer, len(columns))
        if len(sub) and set(columns) <= set(categorical) and widths and sum(widths) == where.stop - where.start:
            _spread_one_hot(X[:, where], transformer, sub.astype(as_object), widths)
        else:
            X[:, where] = _dense(transformer.transform(sub))
    return X


def _one_hot_widths(encoder, n_columns: int) -> list[int] | None:  # noqa: ANN001
    """Output columns per input column of a fitted OneHotEncoder without dropped categories (None otherwise)."""
    if not isinstance(encoder, OneHotEncoder) or encoder.drop_idx_ is not None:
        return None
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * n_columns
    return [len(c) - (0 if rare is None else len(rare) - 1) for c, rare in zip(encoder.categories_, infrequent,
                                                                             strict=True)]


def _spread_one_hot(out: np.ndarray, encoder, sub: pd.DataFrame, widths: list[int]) -> None:  # noqa: ANN001
    """Fill ``out`` (rows x one-hot columns) from the encoding of each column's distinct values."""
    codes, values = [], []
    for c in sub.columns:
        code, uniques = pd.factorize(sub[c], use_na_sentinel=True)
        codes.append(np.where(code < 0, len(uniques), code))  # missing: the slot after the known values
        values.append([*uniques, np.nan])
    k = max(len(v) for v in values)
    table = pd.DataFrame({c: pd.Series(v + v[-1:] * (k - len(v)), dtype=object) for c, v in zip(sub.columns, values,
                                                                                              strict=True)})
    encoded = _dense(encoder.transform(table))
    start = 0
    for code, width in zip(codes, widths, strict=True):
        out[:, start:start + width] = encoded[code, start:start + width]
        start += width


def _dense(X) -> np.ndarray:  # noqa: ANN001 - ndarray or scipy sparse
    return X.toarray() if issparse(X) else np.asarray(X, dtype=np.float64)
