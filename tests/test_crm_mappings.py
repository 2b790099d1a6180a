"""The HubSpot and Salesforce example mappings ingest their export fixtures, history included."""

from __future__ import annotations

import pandas as pd
import pytest

from contract.mapping import load_mapping
from features.dataset import load_frames
from features.vectorizer import FeatureInput, FeatureVectorizer
from store.event_store import EventStore
from store.ingest import ingest
from tests.conftest import NOW, REPO

FIXTURES = REPO / "tests" / "fixtures"

# (table, file) -> (read, stored, skipped); nothing is quarantined
EXPECTED = {
    "hubspot": {("leads", "contacts.csv"): (4, 4, 0), ("events", "engagements.csv"): (9, 8, 1),
                ("history", "contacts_property_history.csv"): (16, 12, 4),
                ("feedback", "contacts_property_history.csv"): (16, 2, 14)},
    "salesforce": {("leads", "Lead.csv"): (4, 4, 0), ("events", "Task.csv"): (5, 4, 1),
                   ("history", "LeadHistory.csv"): (14, 10, 4), ("feedback", "LeadHistory.csv"): (14, 2, 12)},
}
# the lead whose role and budget sales changed after the first call, and when
FIRST = {"hubspot": ("51", "2025-03-06T10:31:00Z"), "salesforce": ("00Q5g00000AbCdE1", "2025-03-06T10:31:00Z")}
BUDGET_YES = {"hubspot": "Yes", "salesforce": "Yes"}


def _ingest(crm: str, store: EventStore, taxonomy, tmp_path):  # noqa: ANN001, ANN202
    return ingest(load_mapping(REPO / "mappings" / f"{crm}.yaml"), FIXTURES / crm, store, taxonomy,
                  tmp_path / "quarantine", now=NOW)


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_crm_export_ingests_once_with_its_history(crm: str, store: EventStore, taxonomy, tmp_path) -> None:  # noqa: ANN001
    summary = _ingest(crm, store, taxonomy, tmp_path)
    got = {(b.table, b.file): (b.read, b.stored, b.skipped) for b in summary.batches}
    assert got == EXPECTED[crm]
    assert all(b.quarantined == 0 and b.error is None for b in summary.batches)
    again = _ingest(crm, store, taxonomy, tmp_path)
    assert again.stored == 0 and again.usable == summary.usable, "loading the same export twice adds nothing"

    frames = load_frames(store)
    lead, changed = FIRST[crm]
    outcomes = frames.feedback.set_index("lead_id")["outcome"]
    assert outcomes[lead] == "prospect" and (outcomes == "not_prospect").sum() == 1
    assert set(frames.history["attribute"]) <= {a.name for a in frames.attributes}
    moments = pd.to_datetime([changed, changed]) + pd.to_timedelta(["-1min", "1min"])
    X = FeatureInput(pd.DataFrame({"lead_id": [lead, lead], "as_of": moments}), frames.leads, frames.events,
                     frames.history)
    features = FeatureVectorizer(taxonomy=taxonomy, attributes=frames.attributes).fit(X).transform(X)
    budget = features["attr_budget"].astype(object).where(features["attr_budget"].notna(), None).tolist()
    role = features["attr_role"].astype(str).tolist()
    assert budget == [None, BUDGET_YES[crm]], "the budget sales typed in after the call is unknown before it"
    assert role == ["Operations manager", "VP Operations"], "the title as it was at each moment"
