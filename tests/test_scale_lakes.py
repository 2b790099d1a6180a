"""The scale benchmark's generated lakes: the rows the lake writer would write, each lead where its id hashes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lake.layout import TABLES, bucket_of, read_manifest
from lake.reader import read_bucket_table
from lake.writer import LakeRun
from simulator.funnel import FunnelConfig, simulate_chunks

REPO = Path(__file__).resolve().parent.parent


def _scale_module():  # noqa: ANN202 - the benchmark script, imported as a module
    spec = importlib.util.spec_from_file_location("scale_benchmark", REPO / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _whole(root: Path, table: str) -> pd.DataFrame:
    manifest = read_manifest(root)
    frame = pd.concat([read_bucket_table(root, table, b, manifest) for b in range(manifest.buckets)])
    key = {"leads": ["lead_id"], "events": ["event_id"], "feedback": ["feedback_id"]}[table]
    return frame.sort_values(key, ignore_index=True)


def test_copied_lake_holds_the_lake_writers_rows_each_lead_in_its_hash_bucket(tmp_path, taxonomy) -> None:  # noqa: ANN001
    scale = _scale_module()
    scale.build_lakes(tmp_path / "fast", 6000, 3000, distinct=False)
    # the reference: the simulated rows and their copies under prefixed ids, streamed through the lake writer
    big = LakeRun(tmp_path / "ref", read_manifest(tmp_path / "fast" / "big").buckets, scale.demo_attributes(), "ref")
    for frames in simulate_chunks(FunnelConfig(n_leads=3000, seed=5, history=False), taxonomy):
        for table in TABLES:
            for k in range(2):
                copy = frames[table].copy()
                for column in ("lead_id", "event_id", "feedback_id"):
                    if k and column in copy:
                        copy[column] = f"C{k}-" + copy[column].astype(str)
                big.write(table, copy)
    big.finish()
    fast, ref = read_manifest(tmp_path / "fast" / "big"), read_manifest(tmp_path / "ref")
    assert fast.buckets == 2 and fast.max_ts_us == ref.max_ts_us and fast.attributes == ref.attributes
    assert fast.runs[0]["rows"] == ref.runs[0]["rows"] and ref.runs[0]["rows"]["events"] > 50_000
    for table in TABLES:
        assert _whole(tmp_path / "fast" / "big", table).equals(_whole(tmp_path / "ref", table)), table
    for b in range(fast.buckets):
        events = pq.read_table(tmp_path / "fast" / "big" / "events" / f"bucket={b:04d}" / "part-00001.parquet")
        frame = events.select(["lead_id", "ts"]).to_pandas()
        assert (bucket_of(frame["lead_id"].to_numpy(), fast.buckets) == b).all()
        assert frame.equals(frame.sort_values(["lead_id", "ts"], kind="stable", ignore_index=True))
    small = read_manifest(tmp_path / "fast" / "small")
    assert small.runs[0]["rows"]["leads"] == 3000 and 2 * small.runs[0]["rows"]["events"] == fast.runs[0]["rows"]["events"]
