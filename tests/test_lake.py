"""The event lake: export from the store, increments, partitions, reading without a database."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from features.dataset import load_frames
from lake.export import export_store
from lake.layout import LakeError, bucket_of, part_files, read_manifest
from lake.reader import read_bucket, read_bucket_table
from tests.conftest import REPO, generated_store


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    s = generated_store(tmp_path_factory.mktemp("lake-store"), 1500, 11, taxonomy)
    yield s
    s.close()


def _all(root, manifest) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    return {t: pd.concat([read_bucket_table(root, t, b, manifest) for b in range(manifest.buckets)], ignore_index=True)
            for t in ("leads", "events", "feedback")}


def test_bucket_is_stable_across_processes() -> None:
    ids = ["L0000001", "L0000002", "lead-é", "42"]
    here = bucket_of(ids, 64).tolist()
    code = f"from lake.layout import bucket_of; print(bucket_of({ids!r}, 64).tolist())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"}).stdout.strip()
    assert there == str(here)
    assert all(0 <= b < 64 for b in here)


def test_export_holds_every_row_once_each_lead_in_one_bucket_sorted(sim_store, tmp_path) -> None:  # noqa: ANN001
    store = sim_store
    root = tmp_path / "lake"
    summary = export_store(store, root, buckets=8, chunk_rows=3000)
    frames = load_frames(store)
    assert summary.first and summary.new_rows == {"leads": len(frames.leads), "events": len(frames.events),
                                                  "feedback": len(frames.feedback)}
    manifest = read_manifest(root)
    got = _all(root, manifest)
    for table, key in (("leads", "lead_id"), ("events", "event_id"), ("feedback", "feedback_id")):
        want = getattr(frames, table).sort_values(key, ignore_index=True)
        have = got[table].sort_values(key, ignore_index=True)
        assert len(have) == len(want)
        for col in want.columns:
            if col in ("created_at", "ts"):
                assert (pd.DatetimeIndex(have[col]) == pd.DatetimeIndex(want[col])).all(), col
            else:
                assert have[col].astype(object).where(have[col].notna(), None).tolist() == \
                    want[col].astype(object).where(want[col].notna(), None).tolist(), col
    for b in range(manifest.buckets):
        part = read_bucket(root, b, manifest)
        assert (bucket_of(part.events["lead_id"], 8) == b).all() and (bucket_of(part.leads["lead_id"], 8) == b).all()
        assert set(part.events["lead_id"]) <= set(part.leads["lead_id"])
        events = read_bucket_table(root, "events", b, manifest)
        ordered = events.sort_values(["lead_id", "ts"], kind="stable", ignore_index=True)
        assert ordered["event_id"].tolist() == events["event_id"].tolist()
    assert manifest.observed_until == max(frames.events["ts"].max(), frames.feedback["ts"].max(),
                                          frames.leads["created_at"].max())


def test_second_export_adds_only_new_rows(tmp_path, taxonomy) -> None:  # noqa: ANN001
    store = generated_store(tmp_path / "s", 300, 3, taxonomy)
    root = tmp_path / "lake"
    export_store(store, root, buckets=4)
    again = export_store(store, root, buckets=4)
    assert not again.first and again.total == 0
    assert len(read_manifest(root).runs) == 1
    with store.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO events (event_id, lead_id, ts, type, channel, content_hash) "
                             "SELECT 'extra-1', lead_id, created_at + 1000, 'page_view', 'web', 1 FROM leads LIMIT 1")
    added = export_store(store, root, buckets=4)
    assert added.new_rows == {"leads": 0, "events": 1, "feedback": 0}
    manifest = read_manifest(root)
    got = _all(root, manifest)
    assert got["events"]["event_id"].is_unique and "extra-1" in set(got["events"]["event_id"])
    assert len(got["events"]) == store.counts().events
    lead = got["events"].loc[got["events"]["event_id"] == "extra-1", "lead_id"].iloc[0]
    bucket = int(bucket_of([lead], 4)[0])
    assert [p.name for p in part_files(root, "events", bucket)] == ["part-00001.parquet", "part-00002.parquet"]
    store.close()


def test_a_folder_that_is_not_a_lake_is_refused(sim_store, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(LakeError, match="not an event lake"):
        read_manifest(tmp_path)
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(LakeError, match="not empty"):
        export_store(sim_store, tmp_path)


def test_ingest_straight_to_the_lake_matches_the_store_and_quarantines_bad_rows(tmp_path, taxonomy) -> None:  # noqa: ANN001
    from contract.mapping import load_mapping
    from lake.ingest import ingest_to_lake
    from simulator.funnel import FunnelConfig, generate
    from store.event_store import EventStore
    from store.ingest import ingest

    generate(FunnelConfig(n_leads=400, seed=9), tmp_path / "demo", taxonomy)
    events = pd.read_parquet(tmp_path / "demo" / "events.parquet")
    events.loc[3, "type"] = "telepathy"  # not in the taxonomy: quarantined, the rest loaded
    events.to_parquet(tmp_path / "demo" / "events.parquet")
    mapping = load_mapping(REPO / "mappings" / "demo.yaml")
    store = EventStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    ingest(mapping, tmp_path / "demo", store, taxonomy, tmp_path / "q1")
    summary = ingest_to_lake(mapping, tmp_path / "demo", tmp_path / "lake", taxonomy, tmp_path / "q2", buckets=4)
    by_table = {b.table: b for b in summary.batches}
    assert by_table["events"].quarantined == 1 and by_table["events"].stored == len(events) - 1
    quarantine = pd.read_csv(by_table["events"].quarantine_file)
    assert quarantine["_row"].tolist() == [4] and "telepathy" in quarantine["_reason"].iloc[0]
    manifest = read_manifest(tmp_path / "lake")
    got = _all(tmp_path / "lake", manifest)
    for table, key in (("leads", "lead_id"), ("events", "event_id"), ("feedback", "feedback_id")):
        assert sorted(got[table][key]) == sorted(store.read_table(table)[key]), table
    assert sorted(a.name for a in manifest.attribute_infos) == sorted(store.attribute_specs()["name"])
    assert manifest.runs[0]["source"] == "ingest demo"
    store.close()


def test_export_from_sqlite_and_postgresql_and_what_postgresql_cannot_continue(with_leads, tmp_path) -> None:  # noqa: ANN001
    store = with_leads.store
    summary = export_store(store, tmp_path / "lake", buckets=2)
    assert summary.new_rows["leads"] == 3
    leads = _all(tmp_path / "lake", read_manifest(tmp_path / "lake"))["leads"].sort_values("lead_id")
    assert leads["lead_id"].tolist() == ["L1", "L2", "L3"]
    assert leads["employees"].tolist()[:2] == [120.0, 40.0] and pd.isna(leads["employees"].iloc[2])
    if store.engine.dialect.name == "sqlite":
        assert export_store(store, tmp_path / "lake").total == 0
    else:
        with pytest.raises(LakeError, match="incremental export needs SQLite"):
            export_store(store, tmp_path / "lake")
