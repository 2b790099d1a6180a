"""The service under concurrent writes and scoring, and under the fuzzer, in one run.

A generated store and a model trained on it; the real service is started on 127.0.0.1 with two
workers on the SQLite store and measured:

- events_per_s_alone: /events throughput (20 new events a call) with 4 writer clients and nothing else;
- events_per_s_with_scoring: the same while 4 other clients call /score as fast as they can
  (score_rps_with_writes is their rate), so ``with_scoring_ratio`` shows what scoring costs writes;
- events_5xx: every 5xx (or connection error) over both write phases; stored_check says whether the
  store holds exactly the events accepted (each once);
- events_floor_per_s: the same write calls, with the same 4 scorers, to /events_floor, which the
  service adds when started with BENCH_EVENTS_FLOOR=1: the request validated, nothing stored, in
  the same workers: the most /events can reach here whatever storing costs (--no-floor skips it);
- fuzz_5xx / fuzz_schema_violations: schemathesis against the service's OpenAPI document (all
  operations, all checks, 100 examples each, seed 42).

The load generator shares the two cores with the service, so the rates are floors.
Usage: python benchmarks/reliability.py [--leads 5000] [--seconds 20] [--no-fuzz] [--no-floor].
Last line: JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pandas as pd  # noqa: E402

from contract.taxonomy import load_taxonomy  # noqa: E402
from features.dataset import load_frames  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from tests.conftest import generated_store  # noqa: E402
from tests.fuzz import run_fuzzer  # noqa: E402
from tests.service_harness import start  # noqa: E402
from training.bundle import save_bundle  # noqa: E402
from training.promotion import export_champion  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

KEY = "bench-key"
AS_OF = "2025-10-01T00:00:00Z"
FLOOR_ENV = "BENCH_EVENTS_FLOOR"
"""serving.service.FLOOR_ENV (not imported: importing the service module starts its checks)."""


async def _phase(base: str, leads: list[str], writers: int, scorers: int, seconds: float, tag: str,
                 path: str = "/events") -> dict:
    """``writers`` clients post 20 new events a call to ``path`` while ``scorers`` clients score."""
    import aiohttp

    counts = {"events": 0, "calls": 0, "scores": 0, "bad": 0}
    accepted: set[str] = set()
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {KEY}"}

    async def writer(k: int) -> None:
        async with aiohttp.ClientSession(base, headers=headers) as session:
            n = 0
            while time.perf_counter() < stop:
                batch = [{"event_id": f"{tag}-{k}-{n}-{i}", "lead_id": leads[(n * 20 + i + k) % len(leads)],
                          "ts": "2025-09-15T10:00:00Z", "type": "page_view"} for i in range(20)]
                try:
                    async with session.post(path, json={"events": batch}) as r:
                        body = await r.json()
                        if r.status == 200:
                            counts["events"] += body["stored"]
                            counts["calls"] += 1
                            if path == "/events":
                                accepted.update(e["event_id"] for e in batch)
                        elif r.status >= 500:
                            counts["bad"] += 1
                except aiohttp.ClientError:
                    counts["bad"] += 1
                n += 1

    async def scorer(k: int) -> None:
        async with aiohttp.ClientSession(base, headers=headers) as session:
            i = k
            while time.perf_counter() < stop:
                try:
                    async with session.post("/score", json={"lead_id": leads[i % len(leads)], "as_of": AS_OF}) as r:
                        await r.read()
                        counts["scores"] += r.status == 200
                        counts["bad"] += r.status >= 500
                except aiohttp.ClientError:
                    counts["bad"] += 1
                i += scorers

    began = time.perf_counter()
    await asyncio.gather(*[writer(k) for k in range(writers)], *[scorer(k) for k in range(scorers)])
    elapsed = time.perf_counter() - began
    return {**counts, "elapsed": elapsed, "accepted": accepted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--no-fuzz", action="store_true", help="skip the fuzzer (throughput figures only)")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-endpoint floor")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory(prefix="prospect-reliability-") as tmp:
        folder = Path(tmp)
        store = generated_store(folder, args.leads, 71, taxonomy)
        frames = load_frames(store)
        config = TrainConfig(seed=1)
        export_champion(save_bundle(train(frames, taxonomy, config), config, folder / "trained"), folder / "models", "1")
        leads = frames.leads.loc[frames.leads["created_at"] < pd.Timestamp("2025-06-01", tz="UTC"), "lead_id"].tolist()
        served = start({"PROSPECT_STORE_URL": store.url, "PROSPECT_MODELS_DIR": str(folder / "models"),
                        "PROSPECT_HOME": str(folder), "PROSPECT_SERVE_WORKERS": "2",
                        FLOOR_ENV: "0" if args.no_floor else "1"}, folder / "serve.log", KEY)
        try:
            alone = asyncio.run(_phase(served.base, leads, 4, 0, args.seconds, "alone"))
            mixed = asyncio.run(_phase(served.base, leads, 4, 4, args.seconds, "mixed"))
            floor = None if args.no_floor else asyncio.run(_phase(served.base, leads, 4, 4, args.seconds, "floor",
                                                                  path="/events_floor"))
            events = store.read_table("events")
            stored = set(events["event_id"])
            exact = (alone["accepted"] | mixed["accepted"]) <= stored and len(events) == len(stored)
            print(f"writes alone: {alone['events']:,} events in {alone['elapsed']:.1f} s; with 4 scorers: "
                  f"{mixed['events']:,} events and {mixed['scores']:,} scores in {mixed['elapsed']:.1f} s")
            if floor is not None:
                print(f"floor (/events_floor: validation and no store, same workers, 4 scorers): "
                      f"{floor['events']:,} events and {floor['scores']:,} scores in {floor['elapsed']:.1f} s")
            fuzz = None if args.no_fuzz else run_fuzzer(served.base, KEY, folder / "fuzz", max_examples=100, seed=42)
            if fuzz is not None:
                print(f"fuzz: {fuzz.requests:,} requests, failures by check: {fuzz.failures}")
        finally:
            served.stop()
            store.close()
    figures = {
        "events_per_s_alone": round(alone["events"] / alone["elapsed"], 1),
        "events_per_s_with_scoring": round(mixed["events"] / mixed["elapsed"], 1),
        "with_scoring_ratio": round((mixed["events"] / mixed["elapsed"]) / max(alone["events"] / alone["elapsed"], 1e-9), 3),
        "score_rps_with_writes": round(mixed["scores"] / mixed["elapsed"], 1),
        "events_5xx": alone["bad"] + mixed["bad"],
        "stored_check": bool(exact),
        "events_floor_per_s": None if floor is None else round(floor["events"] / floor["elapsed"], 1),
        "events_floor_5xx": None if floor is None else floor["bad"],
        "fuzz_requests": None if fuzz is None else fuzz.requests,
        "fuzz_5xx": None if fuzz is None else fuzz.server_errors,
        "fuzz_schema_violations": None if fuzz is None else fuzz.schema_violations,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
