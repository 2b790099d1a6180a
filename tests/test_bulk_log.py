"""The score log of bulk runs: Parquet in the lake, one row per score, joinable to the score files by
score_id, replayable from the lake; old run folders go with the retention."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from config.settings import Settings
from engines.local import LocalEngine
from features.dataset import load_frames
from lake.export import export_store
from serving.bulk import (
    SCORE_LOG_DIR,
    bulk_log_entry,
    bulk_score,
    new_run,
    prune_bulk_logs,
    read_bulk_log,
    read_scores,
)
from serving.replay import Replayer
from store.score_log import ScoreLog, score_log_table
from tests.conftest import generated_store
from runtime.bundle import load_bundle
from runtime.versions import keep_bundle
from training.bundle import save_bundle
from training.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore")

AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")


@pytest.fixture(scope="module")
def bulk_run(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    """A small lake, a champion v3 kept by version, and one logged bulk run with reasons."""
    home = tmp_path_factory.mktemp("bulk-log")
    store = generated_store(home, 1200, 5, taxonomy)
    root = home / "lake"
    export_store(store, root, buckets=3)
    config = TrainConfig()
    bundle_dir = keep_bundle(save_bundle(train(load_frames(store), taxonomy, config), config,
                                         home / "models" / "champion", version="3"), home / "bundles")
    log = new_run(root, "cli")
    count = bulk_score(root, bundle_dir, AS_OF, home / "scores", LocalEngine(), reasons=True, log=log)
    yield home, store, root, bundle_dir, log, count
    store.close()


def test_a_bulk_run_logs_one_row_per_score_equal_to_the_score_files(bulk_run) -> None:  # noqa: ANN001
    _, _, root, bundle_dir, log, count = bulk_run
    files = sorted((root / SCORE_LOG_DIR).glob("run=*/part-*.parquet"))
    assert [f.parent.name for f in files] == [log.folder.rsplit("/", 1)[-1]] * 3  # one file per partition
    logged = read_bulk_log(root)
    scores = read_scores(bulk_run[0] / "scores")
    assert len(logged) == len(scores) == count.scored > 500
    assert list(logged.columns) == [c.name for c in score_log_table.c]  # the store log's columns
    assert logged["score_id"].is_unique and scores["score_id"].is_unique
    assert (logged["endpoint"] == "bulk").all() and (logged["caller"] == "cli").all()
    assert (logged["model_version"] == "3").all() and logged["rules_version"].isna().all()
    assert (logged["feature_set_version"] == load_bundle(bundle_dir).metadata["feature_set_version"]).all()
    assert (logged["as_of"] == AS_OF.value // 1000).all() and (logged["with_reasons"] == 1).all()
    joined = scores.merge(logged, on="score_id", suffixes=("", "_log"), validate="1:1")
    assert len(joined) == len(scores)
    assert (joined["lead_id"] == joined["lead_id_log"]).all()
    assert (joined["probability"] == joined["probability_log"]).all()  # the very same floats
    assert (joined["score"] == joined["score_log"]).all() and (joined["tier"] == joined["tier_log"]).all()
    # reasons worded as the store log words them
    first = joined.iloc[0]
    reasons = json.loads(first["reasons"])
    assert " | ".join(r[1] for r in reasons["for"]) == first["reasons_for"]
    assert " | ".join(r[1] for r in reasons["against"]) == first["reasons_against"]
    assert json.loads(first["criteria"]) == []  # bulk runs evaluate no criteria


def test_bulk_scores_replay_equal_from_the_lake(bulk_run) -> None:  # noqa: ANN001
    home, store, root, _, _, _ = bulk_run
    logged = read_bulk_log(root)
    replayer = Replayer(ScoreLog(store), store, Settings(home=home), root)
    for score_id in logged["score_id"].sample(6, random_state=1):
        r = replayer.replay(score_id)
        assert r.served["endpoint"] == "bulk" and r.reason is None
        assert r.equal, r.differences
    one = logged["score_id"].iloc[0]
    assert bulk_log_entry(root, "nope") is None
    assert "no score with this id" in Replayer(ScoreLog(store), store, Settings(home=home)).replay(one).reason  # no lake given
    assert "bulk runs' log" in replayer.replay("nope").reason


def test_old_bulk_run_folders_are_pruned(tmp_path) -> None:  # noqa: ANN001
    now = pd.Timestamp("2026-06-01T00:00:00Z")
    old = new_run(tmp_path, "cli", now - pd.Timedelta(days=401))
    recent = new_run(tmp_path, "cli", now - pd.Timedelta(days=10))
    for log in (old, recent):
        (tmp_path / log.folder).mkdir(parents=True)
    (tmp_path / SCORE_LOG_DIR / "run=mine").mkdir()  # not a run folder: left alone
    assert prune_bulk_logs(tmp_path, 400, now) == 1
    assert sorted(p.name for p in (tmp_path / SCORE_LOG_DIR).iterdir()) == sorted(
        ["run=mine", recent.folder.rsplit("/", 1)[-1]])
