"""Bulk scoring's fast paths give the per-lead scorer's results: a blended bundle, no reasons, no log.

The blend's logistic part is computed block by block from each categorical column's distinct
values (runtime/raw.py); these tests hold it to scikit-learn's own transform bit for bit,
and the bulk files to the per-lead scorer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from engines.local import LocalEngine
from features.dataset import load_frames
from lake.export import export_store
from serving.bulk import bulk_score, read_scores
from serving.scoring import Scorer
from tests.conftest import REPO, generated_store
from runtime.bundle import load_bundle
from runtime.raw import blend, logistic_scores, raw_scores
from training.baselines import logistic_baseline
from training.bundle import save_bundle
from training.train import TrainConfig, prepare, train

pytestmark = pytest.mark.filterwarnings("ignore")

AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")


@pytest.fixture(scope="module")
def blended(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    """A small store and lake, and a bundle that blends LightGBM with the logistic regression (weight 0.5)."""
    home = tmp_path_factory.mktemp("bulk-blend")
    store = generated_store(home, 1500, 31, taxonomy, history=False)
    export_store(store, home / "lake", buckets=3)
    config = TrainConfig(blend_weights=(0.5,))
    bundle_dir = save_bundle(train(load_frames(store), taxonomy, config), config, home / "bundle")
    yield store, home / "lake", bundle_dir
    store.close()


def _reference(model, frame: pd.DataFrame, categorical: list[str]) -> np.ndarray:  # noqa: ANN001
    """The row-by-row sum over scikit-learn's whole preprocessed matrix, as scoring computed it before."""
    X = np.asarray(model[:-1].transform(frame.astype({c: object for c in categorical})), dtype=np.float64)
    z = np.full(len(X), model[-1].intercept_[0])
    for j, weight in enumerate(model[-1].coef_[0]):
        z += X[:, j] * weight
    return expit(z)


def test_logistic_scores_are_bit_equal_to_the_pipelines_transform(blended, taxonomy) -> None:  # noqa: ANN001
    store, _, _ = blended
    prepared = prepare(load_frames(store), taxonomy)
    frame = prepared.vectorizer.to_frame(prepared.matrix)
    fs = prepared.vectorizer.feature_set_
    half = len(frame) // 2
    model, categorical = logistic_baseline(frame.iloc[:half], prepared.y[:half], fs, seed=3)
    assert len(categorical) >= 5 and any(frame[c].isna().any() for c in categorical)
    scoring = frame.iloc[half:].copy()
    # a category the encoder never saw, and a row with every categorical missing
    column = categorical[0]
    scoring[column] = scoring[column].cat.add_categories(["never-seen"])
    scoring.iloc[0, scoring.columns.get_loc(column)] = "never-seen"
    for c in categorical:
        scoring.iloc[1, scoring.columns.get_loc(c)] = np.nan
    fast, slow = logistic_scores(model, scoring, categorical), _reference(model, scoring, categorical)
    assert np.array_equal(fast.view(np.uint64), slow.view(np.uint64))
    # the same rows one at a time: a score does not depend on the batch it came in
    ones = np.array([logistic_scores(model, scoring.iloc[i:i + 1], categorical)[0] for i in range(0, 400, 7)])
    assert np.array_equal(ones.view(np.uint64), fast[0:400:7].view(np.uint64))
    # and the sum is the regression's probability (to rounding)
    p = model.predict_proba(scoring.astype({c: object for c in categorical}))[:, 1]
    assert np.allclose(fast, p, rtol=0, atol=1e-12)


WITHOUT_TRAINING = """
import sys
from pathlib import Path

import numpy as np

sys.modules["training"] = None  # any import of the fitting code, or a pickle naming it, fails
import serving.bulk, serving.champion, serving.replay, serving.scoring  # noqa: E401, F401
from runtime.bundle import load_bundle

bundle = load_bundle(Path(sys.argv[1]))
np.save(sys.argv[3], bundle.probability(np.load(sys.argv[2])))
"""


def test_a_blended_bundle_loads_and_scores_where_the_training_package_cannot_be_imported(  # noqa: ANN001
        blended, taxonomy, tmp_path) -> None:
    """Serving and bundles need only ``runtime``: its pickled logistic part names no module of this project."""
    store, _, bundle_dir = blended
    bundle = load_bundle(bundle_dir)
    assert bundle.linear is not None
    matrix = prepare(load_frames(store), taxonomy).matrix[:300]
    np.save(tmp_path / "matrix.npy", matrix)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TRAINING, str(bundle_dir), str(tmp_path / "matrix.npy"),
                           str(tmp_path / "p.npy")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    served = np.load(tmp_path / "p.npy")
    assert np.array_equal(served.view(np.uint64), bundle.probability(matrix).view(np.uint64))


