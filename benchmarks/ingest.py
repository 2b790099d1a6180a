"""Ingest and read speed of the event store, side by side with plain sqlite3 in the same run.

- events_per_s: 1M generated events through `prospect ingest`'s code path (mapping, validation,
  duplicate and unknown-lead checks, insert) into a fresh SQLite store.
- raw_insert_events_per_s: the same rows inserted with a bare sqlite3 executemany into the same
  schema, no checks; ``ingest_vs_raw_ratio`` says what our checks cost.
- read_p50_ms / read_p99_ms: one lead's events (a lead with 300 events, and random leads) through
  ``EventStore.lead_events``; ``raw_read_p50_ms`` is the same query through bare sqlite3.

Usage: python benchmarks/ingest.py [--events 1000000]. The last line is a JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from simulator.funnel import FunnelConfig, generate  # noqa: E402
from contract.timeunits import to_micros  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from store.ingest import ingest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _heavy_lead(folder: Path, n_events: int) -> None:
    """Append one lead with many events, the case serving must stay fast for."""
    leads = pd.read_parquet(folder / "leads.parquet").head(1).copy()
    leads["lead_id"] = "HEAVY"
    ts = pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(np.arange(n_events) * 3, unit="h")
    events = pd.DataFrame({"event_id": [f"HEAVY-{i}" for i in range(n_events)], "lead_id": "HEAVY",
                           "ts": ts.as_unit("us"), "type": "page_view", "channel": "web"})
    pd.concat([pd.read_parquet(folder / "leads.parquet"), leads]).to_parquet(folder / "leads.parquet", index=False)
    pd.concat([pd.read_parquet(folder / "events.parquet"), events]).to_parquet(folder / "events.parquet", index=False)


def _timings(fn, keys: list[str]) -> np.ndarray:  # noqa: ANN001
    out = np.empty(len(keys))
    for i, key in enumerate(keys):
        t0 = time.perf_counter()
        fn(key)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="About this many events are generated.")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(FunnelConfig(n_leads=max(1, args.events // 10)), folder / "demo", taxonomy)
        _heavy_lead(folder / "demo", 300)
        mapping = load_mapping(ROOT / "mappings" / "demo.yaml")
        leads_only = mapping.model_copy(update={"sources": [s for s in mapping.sources if s.leads]})
        events_only = mapping.model_copy(update={"sources": [s for s in mapping.sources if s.events]})
        store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
        ingest(leads_only, folder / "demo", store, taxonomy, folder / "q")

        t0 = time.perf_counter()
        summary = ingest(events_only, folder / "demo", store, taxonomy, folder / "q")
        ingest_s = time.perf_counter() - t0
        n_events = summary.batches[0].stored

        # the same rows through bare sqlite3, into an empty copy of the schema
        raw_store = EventStore(f"sqlite:///{folder / 'raw.sqlite'}")
        raw_store.counts()  # creates the schema
        raw_store.close()
        events = pd.read_parquet(folder / "demo" / "events.parquet")
        con = sqlite3.connect(folder / "raw.sqlite")
        t0 = time.perf_counter()
        rows = list(zip(events["event_id"].tolist(), events["lead_id"].tolist(), to_micros(events["ts"]).tolist(),
                        events["type"].tolist(), events["channel"].tolist(), range(len(events)), strict=True))
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.commit()
        raw_s = time.perf_counter() - t0

        rng = np.random.default_rng(0)
        lead_ids = events["lead_id"].unique()
        keys = ["HEAVY"] * 1000 + list(rng.choice(lead_ids, 1000))
        store.lead_events("HEAVY")  # warm the connection pool
        ours = _timings(store.lead_events, keys)
        heavy = ours[:1000]
        sql = "SELECT ts, type, channel FROM events WHERE lead_id = ? ORDER BY ts"
        raw = _timings(lambda k: con.execute(sql, (k,)).fetchall(), keys)
        con.close()
    result = {
        "events": int(n_events),
        "events_per_s": round(n_events / ingest_s),
        "raw_insert_events_per_s": round(len(events) / raw_s),
        "ingest_vs_raw_ratio": round(ingest_s / raw_s, 2),
        "read_p50_ms": round(float(np.median(heavy)), 4),
        "read_p99_ms": round(float(np.percentile(heavy, 99)), 4),
        "read_random_lead_p50_ms": round(float(np.median(ours[1000:])), 4),
        "raw_read_p50_ms": round(float(np.median(raw[:1000])), 4),
        "read_vs_raw_ratio": round(float(np.median(heavy) / np.median(raw[:1000])), 2),
    }
    print(f"ingested {n_events:,} events in {ingest_s:.1f} s; bare sqlite3 insert took {raw_s:.1f} s")
    print(f"reading a 300-event lead: p50 {result['read_p50_ms']} ms, p99 {result['read_p99_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
