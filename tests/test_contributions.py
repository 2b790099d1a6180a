"""Contributions of a blend explain the blended margin the bundle serves (runtime/contributions.py).

Generated leads with a known truth: ``x0`` acts linearly (the logistic part learns it), ``x1`` only
through its size, ``|x1| > 1.5`` (trees learn it, a linear model cannot), ``x2`` is missing for a fifth
of the leads and missing lowers the odds (an imputer's indicator column), ``c`` is a category (one-hot
columns) and ``x3`` is noise. Small blends are fitted by ``training.robust.fit_robust`` in a few seconds.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from features.registry import FeatureSet, FeatureSpec, Vocabulary
from runtime.contributions import (column_features, contributions, linear_contributions, preprocessed_means,
                                   tree_contributions)
from training.guards import dominant_features
from training.model import ModelParams
from training.robust import RobustModel, fit_robust
from training.rows import LocalRows

pytestmark = pytest.mark.filterwarnings("ignore")

NAMES = ("x0", "x1", "x2", "x3", "c")
CATEGORIES = ("a", "b", "c", "d")
FS = FeatureSet(Vocabulary(("a",), ("b",)),
                (*(FeatureSpec(n, "float", "test", "") for n in NAMES[:-1]), FeatureSpec("c", "category", "test", "")),
                {"c": CATEGORIES})
PARAMS = ModelParams(learning_rate=0.1, max_rounds=300, early_stopping_rounds=20)


def _leads(n: int, seed: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """(matrix with category codes, the vectoriser-style frame, labels) drawn from the truth above."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[rng.random(n) < 0.2, 2] = np.nan
    codes = rng.integers(0, len(CATEGORIES), n).astype(np.float64)
    codes[rng.random(n) < 0.1] = np.nan
    effect = np.array([0.0, 0.8, -0.8, 0.0])[np.nan_to_num(codes).astype(int)]
    z = -1.0 + 1.5 * x[:, 0] + 2.5 * (np.abs(x[:, 1]) > 1.5) + np.where(np.isnan(x[:, 2]), -0.5, 0.3 * x[:, 2]) + effect
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    matrix = np.column_stack([x, codes])
    return matrix, _frame(matrix), y