def test_bulk_scores_of_a_blended_bundle_without_reasons_equal_the_scorers(blended, tmp_path) -> None:  # noqa: ANN001
    store, root, bundle_dir = blended
    bundle = load_bundle(bundle_dir)
    assert bundle.linear is not None and bundle.metadata["blend"]["lightgbm_weight"] == 0.5
    count = bulk_score(root, bundle_dir, AS_OF, tmp_path / "scores", LocalEngine())
    scores = read_scores(tmp_path / "scores").set_index("lead_id")
    assert "reasons_for" not in scores and scores["score_id"].isna().all()
    leads = store.read_table("leads")
    existed = leads.loc[leads["created_at"] <= AS_OF, "lead_id"].tolist()
    assert count.scored == len(scores) == len(existed) > 500
    expected = Scorer(bundle).score_stored_leads(store, existed, AS_OF)
    for s in expected.scored:
        row = scores.loc[s.lead_id]
        assert row["probability"] == s.probability
        assert (row["score"], row["tier"], row["model_version"]) == (s.score, s.tier, s.model_version)
    assert scores["tier"].nunique() == 3
    # as of a moment before any lead: nothing to score, and no error from the logistic part
    early = bulk_score(root, bundle_dir, pd.Timestamp("2000-01-01T00:00:00Z"), tmp_path / "early", LocalEngine())
    assert (early.scored, early.created_after_as_of) == (0, len(leads))


def test_the_reasons_served_by_a_blended_bundle_explain_the_blended_score(blended, taxonomy) -> None:  # noqa: ANN001
    """Reasons are the blend's contributions (runtime/contributions.py): each lead's sum to the blended margin."""
    store, _, bundle_dir = blended
    bundle = load_bundle(bundle_dir)
    weight = bundle.metadata["blend"]["lightgbm_weight"]
    assert len(bundle.metadata["blend"]["linear_means"]) == bundle.linear[-1].coef_.shape[1]
    matrix = prepare(load_frames(store), taxonomy).matrix[:300]
    phi = bundle.contributions(matrix)
    linear = logistic_scores(bundle.linear, bundle.vectorizer.to_frame(matrix), bundle.categorical)
    margin = logit(blend(raw_scores(bundle.booster, matrix), linear, weight))
    np.testing.assert_allclose(phi.sum(axis=1), margin, rtol=0, atol=1e-9)
    names = bundle.vectorizer.feature_set_.names
    served = Scorer(bundle).score_matrix(matrix, [f"L{i}" for i in range(len(matrix))],
                                         pd.DatetimeIndex([AS_OF] * len(matrix)))
    tree = bundle.booster.predict(matrix, pred_contrib=True, num_iteration=bundle.booster.best_iteration or None)
    differ = 0
    for s, row, tree_row in zip(served, phi, tree, strict=True):
        ups = [names[j] for j in np.argsort(-row[:-1], kind="stable")[:3] if row[j] > 0]
        assert [r.feature for r in s.reasons_for] == ups
        assert all(r.impact == row[names.index(r.feature)] for r in s.reasons_for + s.reasons_against)
        differ += ups[:1] != [names[j] for j in np.argsort(-tree_row[:-1], kind="stable")[:1] if tree_row[j] > 0]
    assert differ > 0, "the trees alone would give the same top reasons: else this is no test"
    # the service's one-lead path gives a lead the reasons of its batch (a replay compares them exactly)
    leads = store.read_table("leads")
    ids = leads.loc[leads["created_at"] <= AS_OF, "lead_id"].tolist()[:15]
    batch = Scorer(bundle).score_stored_leads(store, ids, AS_OF).scored
    assert [(s.reasons_for, s.reasons_against) for s in batch] == [
        (one.reasons_for, one.reasons_against)
        for one in (Scorer(bundle).score_stored_leads(store, [i], AS_OF).only() for i in ids)]
    # a blended bundle saved before the means were kept explains its trees, as it did when it served
    old = replace(bundle, metadata={**bundle.metadata, "blend": {k: v for k, v in bundle.metadata["blend"].items()
                                                                 if k != "linear_means"}})
    assert np.array_equal(old.contributions(matrix), bundle.treeshap(matrix))
    np.testing.assert_allclose(old.contributions(matrix), tree, rtol=0, atol=1e-9)
    assert np.array_equal(old.probability(matrix), bundle.probability(matrix))


def test_the_reports_importances_of_a_blended_bundle_include_the_logistic_part(blended, taxonomy) -> None:  # noqa: ANN001
    """A feature the trees never split on has no TreeSHAP value at all, yet the logistic part moves the score with it."""
    from report.numbers import compute

    store, _, bundle_dir = blended
    importance = compute(load_bundle(bundle_dir), load_frames(store), taxonomy).importance
    unused = importance[importance["gain"] == 0]
    assert len(unused) > 0 and (unused["mean_abs_contribution"] > 0).all()
