"""The two public data sets ingest through their shipped mapping files (see ../shared/data/README.md)."""

from __future__ import annotations

import pandas as pd
import pytest

from contract.mapping import load_mapping
from store.ingest import ingest
from tests.conftest import REAL_DATA, REPO

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data sets live in {REAL_DATA} (absent here)"),
]


def test_olist_funnel(store, taxonomy, tmp_path) -> None:  # noqa: ANN001
    summary = ingest(load_mapping(REPO / "mappings" / "olist.yaml"), REAL_DATA, store, taxonomy, tmp_path / "q")
    assert summary.exit_code == 0 and not summary.failed
    # one deal was won on 2018-03-06, two days before its lead's first contact: quarantined
    assert [(b.table, b.stored, b.quarantined) for b in summary.batches] == [
        ("leads", 8000, 0), ("events", 8000, 0), ("feedback", 841, 1)]
    early = pd.read_csv(summary.batches[2].quarantine_file)
    assert early[["_column", "_reason", "won_date"]].values.tolist() == [
        ["ts", "dated before the lead was created", "06-03-2018 19:38"]]
    leads = store.read_table("leads").set_index("lead_id")
    assert leads.loc["dac32acd4db4c29c230538b72f8dd87d", "created_at"] == pd.Timestamp("2018-02-01", tz="UTC")
    assert leads["created_at"].min() >= pd.Timestamp("2017-06-01", tz="UTC")
    feedback = store.read_table("feedback")
    assert set(feedback["outcome"]) == {"prospect"}
    won = feedback.set_index("lead_id").loc["5420aad7fec3549a85876ba1c529bd84", "ts"]
    assert won == pd.Timestamp("2018-02-26 19:58", tz="UTC")
    events = store.read_table("events")
    assert set(events["type"]) == {"form_submission"}
    assert events.set_index("lead_id").loc["8c18d1de7f67e60dbd64e3c07d7e9d5d", "channel"] == "paid_search"
    again = ingest(load_mapping(REPO / "mappings" / "olist.yaml"), REAL_DATA, store, taxonomy, tmp_path / "q")
    assert again.stored == 0 and again.usable == 16841


def test_x_education(store, taxonomy, tmp_path) -> None:  # noqa: ANN001
    summary = ingest(load_mapping(REPO / "mappings" / "x_education.yaml"), REAL_DATA, store, taxonomy,
                     tmp_path / "q")
    assert [(b.table, b.stored, b.quarantined) for b in summary.batches] == [("leads", 9237, 0),
                                                                             ("feedback", 9237, 0)]
    feedback = store.read_table("feedback")
    assert round((feedback["outcome"] == "prospect").mean(), 3) == 0.385
    leads = store.read_table("leads")
    assert leads["total_visits"].dtype == "float64" and leads["total_visits"].max() > 100
    assert not (leads == "Select").any().any(), "'Select' means the form field was left empty"
    specs = store.attribute_specs().set_index("name")
    after = set(specs.index[specs["role"] == "after_contact"])
    assert after == {"tags", "lead_quality", "lead_profile", "asymmetrique_activity_index",
                     "asymmetrique_profile_index", "asymmetrique_activity_score", "asymmetrique_profile_score",
                     # these two hold sales actions ("SMS Sent", "Had a Phone Conversation", "Unreachable")
                     "last_activity", "last_notable_activity"}
    sales_actions = {"SMS Sent", "Had a Phone Conversation", "Unreachable"}
    assert sales_actions <= set(leads["last_activity"]) and sales_actions <= set(leads["last_notable_activity"])
