"""`prospect score` logs what it hands out and `prospect replay` recomputes it, as a user runs them."""

from __future__ import annotations

import re

import pandas as pd
from typer.testing import CliRunner

from prospect.cli import app
from store.event_store import EventStore
from store.score_log import ScoreLog
from tests.conftest import demo_env
from runtime.bundle import load_bundle

runner = CliRunner()


def test_cli_scores_are_logged_and_replay_equal(demo_run, tmp_path) -> None:  # noqa: ANN001
    home, _ = demo_run
    env = demo_env(home)
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", "L0000010", "L0000020", "--as-of", "2025-10-01T00:00:00Z", "--out", str(out),
                                 "--home", str(home)], env=env)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"score_id": str})
    assert scores["score_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    log = ScoreLog(EventStore(f"sqlite:///{home / 'store.sqlite'}"))
    entry = log.entry(scores["score_id"].iloc[0])
    champion = load_bundle(home / "models" / "champion").metadata["version"]  # other tests may promote
    assert entry["caller"] == "cli" and entry["lead_id"] == "L0000010" and entry["model_version"] == champion
    assert (home / "bundles" / f"v{champion}" / "model.txt").exists()  # the bundle that scored is kept by version

    printed = runner.invoke(app, ["score", "L0000030", "--as-of", "2025-10-01T00:00:00Z", "--home", str(home)], env=env)
    score_id = re.search(r"score id ([0-9a-f]{32})", printed.output).group(1)
    for sid in (score_id, scores["score_id"].iloc[1]):
        replayed = runner.invoke(app, ["replay", sid, "--home", str(home)], env=env)
        assert replayed.exit_code == 0, replayed.output
        assert "equal: the same probability to the bit" in replayed.output and f"model v{champion}" in replayed.output

    unknown = runner.invoke(app, ["replay", "0" * 32, "--home", str(home)], env=env)
    assert unknown.exit_code == 1 and "no score with this id" in unknown.output
