"""The monitor on the simulator's shift scenario: it names the three shifted features among the five that
moved most and exits non-zero; on the same funnel without the shift it exits zero. The page renders in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from contract.mapping import load_mapping
from features.dataset import StoreFrames, load_frames
from features.vectorizer import FeatureInput
from prospect.cli import app
from serving.scoring import Scorer
from simulator.funnel import FunnelConfig, generate
from simulator.shift import SHIFTED_FEATURES
from store.event_store import EventStore
from store.ingest import ingest
from store.score_log import ScoreLog, Served, new_block_id
from tests.conftest import REPO
from tests.test_report import ARTIFACTS, _chromium
from runtime.bundle import load_bundle
from training.bundle import save_bundle
from training.monitor import all_snapshots, check_health, outcomes
from training.train import TrainConfig, train

SHIFT = "2025-09-01"
T = pd.Timestamp(SHIFT, tz="UTC")


def _until(frames: StoreFrames, moment: pd.Timestamp) -> StoreFrames:
    """The store as it was at ``moment``: what a model trained then could see."""
    return StoreFrames(frames.leads[frames.leads["created_at"] < moment], frames.events[frames.events["ts"] < moment],
                       frames.feedback[frames.feedback["ts"] < moment], frames.attributes)


def _serve_history(store: EventStore, scorer: Scorer, frames: StoreFrames, n: int = 3000) -> None:
    """Log what the service would have served since the model went live: live snapshots, each served a
    minute after its as-of time."""
    snaps = all_snapshots(frames, 7.0)
    live = snaps[snaps["as_of"] >= T].sample(n, random_state=1).sort_values(["lead_id", "as_of"])
    matrix = scorer.bundle.vectorizer.transform_matrix(FeatureInput(live[["lead_id", "as_of"]], frames.leads,
                                                                    frames.events))
    scored = scorer.score_matrix(matrix, live["lead_id"].tolist(), pd.DatetimeIndex(live["as_of"]), reasons=False)
    ScoreLog(store).write([Served(new_block_id(), [s], s.as_of.value // 1000 + 60_000_000, "crm", "score_batch")
                           for s in scored])


def _home(root: Path, taxonomy, shift: str | None) -> Path:  # noqa: ANN001
    home = root / ("shifted" if shift else "steady")
    generate(FunnelConfig(n_leads=4000, seed=13, shift_at=shift), home / "demo", taxonomy)
    store = EventStore(f"sqlite:///{home / 'store.sqlite'}")
    ingest(load_mapping(REPO / "mappings" / "demo.yaml"), home / "demo", store, taxonomy, home / "q")
    frames = load_frames(store)
    config = TrainConfig(seed=1)
    folder = save_bundle(train(_until(frames, T), taxonomy, config), config, home / "models" / "champion", version="1")
    _serve_history(store, Scorer(load_bundle(folder)), frames)
    store.close()
    return home


@pytest.fixture(scope="module")
def homes(tmp_path_factory, taxonomy) -> dict[str, Path]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("monitor")
    return {"shifted": _home(root, taxonomy, SHIFT), "steady": _home(root, taxonomy, None)}


def _monitor(home: Path) -> tuple[int, str]:
    env = {"PROSPECT_HOME": str(home), "PROSPECT_MODELS_DIR": str(home / "models"), "PROSPECT_STORE_URL": "",
           "MLFLOW_TRACKING_URI": ""}
    result = CliRunner().invoke(app, ["monitor", "--since", SHIFT, "--home", str(home),
                                      "--store", f"sqlite:///{home / 'store.sqlite'}"], env=env)
    return result.exit_code, " ".join(result.output.split())


def test_the_shifted_features_are_among_the_five_that_moved_most(homes) -> None:  # noqa: ANN001
    store = EventStore(f"sqlite:///{homes['shifted'] / 'store.sqlite'}")
    h = check_health(load_bundle(homes["shifted"] / "models" / "champion"), load_frames(store), ScoreLog(store).frame(),
                     T)
    top5 = h.drift["feature"].head(5).tolist()
    assert set(SHIFTED_FEATURES) <= set(top5), h.drift.head(8)
    assert h.alarms and h.exit_code == 1
    # the scores and feedback come from the log: every served score with a passed horizon is counted
    assert h.score_source.endswith("(score log)") and h.metrics["n"] > 1000 and 0.5 < h.metrics["roc_auc"] <= 1


def test_monitor_exits_non_zero_on_the_shift_and_zero_without_it(homes) -> None:  # noqa: ANN001
    code, output = _monitor(homes["shifted"])
    assert code == 1, output
    assert "alarm: Share of actions in business hours" in output and "Channel that brought the lead in" in output
    code, output = _monitor(homes["steady"])
    assert code == 0 and "no limit crossed" in output, output
    figures = json.loads((homes["steady"] / "monitor" / "health.json").read_text())
    assert figures["alarms"] == 0 and figures["max_feature_psi"] < 0.25 and figures["scores_with_feedback"] > 1000


def test_outcomes_take_the_first_answer_after_serving_within_the_horizon() -> None:
    at = pd.Timestamp("2025-03-01T00:00:00Z")
    served = pd.DataFrame({"lead_id": ["A", "B", "C", "D"], "served_at": [at] * 4, "tier": ["warming"] * 4,
                           "probability": [0.1, 0.2, 0.3, 0.4]})
    feedback = pd.DataFrame({
        "lead_id": ["A", "A", "B", "C", "D"],
        "ts": [at - pd.Timedelta(days=1), at + pd.Timedelta(days=3), at + pd.Timedelta(days=2), at + pd.Timedelta(days=45),
               at + pd.Timedelta(days=40)],
        "outcome": ["not_prospect", "prospect", "not_prospect", "prospect", "prospect"],
        "reason": ["no_budget", None, "no_need", None, None]})
    joined = outcomes(served, feedback, 30, at + pd.Timedelta(days=60))
    # A: the answer before serving is not about this score; C, D: answered after the horizon
    assert joined["outcome"].tolist() == ["prospect", "not_prospect", "unanswered", "unanswered"]
    assert joined["reason"].tolist()[1] == "no_need" and np.allclose(joined["delay_days"].iloc[:2], [3, 2])
    # a score whose horizon has not passed yet is left out
    assert len(outcomes(served, feedback, 30, at + pd.Timedelta(days=10))) == 0


def test_the_health_page_renders_every_section_in_chromium(homes) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    _monitor(homes["shifted"])
    page_path = homes["shifted"] / "monitor" / "health.html"
    html = page_path.read_text()
    assert "<script" not in html and 'src="http' not in html and 'href="http' not in html
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_chromium()), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed request {r.url}"))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        for section in ("verdict", "drift", "scores", "feedback"):
            assert page.locator(f"section#{section}").is_visible() and page.locator(f"section#{section} h2").inner_text()
        for chart in ("chart-drift", "chart-score-drift", "chart-feedback-calibration"):
            box = page.locator(f"#{chart} svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150, (chart, box)
        for table in ("headline-table", "drift-table", "tier-share-table", "feedback-table"):
            assert page.locator(f"#{table} tbody tr").count() >= 3, table
        assert "Share of actions in business hours" in page.locator("#alarm-list").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "health.png"), full_page=True)
        browser.close()
    assert not problems, problems


def test_generate_shift_at_moves_only_what_it_names(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    for name, extra in (("steady", []), ("shifted", ["--shift-at", SHIFT])):
        result = runner.invoke(app, ["generate", "--leads", "600", "--seed", "4", "--out", str(tmp_path / name),
                                     "--home", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
    read = {n: {t: pd.read_parquet(tmp_path / n / f"{t}.parquet") for t in ("leads", "events", "feedback")}
            for n in ("steady", "shifted")}
    steady, shifted = read["steady"], read["shifted"]
    pd.testing.assert_frame_equal(steady["feedback"], shifted["feedback"])  # same conversions and answers
    before = steady["leads"]["created_at"] < T
    pd.testing.assert_frame_equal(steady["leads"][before], shifted["leads"][before])
    late = shifted["events"][shifted["events"]["ts"] >= T]
    inbound = late[~late["type"].isin(["email_sent", "call_attempt", "linkedin_message_sent"])]
    assert (inbound["ts"].dt.hour >= 19).all() and len(inbound) > 100
    assert (shifted["leads"].loc[~before, "source"] == "events").mean() > 0.6
    bad = runner.invoke(app, ["generate", "--leads", "10", "--shift-at", "someday", "--out", str(tmp_path / "x"),
                              "--home", str(tmp_path)])
    assert bad.exit_code == 2 and "someday" in bad.output


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift() -> None:
    from training.drift import psi

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    assert psi(ref, rng.normal(0, 1, 20_000)) < 0.01
    small, large = psi(ref, rng.normal(0.3, 1, 20_000)), psi(ref, rng.normal(1.0, 1, 20_000))
    assert 0.05 < small < 0.25 < large
    # a feature that starts being missing moves too: missing is a bin of its own
    gone = np.where(rng.random(20_000) < 0.5, np.nan, rng.normal(0, 1, 20_000))
    assert psi(ref, gone) > 0.25
    # categories: a new one counts as one more bin; the same mix gives about zero
    cats = rng.integers(0, 4, 20_000).astype(float)
    assert psi(cats, rng.integers(0, 4, 20_000).astype(float), categorical=True) < 0.01
    assert psi(cats, np.full(5_000, 9.0), categorical=True) > 1
