"""TreeSHAP from per-leaf tables equals LightGBM's ``pred_contrib`` (runtime/treeshap.py).

LightGBM is the oracle: every entry within 1e-9 of ``pred_contrib`` (sums in another order differ in
the last bits), each row summing to the raw margin, and the leaf each row reaches in each tree, read
from the very edge decisions the values use, equal to ``pred_leaf``. Models are small random ones
(numeric features with NaN and zeros, a categorical feature with more than 32 categories, each of
LightGBM's missing-value types, early stopping), a model trained by the project on generated leads
and one on the X Education leads.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.dataset import load_frames
from features.snapshots import build_snapshots
from features.vectorizer import FeatureInput
from runtime.bundle import load_bundle
from runtime.contributions import contributions
from runtime.treeshap import TreeShap
from tests.conftest import REAL_DATA, REPO, generated_store
from training.bundle import save_bundle
from training.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore")

TOL = 1e-9
N_CATEGORIES = 40  # more than 32: a split's category set spans two words of LightGBM's bitset
SPECIAL = (np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 1e300, -1e300, np.inf, -np.inf)
"""Inputs at the edges of LightGBM's decisions: NaN, zeros, values its predictor reads as zero, huge ones."""


def _data(seed: int, n: int, n_numeric: int, categorical: bool) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features with NaN and exact zeros, optionally a categorical last column (codes, NaN, a few negative)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_numeric))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.15] = 0.0
    x[:, 0] = np.round(x[:, 0], 1)  # ties: many rows on a threshold's value
    z = np.nan_to_num(x[:, 0]) - np.abs(np.nan_to_num(x[:, -1])) + np.isnan(x[:, 0])
    if categorical:
        codes = rng.integers(0, N_CATEGORIES, n).astype(np.float64)
        codes[rng.random(n) < 0.1] = np.nan
        z = z + np.sin(np.nan_to_num(codes, nan=7.0))
        x = np.column_stack([x, codes])
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(np.int64)
    return x, y


def _model(seed: int, n_numeric: int, categorical: bool, missing: str, leaves: int, rounds: int,  # noqa: PLR0913
           early: bool) -> tuple[lgb.Booster, np.ndarray]:
    """A small LightGBM model on generated data, and its training rows."""
    x, y = _data(seed, 600, n_numeric, categorical)
    params = {"objective": "binary", "num_leaves": leaves, "learning_rate": 0.3, "min_data_in_leaf": 5,
              "min_data_per_group": 5, "cat_smooth": 1.0, "max_cat_to_onehot": 4, "verbose": -1, "seed": seed,
              "deterministic": True, "num_threads": 1, "use_missing": missing != "none",
              "zero_as_missing": missing == "zero"}
    cats = [n_numeric] if categorical else "auto"
    train_set = lgb.Dataset(x[:400], y[:400], categorical_feature=cats, free_raw_data=False)
    if not early:
        return lgb.train(params, train_set, num_boost_round=rounds), x
    valid = lgb.Dataset(x[400:], y[400:], reference=train_set, categorical_feature=cats)
    # keep_training_booster: the trees past the best iteration stay in the booster, for predict to leave out
    booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid], keep_training_booster=True,
                        callbacks=[lgb.early_stopping(3, verbose=False)])
    return booster, x


def _probes(booster: lgb.Booster, x: np.ndarray, seed: int) -> np.ndarray:
    """Rows to explain: training rows, rows on the model's own thresholds, special values and odd categories."""
    rng = np.random.default_rng(seed + 1)
    thresholds = [t for tree in booster.dump_model()["tree_info"] for t in _numeric_thresholds(tree["tree_structure"])]
    on_threshold = x[rng.integers(0, len(x), 60)].copy()
    if thresholds:
        cells = rng.random(on_threshold.shape) < 0.5
        on_threshold[cells] = rng.choice(thresholds, cells.sum())
    special = x[rng.integers(0, len(x), 60)].copy()
    cells = rng.random(special.shape) < 0.4
    special[cells] = rng.choice(np.array(SPECIAL), cells.sum())
    categories = x[rng.integers(0, len(x), 30)].copy()
    categories[:, -1] = rng.choice(np.array([-1.0, -0.5, 0.5, 2.7, 31.0, 32.0, 39.0, 64.0, 1e10, np.nan]), 30)
    return np.vstack([x[:200], on_threshold, special, categories])


