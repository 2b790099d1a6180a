"""Ingesting an attribute-history source: idempotent, bad rows quarantined with the reason, good rows kept."""

from __future__ import annotations

import pandas as pd
import pytest

from contract.mapping import Mapping, MappingError, load_mapping
from store.ingest import ingest
from tests.conftest import CANONICAL, LEADS_CSV, NOW, Sources, write_yaml

HISTORY_CSV = """LeadId,Field,NewValue,CreatedDate
L1,industry,retail,2025-01-01T09:30:00Z
L1,industry,software,2025-01-10T09:00:00Z
L1,employees,80,2025-01-01T09:30:00Z
L2,employees,a few,2025-01-03T09:00:00Z
L1,colour,red,2025-01-03T09:00:00Z
L9,industry,retail,2025-01-03T09:00:00Z
L2,industry,finance,last tuesday
L2,industry,finance,2025-01-05T09:00:00Z
L2,Status,Working,2025-01-05T09:00:00Z
L1,industry,retail,2025-01-10T09:00:00Z
"""

HISTORY_TABLE = {"columns": {"lead_id": "LeadId", "attribute": "Field", "value": "NewValue",
                             "recorded_at": "CreatedDate"},
                 "keep": {"Field": ["industry", "employees", "colour"]}}


def _mapping(with_leads: bool = True) -> Mapping:
    sources = [{"file": "leads.csv", "leads": CANONICAL["leads"]}] if with_leads else []
    return Mapping.model_validate({"name": "t", "sources": [*sources,
                                                            {"file": "history.csv", "history": HISTORY_TABLE}]})


def _ingest(sources: Sources, mapping: Mapping):  # noqa: ANN202
    return ingest(mapping, sources.folder, sources.store, sources.taxonomy, sources.folder / "quarantine", now=NOW)


def test_history_is_stored_once_and_bad_rows_are_quarantined(sources: Sources) -> None:
    sources.write("leads.csv", LEADS_CSV)
    sources.write("history.csv", HISTORY_CSV)
    first = _ingest(sources, _mapping())
    batch = next(b for b in first.batches if b.table == "history")
    assert (batch.read, batch.stored, batch.skipped, batch.quarantined) == (10, 4, 1, 5)
    quarantine = pd.read_csv(batch.quarantine_file).set_index("_row")
    reasons = quarantine["_reason"].to_dict()
    assert "not a number (attribute employees is numeric): 'a few'" in reasons[4]
    assert "unknown attribute 'colour'" in reasons[5]
    assert "unknown lead_id 'L9'" in reasons[6]
    assert "cannot parse timestamp 'last tuesday'" in reasons[7]
    # the same lead, attribute and moment with another value than row 2: a conflict, not a silent overwrite
    assert "different content" in reasons[10] and quarantine.loc[10, "_column"] == "history_id"
    assert quarantine.loc[4, "NewValue"] == "a few", "the original values travel with the reason"

    again = _ingest(sources, _mapping())
    batch = next(b for b in again.batches if b.table == "history")
    assert (batch.stored, batch.duplicates) == (0, 4), "loading the same file twice adds nothing"
    assert sources.store.counts().history == 4
    stored = sources.store.lead_history(["L1", "L2"])
    rows = list(zip(stored.lead_id, stored.recorded_at, stored.attribute, stored.value, strict=True))
    assert [r[:2] for r in rows] == sorted(r[:2] for r in rows), "by lead, then time"
    assert [(lead, attribute, value) for lead, _, attribute, value in sorted(rows)] == [
        ("L1", "employees", "80"), ("L1", "industry", "retail"), ("L1", "industry", "software"),
        ("L2", "industry", "finance")]


def test_history_may_name_attributes_declared_by_an_earlier_ingest(sources: Sources) -> None:
    sources.write("leads.csv", LEADS_CSV)
    sources.write("history.csv", HISTORY_CSV)
    _ingest(sources, Mapping.model_validate({"name": "t", "sources": [{"file": "leads.csv",
                                                                        "leads": CANONICAL["leads"]}]}))
    summary = _ingest(sources, _mapping(with_leads=False))
    assert summary.batches[0].stored == 4


def test_a_history_mapping_is_checked_like_the_others(tmp_path) -> None:  # noqa: ANN001
    bad = {"name": "t", "sources": [{"file": "h.csv", "history": {"columns": {"lead_id": "a", "attribute": "b",
                                                                             "recorded_at": "c", "when": "d"}}}]}
    with pytest.raises(MappingError, match="unknown canonical column 'when'"):
        load_mapping(write_yaml(tmp_path / "m.yaml", bad))
    missing = {"name": "t", "sources": [{"file": "h.csv", "history": {"columns": {"lead_id": "a", "value": "b"}}}]}
    with pytest.raises(MappingError, match="required column 'attribute'"):
        load_mapping(write_yaml(tmp_path / "m.yaml", missing))


def test_a_parquet_timestamp_beyond_year_9999_is_quarantined_not_a_crash(sources: Sources) -> None:
    """A Parquet source's timestamps are typed: one far past what Python dates hold must still be reported."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sources.write("leads.csv", LEADS_CSV)
    far = pa.array([1_735_722_000_000_000, 600_000_000_000_000_000], type=pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"LeadId": ["L1", "L2"], "Field": ["industry", "industry"],
                             "NewValue": ["retail", "finance"], "CreatedDate": far}), sources.folder / "history.parquet")
    mapping = _mapping().model_copy(deep=True)
    mapping.sources[1].file = "history.parquet"
    summary = _ingest(sources, mapping)
    batch = next(b for b in summary.batches if b.table == "history")
    assert (batch.stored, batch.quarantined) == (1, 1)
    quarantine = pd.read_csv(batch.quarantine_file)
    assert "is in the future" in quarantine.loc[0, "_reason"] and quarantine.loc[0, "CreatedDate"].startswith("20983")
