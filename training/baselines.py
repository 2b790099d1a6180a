"""What the model has to beat, measured on the same split.

- A points-based rule score of the kind marketing teams build by hand: points for the most recent
  action at each depth stage, halved every two weeks, plus a little for recent volume.
- A logistic regression on the same features (median-imputed, scaled; categoricals one-hot).

Its scores, as a blended bundle computes them at serving time, are :func:`runtime.raw.logistic_scores`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
