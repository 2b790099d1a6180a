"""Scoring with a trained bundle: one lead from the store equals the batch path; reasons are real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.dataset import load_frames
from features.vectorizer import FeatureInput
from prospect.cli import app
from serving.criteria import Criteria
from serving.scoring import CreatedAfterAsOf, Scorer, describe_value
from tests.conftest import generated_store, write_yaml
from runtime.bundle import load_bundle
from training.bundle import save_bundle
from training.train import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("scoring")
    store = generated_store(folder, 5000, 41, taxonomy)
    frames = load_frames(store)
    config = TrainConfig(seed=2)
    bundle_dir = save_bundle(train(frames, taxonomy, config), config, folder / "models" / "champion", version="9")
    bundle = load_bundle(bundle_dir)
    yield store, frames, Scorer(bundle, Criteria.load(None, bundle.vectorizer.taxonomy_))
    store.close()


def _frames_scores(scorer: Scorer, frames, ids: list[str], as_of: pd.Timestamp) -> list:  # noqa: ANN001
    """Scores through the DataFrame vectoriser and :meth:`Scorer.score_matrix` (what bulk scoring does)."""
    snapshots = pd.DataFrame({"lead_id": ids, "as_of": as_of})
    matrix = scorer.bundle.vectorizer.transform_matrix(FeatureInput(snapshots, frames.leads, frames.events,
                                                                    frames.history))
    return scorer.score_matrix(matrix, ids, pd.DatetimeIndex(snapshots["as_of"]))


def test_one_stored_lead_scores_like_the_batch_path(trained) -> None:  # noqa: ANN001
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-08-01T12:00:00Z")
    ids = frames.leads.loc[frames.leads["created_at"] < as_of, "lead_id"].head(40).tolist()
    batch = _frames_scores(scorer, frames, ids, as_of)
    for expected in batch:
        one = scorer.score_stored_leads(store, [expected.lead_id], as_of).only()
        assert one.probability == pytest.approx(expected.probability, abs=1e-12)
        assert (one.score, one.tier) == (expected.score, expected.tier)
        assert [r.text for r in one.reasons_for] == [r.text for r in expected.reasons_for]
        assert one.model_version == "9"
    with pytest.raises(KeyError):
        scorer.score_stored_leads(store, ["nobody"], as_of).only()
    # a lead is not scored as of a moment before it existed: nothing was known about it then
    later = frames.leads.loc[frames.leads["created_at"] > as_of, "lead_id"].iloc[0]
    with pytest.raises(CreatedAfterAsOf, match="created after as_of"):
        scorer.score_stored_leads(store, [later], as_of).only()


def test_reasons_are_the_largest_contributions_in_plain_words(trained) -> None:  # noqa: ANN001
    _, frames, scorer = trained
    as_of = pd.Timestamp("2025-10-01T00:00:00Z")
    active = frames.events.groupby("lead_id")["ts"].max()
    ids = active[(active < as_of) & (active > as_of - pd.Timedelta(days=10))].index[:20].tolist()
    scored = _frames_scores(scorer, frames, ids, as_of)
    probabilities = np.array([s.probability for s in scored])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    for s in scored:
        assert 0 <= s.score <= 100 and s.tier in ("prospect-ready", "warming", "early lead")
        assert len(s.reasons_for) <= 3 and all(r.impact > 0 for r in s.reasons_for)
        assert all(r.impact < 0 for r in s.reasons_against)
        impacts = [r.impact for r in s.reasons_for]
        assert impacts == sorted(impacts, reverse=True)
        assert all(":" in r.text and r.text.split(":")[1].strip() for r in s.reasons_for + s.reasons_against)
    recent = [r.text for s in scored for r in s.reasons_for if r.feature == "days_since_last_event"]
    assert recent and all(t.endswith(("days", "1 day", "less than a day")) for t in recent)


def test_values_are_worded_by_unit() -> None:
    from features.registry import FeatureSpec

    days = FeatureSpec("d", "float", "recency", "Days since the last action", "days")
    assert describe_value(days, 2.2, None) == "2 days" and describe_value(days, float("nan"), None) == "none yet"
    assert describe_value(days, 0.7, None) == "1 day" and describe_value(days, 0.1, None) == "less than a day"
    share = FeatureSpec("s", "float", "timing", "Share of actions at weekends", "share")
    assert describe_value(share, 0.25, None) == "25%"
    cat = FeatureSpec("c", "category", "profile", "Industry of the company", "")
    assert describe_value(cat, 1.0, ("retail", "software")) == "software"


def test_score_command_without_champion_and_with_unknown_ids(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    result = runner.invoke(app, ["score", "L1", "--home", str(tmp_path)], env={"PROSPECT_MODELS_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "no champion model" in result.output


def test_cli_scores_stored_leads_and_names_the_ones_it_skips(trained, tmp_path) -> None:  # noqa: ANN001
    store, frames, scorer = trained
    folder = Path(store.url.removeprefix("sqlite:///")).parent
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    created = frames.leads.set_index("lead_id")["created_at"]
    old, later = created[created <= as_of].index[0], created[created > as_of].index[0]
    result = CliRunner().invoke(app, ["score", old, later, "nobody", "--as-of", as_of.isoformat(), "--out",
                                      str(tmp_path / "scores.csv"), "--store", store.url, "--home", str(folder)],
                                env={"PROSPECT_MODELS_DIR": str(folder / "models")})
    assert result.exit_code == 0, result.output
    assert "not in the store, skipped: 1" in result.output and "created after --as-of, skipped: 1" in result.output
    rows = pd.read_csv(tmp_path / "scores.csv")
    assert rows["lead_id"].tolist() == [old]
    assert rows["probability"].iloc[0] == round(scorer.score_stored_leads(store, [old], as_of).only().probability, 4)


def test_batch_of_stored_leads_equals_one_at_a_time(trained) -> None:  # noqa: ANN001
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    created = frames.leads.set_index("lead_id")["created_at"]
    ids = created[created <= as_of].sample(60, random_state=3).index.tolist()
    later = created[created > as_of].index[:2].tolist()
    batch, unknown, created_after_as_of = scorer.score_stored_leads(store, [*ids, "nobody", later[0], ids[0], later[1]],
                                                              as_of)
    assert unknown == ["nobody"] and [s.lead_id for s in batch] == ids and created_after_as_of == later
    trends = set()
    for got in batch:
        one = scorer.score_stored_leads(store, [got.lead_id], as_of).only()
        assert got.probability == pytest.approx(one.probability, abs=1e-12)
        assert (got.score, got.tier, got.trend, got.score_week_ago) == (one.score, one.tier, one.trend,
                                                                       one.score_week_ago)
        assert got.reasons_for == one.reasons_for and got.criteria == one.criteria
        trends.add(got.trend)
    assert {"new", "steady"} <= trends or len(trends) >= 2
    quick = scorer.score_stored_leads(store, ids, as_of, reasons=False).scored
    assert [q.probability for q in quick] == [b.probability for b in batch]
    assert all(not q.reasons_for and not q.reasons_against and not q.with_reasons for q in quick)
    assert all(b.with_reasons for b in batch)


def test_a_tiers_batch_explains_the_leads_a_caller_shows_as_a_full_batch_would(trained) -> None:  # noqa: ANN001
    """reasons="tiers": prospect-ready and warming leads carry the reasons a full batch gives them, to the
    bit; early leads carry none and say so; everything else is the full batch's."""
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    created = frames.leads.set_index("lead_id")["created_at"]
    ids = created[created <= as_of].sample(300, random_state=5).index.tolist()
    full = scorer.score_stored_leads(store, ids, as_of).scored
    shown = scorer.score_stored_leads(store, ids, as_of, reasons="tiers").scored
    assert {s.tier for s in full} == {"prospect-ready", "warming", "early lead"}  # every tier is in the sample
    for f, t in zip(full, shown, strict=True):
        assert t.with_reasons == (f.tier != "early lead")
        if t.with_reasons:
            assert (t.reasons_for, t.reasons_against) == (f.reasons_for, f.reasons_against)
        else:
            assert not t.reasons_for and not t.reasons_against
        assert (t.probability, t.score, t.tier, t.trend, t.criteria) == (f.probability, f.score, f.tier, f.trend,
                                                                        f.criteria)


