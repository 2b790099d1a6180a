"""In-process cost of the API's write path: ``store_records`` of 20 new events a call, as /events stores them.

A generated store of 5,000 leads (or a copy of ``--store``, so two versions of the code can be timed
on the same file side by side); each call posts 20 events at one instant to 20 leads in turn, as
benchmarks/reliability.py's writers do. Wall and CPU time a call over all calls, and the best of 5
equal blocks: on a shared machine the least disturbed block is the closest to the code's own cost.
Usage: python benchmarks/store_writes.py [--calls 2000] [--store FILE.sqlite]. Last line: JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import pandas as pd  # noqa: E402

from contract.taxonomy import load_taxonomy  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from store.ingest import store_records  # noqa: E402

BLOCKS = 5


def _calls(lead_ids: list[str], first: int, n: int) -> list[list[dict]]:
    moment = datetime(2025, 9, 15, 10, tzinfo=UTC)
    return [[{"event_id": f"w-{k}-{i}", "lead_id": lead_ids[(k * 20 + i) % len(lead_ids)], "ts": moment,
              "type": "page_view", "channel": None} for i in range(20)] for k in range(first, first + n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--store", type=Path, help="time on a copy of this SQLite store (else one is generated)")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.store:
            shutil.copy(args.store, folder / "store.sqlite")
            store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
        else:
            from tests.conftest import generated_store

            store = generated_store(folder, 5000, 71, taxonomy)
        leads = store.read_table("leads")
        lead_ids = leads.loc[leads["created_at"] < pd.Timestamp("2025-06-01", tz="UTC"), "lead_id"].tolist()
        for records in _calls(lead_ids, 10**7, 50):  # warm-up: pool, compiled statements
            store_records(store, "events", records, taxonomy)
        size = args.calls // BLOCKS
        calls, blocks = _calls(lead_ids, 0, size * BLOCKS), []
        for b in range(BLOCKS):
            wall, cpu = time.perf_counter(), time.process_time()
            for records in calls[b * size:(b + 1) * size]:
                store_records(store, "events", records, taxonomy)
            blocks.append((time.perf_counter() - wall, time.process_time() - cpu))
        store.close()
    n = size * BLOCKS
    result = {"calls": n, "ms_per_call": round(sum(b[0] for b in blocks) / n * 1e3, 3),
              "cpu_ms_per_call": round(sum(b[1] for b in blocks) / n * 1e3, 3),
              "best_block_ms_per_call": round(min(b[0] for b in blocks) / size * 1e3, 3),
              "best_block_cpu_ms_per_call": round(min(b[1] for b in blocks) / size * 1e3, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
