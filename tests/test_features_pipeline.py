"""From the store to labelled features, on generated data with known ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.dataset import load_frames, training_set
from features.vectorizer import FeatureInput, FeatureVectorizer
from prospect.cli import app
from tests.conftest import generated_store


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    store = generated_store(tmp_path_factory.mktemp("demo"), 3000, 21, taxonomy)
    yield store
    store.close()


def test_store_to_labelled_features(demo_store, taxonomy) -> None:  # noqa: ANN001
    built = training_set(load_frames(demo_store), taxonomy)
    snaps, X = built.snapshots, built.features
    assert len(X) == len(snaps) > 3000 and list(X.columns) == built.vectorizer.feature_set_.names
    assert X["events_total"].notna().all() and (X["events_total"] >= 0).all()
    assert isinstance(X["attr_industry"].dtype, pd.CategoricalDtype)
    assert built.vectorizer.feature_set_.spec("attr_budget").role == "criteria"
    # recent behaviour carries the signal the simulator put in: alone, it already ranks future prospects
    # (cumulative counts and the deepest stage ever reached stay high for leads gone cold, so they rank less)
    y = snaps["label"].to_numpy()
    # no action yet means the snapshot is taken at arrival: as fresh as it gets
    assert roc_auc_score(y, -X["days_since_last_event"].fillna(0)) > 0.8
    assert roc_auc_score(y, X["events_30d"]) > 0.75
    assert roc_auc_score(y, X["share_deep_30d"].fillna(-1)) > 0.75  # no recent activity ranks lowest
    assert roc_auc_score(y, X["events_30d"]) > roc_auc_score(y, X["events_total"])
    assert X.loc[y == 1, "events_30d"].mean() > 2 * X.loc[y == 0, "events_30d"].mean()


def test_vectoriser_behaves_as_a_scikit_learn_transformer(demo_store, taxonomy) -> None:  # noqa: ANN001
    frames = load_frames(demo_store)
    snaps = pd.DataFrame({"lead_id": frames.leads["lead_id"].head(50),
                          "as_of": frames.leads["created_at"].head(50) + pd.Timedelta(days=20)})
    X = FeatureInput(snaps, frames.leads, frames.events)
    vec = FeatureVectorizer(taxonomy=taxonomy, attributes=frames.attributes)
    assert vec.fit(X) is vec
    twin = clone(vec)
    assert twin.get_params() == vec.get_params() and not hasattr(twin, "feature_set_")
    out = twin.fit_transform(X)
    assert list(out.columns) == list(vec.get_feature_names_out())
    pd.testing.assert_frame_equal(out, vec.transform(X))
    matrix = vec.transform_matrix(X)
    assert matrix.dtype == np.float32 and matrix.shape == out.shape


def test_features_command(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    home = str(tmp_path)
    assert runner.invoke(app, ["features", "--home", home]).exit_code == 1  # empty store: a clear error
    assert runner.invoke(app, ["generate", "--leads", "600", "--home", home]).exit_code == 0
    assert runner.invoke(app, ["ingest", "--home", home]).exit_code == 0
    result = runner.invoke(app, ["features", "--home", home, "--cadence", "14"])
    assert result.exit_code == 0, result.output
    assert "labelled snapshots of 600 leads" in result.output and "53 features" in result.output
