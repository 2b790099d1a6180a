"""Per-feature contributions to a bundle's raw log-odds: the reasons, the report's importances, the guard's shares.

The columns are those of LightGBM's ``pred_contrib`` (one per feature, the last one the bias), in
log-odds, and each row sums to the margin of the uncalibrated score the bundle serves. For LightGBM
alone they are TreeSHAP's values, read from per-leaf tables (:mod:`runtime.treeshap`, equal to
``pred_contrib`` within 1e-9). For a blend, ``w * logit(tree_p) + (1 - w) * logit(linear_p)``, the
margin is a weighted sum, and so are SHAP values: ``w`` times TreeSHAP's plus ``1 - w`` times the
logistic part's, which for a linear model with an independent (interventional) reference are exact:
``coef_j * (x_j - mean_j)`` for each preprocessed column ``j``, summed over the columns that come from
the same feature (its scaled value, its missing-value indicator, its one-hot columns). ``mean_j`` is
column ``j``'s mean over the rows the logistic regression was fitted on; training saves them in the
bundle. Explaining the trees alone would describe a part that, at a low weight, barely moves the score.
A part surer than ``runtime.calibration.EPS`` enters the blend clipped; :func:`as_blended` says how
its contributions follow.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from runtime.calibration import EPS, logit
from runtime.raw import blocks, column_transformer, one_hot_widths
from runtime.treeshap import TreeShap


def tree_contributions(booster: lgb.Booster, matrix: np.ndarray, explainer: TreeShap | None = None) -> np.ndarray:
    """TreeSHAP values of the booster's trees, (n, n_features + 1), the last column the bias: LightGBM's ``pred_contrib``.

    ``explainer`` holds the booster's tables (:mod:`runtime.treeshap`), built once: a bundle builds
    them when it loads. Without it they are built here, for this call.
    """
    # (Saabas-style path attributions were 5x faster than pred_contrib, but not TreeSHAP: on leads a month
    # before the data ended their top reason was among TreeSHAP's top three for only 55-75% of leads. The
    # per-leaf tables of runtime.treeshap give TreeSHAP's own values.)
    return (TreeShap.from_booster(booster) if explainer is None else explainer)(matrix)


def contributions(booster: lgb.Booster, matrix: np.ndarray, frame: pd.DataFrame | None = None,  # noqa: PLR0913
                  linear=None, categorical: list[str] | None = None,  # noqa: ANN001 - a scikit-learn Pipeline
                  means: np.ndarray | None = None, weight: float = 1.0, explainer: TreeShap | None = None
                  ) -> np.ndarray:
    """Per-feature contributions to the raw margin, (n, n_features + 1) like ``pred_contrib``.

    With a logistic pipeline ``linear``, its column ``means`` and a LightGBM ``weight`` below 1 (``frame``:
    ``matrix`` as the vectoriser's frame), the blend's; otherwise TreeSHAP's values unchanged, bit for bit
    (``explainer``: as :func:`tree_contributions`). Each row is computed on its own in a fixed order, so a
    lead's reasons do not depend on its batch.
    """
    tree = tree_contributions(booster, matrix, explainer)
    if linear is None or means is None or weight >= 1.0:
        return tree
    linear_part = linear_contributions(linear, frame, categorical or [], means)
    return weight * as_blended(tree) + (1 - weight) * as_blended(linear_part)


def as_blended(phi: np.ndarray) -> np.ndarray:
    """One part's contributions to its log-odds as :func:`runtime.raw.blend` takes them: clipped to ±logit(1 - EPS).

    ``blend`` clips each part's probability to [EPS, 1 - EPS] so that no score becomes infinite; on a
    lead the trees (or the regression) are surer about than that, the part's features moved it
    only as far as the clip. Their contributions are then rescaled, as DeepLIFT's rescale rule does
    through a nonlinearity: each times (clipped margin - clipped bias) / (margin - bias), and the bias
    clipped, so the row sums to the clipped log-odds. Rows inside the clip are returned unchanged.
    """
    margin = phi.sum(axis=1)
    p = expit(margin)
    out = (p < EPS) | (p > 1 - EPS)
    if not out.any():
        return phi
    phi = phi.copy()
    rows, bias = phi[out], phi[out, -1]
    base, span = logit(expit(bias)), margin[out] - bias
    scale = np.divide(logit(p[out]) - base, span, out=np.zeros_like(span), where=span != 0)
    rows[:, :-1] *= scale[:, None]
    rows[:, -1] = base
    phi[out] = rows
    return phi


def linear_contributions(model, frame: pd.DataFrame, categorical: list[str],  # noqa: ANN001
                         means: np.ndarray) -> np.ndarray:
    """The logistic pipeline's exact SHAP values against the reference ``means``, (n, n_features + 1).

    Column ``f`` sums ``coef_j * (x_j - mean_j)`` over the preprocessed columns of feature ``f``; the
    last is ``intercept + sum_j coef_j * mean_j``, so a row sums to the regression's log-odds.
    """
    prep, regression = model[:-1], model[-1]
    coef = regression.coef_[0]
    out = np.zeros((len(frame), frame.shape[1] + 1))
    out[:, -1] = regression.intercept_[0] + float(np.dot(coef, means))
    if len(frame) == 0:  # scikit-learn refuses empty input
        return out
    owner = column_features(prep, list(frame.columns))
    for start, block, rows in blocks(prep, frame, categorical):
        for j in range(block.shape[1]):  # column by column: the same order for every row
            c = start + j
            column = (block[:, j] - means[c]) * coef[c]
            out[:, owner[c]] += column if rows is None else column[rows[j]]
    return out


def preprocessed_means(model, frame: pd.DataFrame, categorical: list[str]) -> np.ndarray:  # noqa: ANN001
    """The mean of each preprocessed column over ``frame``: the reference of :func:`linear_contributions`.

    Training calls it on the rows the logistic regression was fitted on (every row weighing the same).
    """
    means = np.zeros(model[-1].coef_.shape[1])
    for start, block, rows in blocks(model[:-1], frame, categorical):
        for j in range(block.shape[1]):
            means[start + j] = (block[:, j] if rows is None else block[rows[j], j]).mean()
    return means


def column_features(prep, names: list[str]) -> np.ndarray:  # noqa: ANN001
    """For each output column of the fitted preprocessing, the position in ``names`` of the feature it comes from.

    Read from the ColumnTransformer's ``output_indices_``; inside each part a one-hot block repeats its
    input column once per category, an imputer appends a missing-value indicator per column listed
    in its ``indicator_``, and any other step keeps its columns. Raises ValueError for anything else.
    """
    ct = column_transformer(prep)
    if ct is None:
        raise ValueError("contributions need the ColumnTransformer that logistic_baseline fits")
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    owner = np.full(width, -1)
    for name, transformer, columns in ct.transformers_:
        span = ct.output_indices_[name]
        if transformer == "drop" or span.stop == span.start:
            continue
        inputs = np.array([names.index(c) for c in columns], dtype=np.int64)
        owner[span] = inputs if transformer == "passthrough" else inputs[_inputs(transformer, len(inputs))]
    if (owner < 0).any():
        raise ValueError("some preprocessed columns come from no feature")
    return owner


def _inputs(step, n: int) -> np.ndarray:  # noqa: ANN001
    """Which of a fitted step's ``n`` input columns each of its output columns comes from."""
    if isinstance(step, Pipeline):
        idx = np.arange(n)
        for _, inner in step.steps:
            idx = idx[_inputs(inner, len(idx))]
        return idx
    widths = one_hot_widths(step, n)
    if widths is not None:
        return np.repeat(np.arange(n), widths)
    if isinstance(step, SimpleImputer):
        kept = np.arange(n) if step.keep_empty_features else np.flatnonzero(~np.isnan(step.statistics_))
        indicator = step.indicator_.features_ if step.indicator_ is not None else np.zeros(0, np.int64)
        return np.concatenate([kept, indicator]).astype(np.int64)
    if len(step.get_feature_names_out()) == n:
        return np.arange(n)
    raise ValueError(f"cannot tell which feature each output column of {type(step).__name__} comes from")
