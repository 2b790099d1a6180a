"""Replay: 1,000 logged scores across two model versions and a rules change all recompute bit-equal;
and when they cannot, the answer says why."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from features.dataset import load_frames
from config.settings import Settings
from serving.criteria import DEFAULT_RULES
from serving.replay import Replayer, compare
from serving.score_recorder import ScoreRecorder
from serving.scoring import load_scorer
from store.ingest import ingest_records
from store.score_log import ScoreLog
from tests.conftest import generated_store
from training.bundle import save_bundle
from runtime.versions import kept_folder
from training.train import TrainConfig, train

AS_OFS = [pd.Timestamp("2025-08-01T00:00:00Z"), pd.Timestamp("2025-10-15T08:30:00Z")]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    """A store, two champions in turn (v1, v2) and two rule files; 1,000 scores served and logged."""
    home = tmp_path_factory.mktemp("replay")
    store = generated_store(home, 3000, 23, taxonomy)
    frames = load_frames(store)
    strict_rules = home / "criteria.yaml"
    strict_rules.write_text(DEFAULT_RULES.read_text().replace("within_days: 60", "within_days: 10"))
    models = home / "models"
    ids = frames.leads.loc[frames.leads["created_at"] < AS_OFS[0], "lead_id"].sample(250, random_state=2).tolist()
    served = []
    # (version, seed, rules, single-lead scores, batch scores, which of them get reasons, batch scores
    # without reasons) per as-of time
    phases = (("1", 1, None, 100, 150, True, 0), ("2", 2, None, 50, 100, "tiers", 20),
              ("2", 2, strict_rules, 30, 50, True, 0))
    for version, seed, rules, singles, batch, reasons, quick in phases:
        config = TrainConfig(seed=seed)
        if rules is None:  # a new champion is exported, as `prospect promote` does
            save_bundle(train(frames, taxonomy, config), config, models / "champion", version=version)
        settings = Settings(home=home, store_url=store.url, models_dir=models, criteria=rules)
        scorer = load_scorer(settings)
        recorder = ScoreRecorder(settings, store, scorer.criteria)
        for as_of in AS_OFS:
            for lead_id in ids[:singles]:
                served += recorder.record([scorer.score_stored_leads(store, [lead_id], as_of).only()], "crm", "score")
            part = scorer.score_stored_leads(store, ids[singles:singles + batch], as_of, reasons=reasons)
            served += recorder.record(part.scored, "dialer", "score_batch")
            # the quick batch of model 2 is a nightly re-ranking: no reasons, no criteria
            part = scorer.score_stored_leads(store, ids[-quick:] if quick else [], as_of, reasons=False,
                                             criteria=version != "2")
            served += recorder.record(part.scored, "dialer", "score_batch")
        recorder.close()
    return home, store, served


def test_a_thousand_logged_scores_replay_bit_equal_across_models_and_rules(logged) -> None:  # noqa: ANN001
    home, store, served = logged
    log = ScoreLog(store)
    entries = log.frame()
    assert len(served) == len(set(served)) == len(entries) == 1000
    replayer = Replayer(log, store, Settings(home=home))
    versions, rules = set(), set()
    for score_id in served:
        r = replayer.replay(score_id)
        assert r.reason is None and r.equal, (r.reason, r.differences)
        assert r.recomputed.probability == r.served["probability"]  # bit-equal, not approximately
        versions.add(r.served["model_version"])
        rules.add(r.served["rules_version"])
    assert versions == {"1", "2"} and len(rules) == 3
    # scores served without criteria logged no rules version, and replayed equal without them
    ranked = entries[entries["rules_version"].isna()]
    assert len(ranked) == 2 * 20 and all(log.entry(i)["criteria"] == [] for i in ranked["score_id"])
    assert set(entries["caller"]) == {"crm", "dialer"}
    # a "tiers" batch logged which of its scores carry reasons, and those replayed equal too
    default_rules = entries.loc[entries["model_version"] == "1", "rules_version"].iloc[0]
    tiers_batch = entries[(entries["endpoint"] == "score_batch") & (entries["model_version"] == "2")
                          & (entries["rules_version"] == default_rules)]
    assert set(tiers_batch["with_reasons"]) == {0, 1}
    assert (tiers_batch.loc[tiers_batch["with_reasons"] == 1, "tier"] != "early lead").all()
    # the stricter rules decided some lead differently: replaying needs the rules version it was served with
    strict = entries[entries["rules_version"].notna() & (entries["rules_version"] != entries["rules_version"].iloc[0])]
    lenient = entries[(entries["rules_version"] == entries["rules_version"].iloc[0]) & (entries["model_version"] == "2")]
    pairs = strict.merge(lenient, on=["lead_id", "as_of", "endpoint"], suffixes=("_s", "_l"))
    assert len(pairs) and any(log.entry(a)["criteria"] != log.entry(b)["criteria"]
                              for a, b in zip(pairs["score_id_s"], pairs["score_id_l"], strict=True))


def test_reasons_logged_from_lightgbms_pred_contrib_replay_equal(logged) -> None:  # noqa: ANN001
    """Reasons served before the per-leaf tables held pred_contrib's impacts: the same up to the last bits.
    A logged score whose impacts differ by that much replays equal; a real change in an impact, a text
    or the order does not."""
    home, store, served = logged
    log = ScoreLog(store)
    score_id = next(i for i in served if log.entry(i)["reasons"]["for"])
    entry = log.entry(score_id)
    replayer = Replayer(log, store, Settings(home=home))
    recomputed = replayer.replay(score_id).recomputed

    def differences(change) -> list[str]:  # noqa: ANN001
        reasons = {side: [list(r) for r in entry["reasons"][side]] for side in ("for", "against")}
        change(reasons)
        return compare({**entry, "reasons": reasons}, recomputed)

    def nudge(by: float):  # noqa: ANN202
        return lambda reasons: [r.__setitem__(2, r[2] + by) for side in reasons.values() for r in side]

    assert differences(nudge(2e-15)) == []  # what pred_contrib's summation order gives
    assert "the reasons differ" in differences(nudge(1e-6))
    assert "the reasons differ" in differences(lambda reasons: reasons["for"][0].__setitem__(1, "Visits: 99"))
    assert "the reasons differ" in differences(lambda reasons: reasons["for"].reverse() if len(reasons["for"]) > 1
                                               else reasons["for"].append(reasons["for"][0]))


def test_replay_says_why_when_it_cannot_be_equal(logged, taxonomy) -> None:  # noqa: ANN001
    home, store, served = logged
    log = ScoreLog(store)
    entries = log.frame().set_index("score_id")
    v2_single = next(i for i in served if entries.loc[i, "model_version"] == "2" and entries.loc[i, "endpoint"] == "score")
    lead_id, as_of = entries.loc[v2_single, "lead_id"], entries.loc[v2_single, "as_of"]
    # an event loaded late, dated before the as-of time: the score can no longer come out the same
    late = pd.DataFrame([{"event_id": "late-1", "lead_id": lead_id, "ts": as_of - pd.Timedelta(hours=2),
                          "type": "demo_request", "channel": None}])
    ingest_records(store, "events", late, taxonomy)
    r = Replayer(log, store, Settings(home=home)).replay(v2_single)
    assert not r.equal and r.reason is None
    assert any("probability" in d for d in r.differences) and any("loaded after" in d for d in r.differences)

    assert "no score with this id" in Replayer(log, store, Settings(home=home)).replay("nope").reason
    v1 = next(i for i in served if entries.loc[i, "model_version"] == "1")
    shutil.rmtree(kept_folder(home / "bundles", "1"))
    r = Replayer(log, store, Settings(home=home)).replay(v1)
    assert not r.equal and "model version 1 is no longer kept" in r.reason
