"""The demo-data simulator: deterministic, consistent with its ground truth, and its dynamics are real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.taxonomy import Taxonomy
from simulator.funnel import FunnelConfig, generate

N = 6_000


@pytest.fixture(scope="module")
def funnel(tmp_path_factory, taxonomy: Taxonomy) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("funnel")
    paths = generate(FunnelConfig(n_leads=N, seed=11), folder, taxonomy)
    return {name: pd.read_parquet(path) for name, path in paths.items()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, taxonomy: Taxonomy) -> None:
    a = generate(FunnelConfig(n_leads=1500, seed=5), tmp_path / "a", taxonomy)
    b = generate(FunnelConfig(n_leads=1500, seed=5), tmp_path / "b", taxonomy)
    c = generate(FunnelConfig(n_leads=1500, seed=6), tmp_path / "c", taxonomy)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
        assert a[name].read_bytes() != c[name].read_bytes(), name


def test_output_respects_the_data_contract(funnel, taxonomy: Taxonomy) -> None:  # noqa: ANN001
    leads, events, feedback = funnel["leads"], funnel["events"], funnel["feedback"]
    assert len(leads) == N and leads["lead_id"].is_unique
    assert 7 <= len(events) / N <= 14, "about ten events per lead"
    assert set(events["type"]) <= set(taxonomy.types)
    assert events["event_id"].is_unique
    created = leads.set_index("lead_id")["created_at"]
    assert (events["ts"] >= created.loc[events["lead_id"]].to_numpy()).all(), "no event before the lead exists"
    assert (feedback["ts"] > created.loc[feedback["lead_id"]].to_numpy()).all()
    end = FunnelConfig().end_ts
    assert events["ts"].max() < end and feedback["ts"].max() < end
    assert set(feedback["outcome"]) == {"prospect", "not_prospect"}
    assert 0.05 < (feedback["outcome"] == "prospect").sum() / N < 0.2
    assert feedback["lead_id"].nunique() < N, "not every lead gets feedback"
    for col in ("budget", "authority", "need", "timeline"):
        filled = leads[col].notna().mean()
        assert 0.2 < filled < 0.8, f"{col} should be partly filled, is {filled:.0%}"
    assert set(events["type"]) >= {"email_sent", "email_reply", "demo_request", "return_visit"}


def test_feedback_agrees_with_the_ground_truth(funnel) -> None:  # noqa: ANN001
    truth = funnel["truth"].set_index("lead_id")
    prospects = funnel["feedback"].query("outcome == 'prospect'")["lead_id"]
    assert (truth.loc[prospects, "conversion_day"] >= 0).all()
    assert not truth.loc[prospects, "flipped"].any()
    converted = truth.query("conversion_day >= 0 and not flipped").index
    assert set(converted) == set(prospects)
    # delay: feedback comes one to eight days after the conversion day
    fb = funnel["feedback"].query("outcome == 'prospect'").set_index("lead_id")
    days = (fb["ts"] - truth.loc[fb.index, "day0"]).dt.total_seconds() / 86400 - truth.loc[fb.index, "conversion_day"]
    assert days.between(1, 8).all()


def _behaviour_before(events: pd.DataFrame, cutoff: pd.Series, taxonomy: Taxonomy) -> pd.DataFrame:
    """Active days and deepest stage per lead, from events in the 60 days strictly before its cutoff."""
    ev = events[events["lead_id"].isin(cutoff.index)].copy()
    ev["cutoff"] = cutoff.loc[ev["lead_id"]].to_numpy()
    ev = ev[(ev["ts"] < ev["cutoff"]) & (ev["ts"] >= ev["cutoff"] - pd.Timedelta(days=60))]
    ev["level"] = ev["type"].map(taxonomy.stage_level)
    ev["day"] = ev["ts"].dt.floor("D")
    out = ev.groupby("lead_id").agg(active_days=("day", "nunique"), deepest=("level", "max"))
    return out.reindex(cutoff.index, fill_value=0)


def test_future_prospects_return_more_and_go_deeper_beforehand(funnel, taxonomy: Taxonomy) -> None:  # noqa: ANN001
    fb = funnel["feedback"].sort_values("ts").drop_duplicates("lead_id")
    positive = fb[fb["outcome"] == "prospect"].set_index("lead_id")["ts"]
    negative = fb[fb["outcome"] == "not_prospect"].set_index("lead_id")["ts"]
    pos = _behaviour_before(funnel["events"], positive, taxonomy)
    neg = _behaviour_before(funnel["events"], negative, taxonomy)
    assert pos["active_days"].mean() > 1.5 * neg["active_days"].mean()
    assert pos["deepest"].mean() > neg["deepest"].mean() + 0.5
    assert (pos["deepest"] == len(taxonomy.stages)).mean() > 2 * (neg["deepest"] == len(taxonomy.stages)).mean()


def test_intent_drives_reply_speed(funnel) -> None:  # noqa: ANN001
    ev = funnel["events"].sort_values(["lead_id", "ts"])
    truth = funnel["truth"].set_index("lead_id")
    replies = ev[ev["type"].isin(["email_reply", "linkedin_message_reply"])]
    sent = ev[ev["type"].isin(["email_sent", "linkedin_message_sent"])]
    merged = pd.merge_asof(replies.sort_values("ts"), sent.sort_values("ts")[["lead_id", "ts"]].rename(
        columns={"ts": "sent_ts"}), left_on="ts", right_on="sent_ts", by="lead_id")
    hours = (merged["ts"] - merged["sent_ts"]).dt.total_seconds() / 3600
    high_fit = truth.loc[merged["lead_id"], "fit"].to_numpy() > np.median(truth["fit"])
    assert hours[high_fit].median() < hours[~high_fit].median()


def test_refuses_a_simulation_that_reaches_into_the_future(tmp_path: Path, taxonomy: Taxonomy) -> None:
    with pytest.raises(ValueError, match="in the future"):
        generate(FunnelConfig(n_leads=10, start="2099-01-01"), tmp_path, taxonomy)


def _weekly_snapshots(funnel, horizon_days: int = 30) -> pd.DataFrame:  # noqa: ANN001
    """(lead, as-of) pairs every 7 days from creation until the first prospect answer or the last full horizon."""
    leads = funnel["leads"].set_index("lead_id")
    prospect_at = funnel["feedback"].query("outcome == 'prospect'").groupby("lead_id")["ts"].min()
    last = FunnelConfig().end_ts - pd.Timedelta(days=horizon_days)
    stop = prospect_at.reindex(leads.index).fillna(last).clip(upper=last)
    weeks = np.arange(0, 60)
    snap = pd.DataFrame({"lead_id": np.repeat(leads.index, len(weeks)), "k": np.tile(weeks, len(leads))})
    created = pd.DatetimeIndex(leads.loc[snap["lead_id"], "created_at"])
    snap["as_of"] = created + pd.to_timedelta(snap["k"].to_numpy() * 7 + 1, unit="D")
    snap = snap[snap["as_of"] < stop.loc[snap["lead_id"]].to_numpy()]
    answer = prospect_at.reindex(snap["lead_id"]).to_numpy()
    snap["label"] = (answer > snap["as_of"].to_numpy()) & (answer <= (snap["as_of"] + pd.Timedelta(days=horizon_days)))
    return snap.reset_index(drop=True)


def test_true_probabilities_are_calibrated_and_sharp(funnel) -> None:  # noqa: ANN001
    from sklearn.metrics import roc_auc_score

    from simulator.truth import prospect_probability

    snap = _weekly_snapshots(funnel)
    p = prospect_probability(funnel["truth"], snap["lead_id"], snap["as_of"], horizon_days=30)
    y = snap["label"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert abs(p.mean() - y.mean()) < 0.1 * y.mean(), (p.mean(), y.mean())
    # calibrated in every bin of the true probability: observed rates within a quarter of the predicted ones
    bins = pd.qcut(p, 20, labels=False, duplicates="drop")
    table = pd.DataFrame({"p": p, "y": y, "bin": bins}).groupby("bin")[["p", "y"]].mean()
    assert ((table["p"] - table["y"]).abs() <= 0.25 * table["p"] + 0.001).all(), table
    assert table["y"].iloc[-1] > 0.1, "the top bin holds leads that really are about to convert"
    auc = roc_auc_score(y, p)
    fit_only = roc_auc_score(y, funnel["truth"].set_index("lead_id").loc[snap["lead_id"], "fit"])
    assert auc > 0.85 and auc > fit_only + 0.05, (auc, fit_only)


def test_converted_leads_keep_acting_until_sales_answers(funnel) -> None:  # noqa: ANN001
    """Going quiet at conversion would tell the model the label before sales does (it did, before)."""
    truth = funnel["truth"].set_index("lead_id")
    fb = funnel["feedback"].query("outcome == 'prospect'").set_index("lead_id")["ts"]
    conv = truth.loc[fb.index]
    converted_at = conv["day0"] + pd.to_timedelta(conv["conversion_day"] + 1, unit="D")
    ev = funnel["events"][funnel["events"]["lead_id"].isin(fb.index)]
    ev = ev[~ev["type"].isin(["email_sent", "call_attempt", "linkedin_message_sent"])]
    after = (ev["ts"].to_numpy() >= converted_at.loc[ev["lead_id"]].to_numpy()) & \
        (ev["ts"].to_numpy() < fb.loc[ev["lead_id"]].to_numpy())
    days_between = ((fb - converted_at) / pd.Timedelta(days=1)).clip(lower=0)
    per_day_after = after.sum() / days_between.sum()
    before = ev["ts"].to_numpy() < (converted_at - pd.Timedelta(days=14)).loc[ev["lead_id"]].to_numpy()
    assert per_day_after > 0.05, f"{per_day_after:.3f} inbound events a lead-day between conversion and answer"
    assert before.any()


def test_the_drift_scenario_moves_the_base_rate_and_channel_mix_and_the_default_does_not(
        funnel, tmp_path: Path, taxonomy: Taxonomy) -> None:  # noqa: ANN001
    from simulator.truth import prospect_probability

    cfg = FunnelConfig(n_leads=6000, seed=11, drift_at=0.6)
    paths = generate(cfg, tmp_path / "drift", taxonomy)
    leads, truth, feedback = (pd.read_parquet(paths[n]) for n in ("leads", "truth", "feedback"))
    point = cfg.start_ts + pd.Timedelta(days=0.6 * round(cfg.months * 30.44))
    late = (leads["created_at"] >= point).to_numpy()
    assert (truth["hazard_shift"].to_numpy()[late] == cfg.drift_hazard).all() and (truth["hazard_shift"][~late] == 0).all()
    prospects = leads["lead_id"].isin(feedback.query("outcome == 'prospect'")["lead_id"]).to_numpy()
    assert prospects[late].mean() > 1.8 * prospects[~late].mean(), "the base rate rises after the drift point"
    referral = (leads["source"] == "referral").to_numpy()
    assert referral[late].mean() > 1.5 * referral[~late].mean(), "the channel mix changes"
    # the oracle knows the shift: its probabilities rise with it
    at = leads["created_at"] + pd.Timedelta(days=3)
    p = prospect_probability(truth, leads["lead_id"], at, 30)
    assert p[late].mean() > 1.8 * p[~late].mean()
    assert (funnel["truth"]["hazard_shift"] == 0).all(), "without drift_at the funnel stays as it was"
