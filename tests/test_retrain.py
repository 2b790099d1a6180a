"""`prospect retrain`: train, promote, export and report on all feedback; a second run with nothing new does nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from prospect.cli import app
from prospect.retrain import RetrainBusy, _lock, feedback_mark, last_trained_on
from store.ingest import ingest_records
from tests.conftest import generated_store
from runtime.bundle import load_bundle


def test_retrain_is_idempotent_and_picks_up_new_feedback(tmp_path, taxonomy) -> None:  # noqa: ANN001
    store = generated_store(tmp_path, 2500, 29, taxonomy)
    env = {"PROSPECT_HOME": str(tmp_path), "PROSPECT_STORE_URL": store.url, "MLFLOW_TRACKING_URI": "",
           "PROSPECT_MODELS_DIR": str(tmp_path / "models")}
    runner = CliRunner()

    first = runner.invoke(app, ["retrain", "--home", str(tmp_path)], env=env)
    flat = " ".join(first.output.split())
    assert first.exit_code == 0, first.output
    assert "(first retrain); registered version 1 as challenger" in flat and "promoted v1" in flat
    assert load_bundle(tmp_path / "models" / "champion").metadata["version"] == "1"
    report = tmp_path / "report" / "report.html"
    assert report.exists() and "model 1" in report.read_text()
    assert last_trained_on(tmp_path / "retrain") == feedback_mark(store)

    again = runner.invoke(app, ["retrain", "--home", str(tmp_path)], env=env)
    assert again.exit_code == 0 and "nothing new since the last retrain" in again.output, again.output
    assert len(list((tmp_path / "mlartifacts").rglob("bundle/model.txt"))) == 1  # no second model registered

    # sales answers two more leads: the next run trains on them
    answers = pd.DataFrame({"feedback_id": ["r-1", "r-2"], "lead_id": ["L0000001", "L0000002"],
                            "ts": [pd.Timestamp("2026-05-01T00:00:00Z")] * 2, "outcome": ["prospect", "not_prospect"],
                            "reason": [None, "no_budget"]})
    assert ingest_records(store, "feedback", answers, taxonomy).stored == 2
    third = runner.invoke(app, ["retrain", "--home", str(tmp_path)], env=env)
    flat = " ".join(third.output.split())
    assert third.exit_code == 0 and "registered version 2 as challenger" in flat, third.output
    assert f"{feedback_mark(store).rows:,} feedback rows" in flat and last_trained_on(tmp_path / "retrain").rows == feedback_mark(store).rows


def test_a_second_retrain_while_one_runs_does_nothing(tmp_path) -> None:  # noqa: ANN001
    with _lock(tmp_path), pytest.raises(RetrainBusy, match="another `prospect retrain` is running"), _lock(tmp_path):
        pass