def test_a_batch_without_criteria_is_the_full_batch_without_them(trained) -> None:  # noqa: ANN001
    """criteria=False (a nightly re-ranking): no criteria and no rules version; probability, score, tier,
    trend and reasons are the full batch's, to the bit."""
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    created = frames.leads.set_index("lead_id")["created_at"]
    ids = created[created <= as_of].sample(200, random_state=6).index.tolist()
    full = scorer.score_stored_leads(store, ids, as_of, reasons=False).scored
    ranked = scorer.score_stored_leads(store, ids, as_of, reasons=False, criteria=False).scored
    assert all(f.criteria and f.rules_version for f in full)
    assert all(r.criteria == [] and r.rules_version is None for r in ranked)
    fields = ("lead_id", "probability", "score", "tier", "score_week_ago", "trend", "with_reasons", "model_version")
    assert [[getattr(r, k) for k in fields] for r in ranked] == [[getattr(f, k) for k in fields] for f in full]
    explained = scorer.score_stored_leads(store, ids[:20], as_of, criteria=False).scored
    assert [(e.reasons_for, e.reasons_against) for e in explained] == [
        (f.reasons_for, f.reasons_against) for f in scorer.score_stored_leads(store, ids[:20], as_of).scored]


def test_trend_compares_with_the_score_a_week_earlier(trained) -> None:  # noqa: ANN001
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    old = frames.leads.loc[frames.leads["created_at"] < as_of - pd.Timedelta(days=30), "lead_id"].head(200).tolist()
    for got in scorer.score_stored_leads(store, old, as_of)[0]:
        earlier = scorer.score_stored_leads(store, [got.lead_id], as_of - pd.Timedelta(days=7)).only()
        assert got.score_week_ago == earlier.score
        change = got.score - earlier.score
        assert got.trend == ("improving" if change >= 5 else "fading" if change <= -5 else "steady")
    young = frames.leads.loc[frames.leads["created_at"].between(as_of - pd.Timedelta(days=3), as_of), "lead_id"]
    young = young.head(5).tolist()
    assert young and all(s.trend == "new" and s.score_week_ago is None
                         for s in scorer.score_stored_leads(store, young, as_of)[0])