def _numeric_thresholds(node: dict) -> list[float]:
    if "split_index" not in node:
        return []
    own = [node["threshold"]] if node["decision_type"] == "<=" else []
    return own + _numeric_thresholds(node["left_child"]) + _numeric_thresholds(node["right_child"])


def _assert_equal_to_lightgbm(booster: lgb.Booster, x: np.ndarray, explainer: TreeShap | None = None) -> float:
    """The explainer's values against pred_contrib (within TOL), margins and leaves against LightGBM's (exactly)."""
    explainer = TreeShap.from_booster(booster) if explainer is None else explainer
    n = booster.best_iteration or None
    expected = booster.predict(x, pred_contrib=True, num_iteration=n)
    phi = explainer(x)
    assert phi.shape == expected.shape == (len(x), booster.num_feature() + 1)
    worst = float(np.abs(phi - expected).max())
    assert worst <= TOL
    raw = booster.predict(x, raw_score=True, num_iteration=n)
    np.testing.assert_allclose(phi.sum(axis=1), raw, rtol=0, atol=TOL)
    if explainer.fallback is None:
        assert np.array_equal(explainer.leaves(x), booster.predict(x, pred_leaf=True, num_iteration=n))
        assert np.array_equal(explainer.raw(x), raw)
    return worst


def _repeats_a_feature(explainer: TreeShap) -> bool:
    """Whether some leaf's path tests a feature more than once (more edges than distinct features)."""
    return bool((explainer.leaf_depth > np.diff(explainer.slot_start)).any())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_numeric=st.integers(1, 4), categorical=st.booleans(),
       missing=st.sampled_from(["nan", "zero", "none"]), leaves=st.sampled_from([2, 3, 7, 15, 31]),
       rounds=st.integers(1, 30), early=st.booleans())
def test_random_models_equal_pred_contrib(seed: int, n_numeric: int, categorical: bool, missing: str,  # noqa: PLR0913
                                          leaves: int, rounds: int, early: bool) -> None:
    booster, x = _model(seed, n_numeric, categorical, missing, leaves, rounds, early)
    _assert_equal_to_lightgbm(booster, _probes(booster, x, seed))


def test_the_cases_the_random_models_may_miss_are_covered() -> None:
    """Early stopping before the last tree, repeated features on a path, each missing type, a category bitset of two words."""
    booster, x = _model(3, 2, True, "nan", 31, 200, early=True)
    assert 0 < booster.best_iteration < booster.num_trees()
    explainer = TreeShap.from_booster(booster)
    assert len(explainer.node_start) - 1 == booster.best_iteration, "the trees pred_contrib uses, no more"
    assert _repeats_a_feature(explainer)
    assert (np.diff(explainer.node_cats) == 2).any()
    _assert_equal_to_lightgbm(booster, _probes(booster, x, 3))
    missing_types = set()
    for missing in ("nan", "zero", "none"):
        booster, x = _model(5, 3, False, missing, 15, 20, early=False)
        explainer = TreeShap.from_booster(booster)
        missing_types |= set(explainer.node_missing[explainer.node_kind == 0].tolist())
        _assert_equal_to_lightgbm(booster, _probes(booster, x, 5), explainer)
    assert missing_types == {0, 1, 2}


def test_a_tree_of_one_leaf_adds_its_value_to_the_bias() -> None:
    x, y = _data(0, 200, 2, False)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 500}, lgb.Dataset(x, y), 3)
    explainer = TreeShap.from_booster(booster)
    assert (np.diff(explainer.slot_start) == 0).all()
    _assert_equal_to_lightgbm(booster, x)
    assert explainer(x[:0]).shape == (0, 3)


