"""The README's path past one machine, through the CLI: store -> lake -> Dask training -> bulk scoring file."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
from typer.testing import CliRunner

from prospect.cli import app
from tests.conftest import demo_env

pytestmark = pytest.mark.filterwarnings("ignore")


def test_store_to_lake_to_dask_training_to_bulk_scores(tmp_path) -> None:  # noqa: ANN001
    home, lake, out = tmp_path / "home", tmp_path / "lake", tmp_path / "scores"
    env = {**demo_env(home), "PROSPECT_LAKE_BUCKETS": "4"}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, [*args, "--home", str(home)], env=env)
        assert result.exit_code == code, result.output
        return result.output

    run("generate", "--leads", "2500")
    run("ingest")
    assert "exported" in run("lake", "export", "--lake", str(lake))
    assert "nothing new since the last export" in run("lake", "export", "--lake", str(lake))
    printed = run("features", "--lake", str(lake), "--out", str(tmp_path / "features"))
    assert "over 4 partitions (local)" in printed
    features = pd.concat(pd.read_parquet(f) for f in sorted((tmp_path / "features").glob("bucket=*.parquet")))
    assert f"{len(features):,} labelled snapshots" in printed
    printed = run("train", "--lake", str(lake), "--engine", "dask")
    assert "registered" in printed and "ROC AUC" in printed
    run("promote", "--force")
    printed = run("score", "--lake", str(lake), "--out", str(out), "--as-of", "2025-10-01T00:00:00Z")
    scores = pd.concat(pd.read_parquet(f) for f in sorted(out.glob("bucket=*.parquet")))
    assert f"scored {len(scores):,} leads" in printed
    assert scores["lead_id"].is_unique and scores["probability"].between(0, 1).all()
    assert {"score", "tier", "model_version"} <= set(scores.columns) and "reasons_for" not in scores
    # the run is logged in the lake, and a logged score replays equal from it
    assert "logged in" in printed and scores["score_id"].is_unique
    logged = pd.concat(pd.read_parquet(f) for f in sorted(lake.glob("score_log/run=*/part-*.parquet")))
    assert sorted(logged["score_id"]) == sorted(scores["score_id"])
    replayed = run("replay", scores["score_id"].iloc[0], "--lake", str(lake))
    assert "(bulk)" in replayed and "equal:" in replayed


def test_unreachable_scheduler_and_missing_lake_are_clear_errors(tmp_path) -> None:  # noqa: ANN001
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = CliRunner()
    env = {**demo_env(tmp_path), "PROSPECT_DASK_TIMEOUT_S": "2"}
    missing = runner.invoke(app, ["features", "--lake", str(tmp_path / "nowhere"), "--home", str(tmp_path)], env=env)
    assert missing.exit_code == 2 and "not an event lake" in missing.output
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "manifest.json").write_text('{"buckets": 2, "runs": [{"run": 1}]}')
    result = runner.invoke(app, ["features", "--lake", str(tmp_path / "lake"), "--engine", "dask", "--scheduler",
                                 f"tcp://127.0.0.1:{port}", "--home", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert f"no Dask scheduler answered at tcp://127.0.0.1:{port}" in result.output


def test_a_store_too_big_for_one_process_points_at_the_lake_and_dask(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    env = {**demo_env(tmp_path), "PROSPECT_MAX_STORE_EVENTS": "10"}
    assert runner.invoke(app, ["generate", "--leads", "50", "--home", str(tmp_path)], env=env).exit_code == 0
    assert runner.invoke(app, ["ingest", "--home", str(tmp_path)], env=env).exit_code == 0
    for command in ("features", "train"):
        result = runner.invoke(app, [command, "--home", str(tmp_path)], env=env)
        assert result.exit_code == 2
        assert "prospect lake export" in result.output and "--engine dask" in result.output