def _frame(matrix: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(matrix[:, :4], columns=list(NAMES[:4]))
    frame["c"] = pd.Categorical.from_codes(np.where(np.isnan(matrix[:, 4]), -1, matrix[:, 4]).astype(int), CATEGORIES)
    return frame


@cache
def _blend(weight: float, refit: bool = False) -> tuple[RobustModel, np.ndarray, pd.DataFrame]:
    """A model fitted with this LightGBM weight on 3,000 leads (2,000 train, 1,000 fit), and the rows it was fitted on.

    With ``refit`` the shipped model is refitted on all 3,000.
    """
    matrix, frame, y = _leads(3000, 0)
    train = np.arange(len(y)) < 2000
    as_of = pd.Series(pd.Timestamp("2024-01-01", tz="UTC"), index=range(len(y)))
    model = fit_robust(LocalRows(matrix, frame), y, as_of, train, ~train, FS, PARAMS, 0, half_lives=(None,),
                       blend_weights=(weight,), groups=np.arange(len(y)), refit=refit)
    fitted = np.ones(len(y), bool) if refit else train
    return model, matrix[fitted], frame[fitted]


def test_a_blends_contributions_sum_to_its_blended_margin_row_by_row() -> None:
    model, _, _ = _blend(0.5)
    assert model.linear is not None and model.weight == 0.5
    matrix, _, _ = _leads(2000, 1)
    matrix[:20, 0] = np.linspace(-15, 15, 20)  # the logistic part surer than EPS: blend clips it
    frame = _frame(matrix)
    phi = model.contributions(matrix, frame)
    assert phi.shape == (len(matrix), len(NAMES) + 1)
    np.testing.assert_allclose(phi.sum(axis=1), logit(model.raw(matrix, frame)), rtol=0, atol=1e-9)
    clipped = np.abs(linear_contributions(model.linear, frame, ["c"], model.linear_means).sum(axis=1)) > 13.9
    assert clipped.sum() >= 4
    # both parts move it: the trees' x1 and the logistic part's missing-value indicator of x2
    assert np.abs(phi[:, :-1]).mean(axis=0).min() > 0
    # a lead's contributions do not depend on the batch it came in (replays compare reasons exactly)
    ones = np.vstack([model.contributions(matrix[i:i + 1], frame.iloc[i:i + 1]) for i in range(0, 200, 13)])
    assert np.array_equal(ones, phi[0:200:13])


@pytest.mark.parametrize("refit", [False, True], ids=["fitted on the training part", "refitted on every lead"])
def test_the_reference_is_the_mean_of_each_preprocessed_column_over_the_fitted_rows(refit: bool) -> None:
    model, _, fitted = _blend(0.5, refit)
    cats = ["c"]
    reference = np.asarray(model.linear[:-1].transform(fitted.astype({"c": object})), dtype=np.float64).mean(axis=0)
    np.testing.assert_allclose(model.linear_means, reference, rtol=0, atol=1e-12)
    assert np.array_equal(model.linear_means, preprocessed_means(model.linear, fitted, cats))
    # so the logistic part's contributions average to zero over those rows, feature by feature
    assert np.abs(linear_contributions(model.linear, fitted, cats, model.linear_means)[:, :-1].mean(axis=0)).max() < 1e-9


def test_each_preprocessed_column_is_charged_to_the_feature_it_comes_from() -> None:
    """Changing one feature of a lead changes the logistic part's contribution of that feature only."""
    model, _, _ = _blend(0.5)
    owner = column_features(model.linear[:-1], list(NAMES))
    # x0, x1, x2, x3 scaled, the indicator of x2 (the one feature with missing values), then c's one-hot columns
    assert owner.tolist() == [0, 1, 2, 3, 2, *[4] * (len(owner) - 5)] and len(owner) - 5 >= len(CATEGORIES)
    matrix, _, _ = _leads(50, 2)
    for f, other in enumerate((3.0, -2.0, np.nan, 1.7, 2.0)):
        changed = matrix.copy()
        changed[:, f] = np.where(changed[:, f] == other, 0.0, other)
        before = linear_contributions(model.linear, _frame(matrix), ["c"], model.linear_means)
        after = linear_contributions(model.linear, _frame(changed), ["c"], model.linear_means)
        moved = np.flatnonzero(np.abs(after - before).max(axis=0) > 0)
        assert moved.tolist() == [f], NAMES[f]


def test_at_weight_one_they_are_treeshaps_values() -> None:
    """The trees' TreeSHAP values unchanged, bit for bit; those equal LightGBM's pred_contrib (tests/test_treeshap.py)."""
    model, _, _ = _blend(1.0)
    assert model.linear is None
    matrix, frame, _ = _leads(500, 3)
    tree = tree_contributions(model.booster, matrix)
    assert np.array_equal(model.contributions(matrix, frame), tree)
    lightgbm = model.booster.predict(matrix, pred_contrib=True, num_iteration=model.booster.best_iteration or None)
    np.testing.assert_allclose(tree, lightgbm, rtol=0, atol=1e-9)
    # and a linear part at weight 1 is ignored, as the blended score ignores it
    blended, _, _ = _blend(0.5)
    expected = tree_contributions(blended.booster, matrix)
    assert np.array_equal(contributions(blended.booster, matrix, frame, blended.linear, ["c"], blended.linear_means,
                                        1.0), expected)
    lightgbm = blended.booster.predict(matrix, pred_contrib=True, num_iteration=blended.booster.best_iteration or None)
    np.testing.assert_allclose(expected, lightgbm, rtol=0, atol=1e-9)


def _constructed_lead() -> tuple[np.ndarray, pd.DataFrame]:
    """x0 one standard deviation up (the logistic part's strongest), x1 far out (the trees' strongest), the rest plain."""
    row = np.array([[1.0, 3.0, 0.0, 0.0, 0.0]])
    return row, _frame(row)


def test_at_weight_zero_the_top_reason_is_the_feature_the_logistic_model_weighs_most() -> None:
    model, _, _ = _blend(0.0)
    assert model.weight == 0.0 and model.linear is not None
    names = model.linear[:-1].get_feature_names_out()
    strongest = names[np.argmax(np.abs(model.linear[-1].coef_[0]))]
    assert strongest == "num__x0"
    row, frame = _constructed_lead()
    phi = model.contributions(row, frame)
    assert NAMES[np.argmax(phi[0, :-1])] == "x0"
    np.testing.assert_allclose(phi.sum(axis=1), logit(model.raw(row, frame)), rtol=0, atol=1e-9)
    tree = model.booster.predict(row, pred_contrib=True)
    assert NAMES[np.argmax(tree[0, :-1])] == "x1", "tree-only reasons would name the trees' feature: no test"


def test_the_dominant_feature_guard_weighs_the_blend_as_served() -> None:
    """At weight 0 the served score is the logistic part's: x1, which acts only through its size, moves it not at all.

    The trees lean on x1; shares computed from them would charge it with a fifth of a model that ignores it.
    """
    model, matrix, frame = _blend(0.0)
    explanations = model.explanations(matrix, frame)
    assert len(explanations) == 2, "the served blend and its logistic part: the trees weigh nothing"
    shares = dominant_features(explanations, FS, share=0.0, any_share=0.0)
    assert list(shares)[0] == "x0" and shares["x1"] < 0.01
    tree = dominant_features([model.booster.predict(matrix, pred_contrib=True)], FS, share=0.0, any_share=0.0)
    assert tree["x1"] > 0.1, "tree-only shares would charge x1: else this is no test"


def test_the_guard_takes_a_features_largest_share_among_the_blend_and_its_weighted_parts() -> None:
    model, matrix, frame = _blend(0.5)
    served, linear, tree = model.explanations(matrix, frame)
    assert np.array_equal(served, model.contributions(matrix, frame))
    assert np.array_equal(tree, tree_contributions(model.booster, matrix))
    np.testing.assert_allclose(tree, model.booster.predict(matrix, pred_contrib=True), rtol=0, atol=1e-9)
    shares = dominant_features([served, linear, tree], FS, share=0.0, any_share=0.0)
    alone = [dominant_features([phi], FS, share=0.0, any_share=0.0) for phi in (served, linear, tree)]
    assert shares == {f: max(a[f] for a in alone) for f in shares} and len(shares) == len(NAMES)
    assert shares["x1"] == alone[2]["x1"] > alone[0]["x1"], "x1 is the trees' feature: their share counts"