@pytest.mark.parametrize("limits", [{"max_path_features": 2}, {"max_table_bytes": 1000}],
                         ids=["a leaf tests more features", "the tables are too large"])
def test_a_model_past_the_limits_keeps_lightgbms_pred_contrib(limits: dict) -> None:
    booster, x = _model(11, 3, True, "nan", 31, 20, early=False)
    explainer = TreeShap.from_booster(booster, **limits)
    assert explainer.fallback is not None and explainer.table.size == 0
    probes = _probes(booster, x, 11)
    assert np.array_equal(explainer(probes), booster.predict(probes, pred_contrib=True))
    _assert_equal_to_lightgbm(booster, probes, explainer)
    assert TreeShap.from_booster(booster).fallback is None


def test_a_row_does_not_depend_on_its_batch() -> None:
    booster, x = _model(2, 3, True, "nan", 15, 30, early=False)
    explainer = TreeShap.from_booster(booster)
    probes = _probes(booster, x, 2)
    together = explainer(probes)
    alone = np.vstack([explainer(probes[i:i + 1]) for i in range(0, len(probes), 7)])
    assert np.array_equal(alone.view(np.uint64), together[::7].view(np.uint64))
    with pytest.raises(ValueError, match="features"):
        explainer(probes[:, :-1])


def _snapshot_matrix(bundle, frames, taxonomy) -> np.ndarray:  # noqa: ANN001
    snapshots = build_snapshots(frames.leads, frames.events, frames.feedback, inbound_types=taxonomy.inbound_types)
    return bundle.vectorizer.transform_matrix(FeatureInput(snapshots[["lead_id", "as_of"]], frames.leads,
                                                           frames.events, frames.history))


def _assert_bundle_equal(bundle, matrix: np.ndarray) -> None:  # noqa: ANN001
    """The bundle's tables and its served contributions (blend or not) against those computed with pred_contrib."""
    assert bundle.treeshap.fallback is None
    _assert_equal_to_lightgbm(bundle.booster, matrix, bundle.treeshap)
    lightgbm_only = TreeShap.from_booster(bundle.booster, max_path_features=0)  # pred_contrib through the same blend
    means = (bundle.metadata.get("blend") or {}).get("linear_means")
    if bundle.linear is None or means is None:
        expected = lightgbm_only(matrix)
    else:
        expected = contributions(bundle.booster, matrix, bundle.vectorizer.to_frame(matrix), bundle.linear,
                                 bundle.categorical, np.asarray(means), bundle.metadata["blend"]["lightgbm_weight"],
                                 lightgbm_only)
    np.testing.assert_allclose(bundle.contributions(matrix), expected, rtol=0, atol=TOL)


@pytest.mark.slow
def test_a_model_trained_by_the_project_on_generated_leads(tmp_path, taxonomy) -> None:  # noqa: ANN001
    store = generated_store(tmp_path, 3000, 17, taxonomy)
    frames = load_frames(store)
    config = TrainConfig(seed=3)
    bundle = load_bundle(save_bundle(train(frames, taxonomy, config), config, tmp_path / "champion", version="1"))
    store.close()
    matrix = _snapshot_matrix(bundle, frames, taxonomy)
    assert len(matrix) > 1000
    _assert_bundle_equal(bundle, matrix)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data sets live in {REAL_DATA} (absent here)")
def test_a_model_trained_on_the_x_education_leads(tmp_path, taxonomy) -> None:  # noqa: ANN001
    from contract.mapping import load_mapping
    from store.event_store import EventStore
    from store.ingest import ingest

    store = EventStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    ingest(load_mapping(REPO / "mappings" / "x_education.yaml"), REAL_DATA, store, taxonomy, tmp_path / "q")
    frames = load_frames(store)
    config = TrainConfig(seed=1, drop_after_contact=True)
    bundle = load_bundle(save_bundle(train(frames, taxonomy, config), config, tmp_path / "champion", version="1"))
    store.close()
    matrix = _snapshot_matrix(bundle, frames, taxonomy)
    assert len(matrix) == 9237
    _assert_bundle_equal(bundle, matrix)