def test_criteria_stand_beside_an_unchanged_score(trained, tmp_path, taxonomy) -> None:  # noqa: ANN001
    store, frames, scorer = trained
    as_of = pd.Timestamp("2025-09-15T08:00:00Z")
    ids = frames.leads["lead_id"].head(50).tolist()
    plain = Scorer(scorer.bundle)  # no criteria at all
    strict = Scorer(scorer.bundle, Criteria.load(write_yaml(tmp_path / "strict.yaml", {"criteria": {
        "budget": {"label": "Budget", "rules": [{"attribute": "budget", "met": ["never"]}]}}}), taxonomy))
    runs = [s.score_stored_leads(store, ids, as_of)[0] for s in (scorer, plain, strict)]
    for a, b, c in zip(*runs, strict=True):
        assert a.probability == b.probability == c.probability and a.score == b.score == c.score
        assert a.reasons_for == b.reasons_for and not b.criteria
    packaged = {c.status for s in runs[0] for c in s.criteria if c.name == "budget"}
    edited = {c.status for s in runs[2] for c in s.criteria}
    assert "met" in packaged and edited <= {"not_met", "unknown"}


def test_a_past_moment_shows_the_attribute_values_of_that_moment(trained, monkeypatch) -> None:  # noqa: ANN001
    """One lead scored the day before and the day after sales recorded its budget (simulator history)."""
    store, frames, scorer = trained
    monkeypatch.setattr("serving.scoring.REASONS", len(scorer.specs))  # word every contribution, not the top 3
    created = frames.leads.set_index("lead_id")["created_at"]
    budget = frames.history[frames.history["attribute"] == "budget"]
    learned = budget[budget["recorded_at"] > budget["lead_id"].map(created) + pd.Timedelta(days=3)]
    checked = 0
    for lead_id, value, at in learned[["lead_id", "value", "recorded_at"]].head(40).itertuples(index=False):
        before = scorer.score_stored_leads(store, [lead_id], at - pd.Timedelta(days=1)).only()
        after = scorer.score_stored_leads(store, [lead_id], at + pd.Timedelta(days=1)).only()
        crit = {s: next(c for c in x.criteria if c.name == "budget") for s, x in (("before", before), ("after", after))}
        assert crit["before"].status == "unknown" and "not recorded: budget" in crit["before"].evidence
        assert crit["after"].status == ("met" if value == "yes" else "not_met")
        assert crit["after"].evidence == f"budget is {value}"
        reasons = {s: [r.text for r in x.reasons_for + x.reasons_against if r.feature == "attr_budget"]
                   for s, x in (("before", before), ("after", after))}
        if reasons["before"] and reasons["after"]:
            assert reasons["before"][0].endswith(": unknown") and reasons["after"][0].endswith(f": {value}")
            checked += 1
        # the static value (today's) never shows before it was recorded
        assert not any(r.endswith(f": {value}") for r in reasons["before"])
    assert checked >= 5, "the budget moved the score of too few of these leads to check its reason"
