"""Speed of the HTTP service, side by side with the same scoring in-process, in one run.

A generated store (leads topped up to about 50 events each) and a model trained on it; then the
real service is started on 127.0.0.1 with an API key and measured:

- p50_ms / p99_ms: /score for one lead by id, 2,000 sequential requests on one keep-alive connection;
- rps_16: requests per second with 16 concurrent clients for 10 seconds (``failed`` counts every
  non-200 answer or connection error over the whole run);
- inprocess_p50_ms: the same scoring without HTTP (store read, features, model, reasons, trend,
  criteria), so ``http_overhead_ratio`` shows what the service layer costs;
- batch_leads_per_s: /score_batch with 1,000 leads in one call (with reasons), and
  batch_no_reasons_leads_per_s with ``reasons: false``, one call at a time, each kind in its own
  block (a batch's score log is written behind its answer: a block pays for its own log);
  batch_tiers_leads_per_s with ``"reasons": "tiers"`` (reasons for the prospect-ready and warming
  leads only, batch_tiers_explained_share of them: what a CRM page shows);
  batch_rank_leads_per_s with ``"reasons": false, "criteria": false`` (score, tier and trend only: a
  nightly re-ranking; inprocess_batch_rank_leads_per_s without HTTP);
  batch_no_reasons_concurrent_leads_per_s: the same calls from two clients per worker at once, as a
  nightly sync with that many connections would send them (the kernel hands each connection to one
  worker; with two a worker, every worker is rarely left idle); inprocess_batch_leads_per_s is the
  same 1,000-lead call (with reasons) without HTTP;
- treeshap_leads_per_s: LightGBM's own exact per-feature contributions (``pred_contrib``, TreeSHAP) for
  the same 1,000 leads on all cores and nothing else: the ceiling the issue set for a batch with
  reasons; tables_leads_per_s: the same values from the bundle's per-leaf tables (runtime/treeshap.py,
  what the service computes reasons with, one thread), and tables_vs_treeshap their ratio;
- score_log_p50_ratio: /score p50 with the score log on over off: a second service without the log
  runs beside the first, and requests alternate between the two, so both see the same machine load;
- bare_p50_ms / bare_p99_ms / bare_rps_16: the same measurements on a trivial BentoML service
  (benchmarks/bare_service.py, same workers, same load generator): the floor the service sits on;
- batch_vs_treeshap: batch_leads_per_s over treeshap_leads_per_s (the target is at least 0.8), and
  batch_tiers_vs_treeshap the same for the "tiers" call.

Every figure is the median of REPEATS repetitions inside the run (p50/p99: the median of three
runs' percentiles), so one noisy moment does not decide.

The load generator runs on the same two cores as the service, so rps_16 is a floor.
Usage: python benchmarks/serving.py [--leads 20000] [--workers 2] [--seconds 10]. Last line: JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from features.dataset import load_frames  # noqa: E402
from config.settings import Settings  # noqa: E402
from serving.launch import start_service  # noqa: E402
from serving.scoring import load_scorer  # noqa: E402
from simulator.funnel import FunnelConfig, generate  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from store.ingest import ingest, ingest_records  # noqa: E402
from store.score_log import ScoreLog  # noqa: E402
from training.bundle import save_bundle  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
AS_OF = "2025-12-01T00:00:00Z"
AS_OF_US = pd.Timestamp(AS_OF).value // 1000
TARGET_EVENTS = 50
TOP_UP_TYPES = ("page_view", "email_open", "return_visit", "email_click", "webinar_attendance", "pricing_page_view")


def _top_up(store: EventStore, lead_ids: list[str], taxonomy, seed: int = 0) -> None:  # noqa: ANN001
    """Give each lead about TARGET_EVENTS events in the 90 days before the as-of time."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(AS_OF)
    rows = []
    for lead_id in lead_ids:
        have = len(store.lead_events(lead_id).ts_us)
        for k in range(max(0, TARGET_EVENTS - have)):
            rows.append({"event_id": f"bench-{lead_id}-{k}", "lead_id": lead_id,
                         "ts": end - pd.Timedelta(minutes=int(rng.integers(60, 90 * 24 * 60))),
                         "type": str(rng.choice(TOP_UP_TYPES)), "channel": None})
    frame = pd.DataFrame(rows)
    for lo in range(0, len(frame), 20_000):
        ingest_records(store, "events", frame.iloc[lo:lo + 20_000], taxonomy)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPEATS = 3


def _start(env: dict, port: int, log: Path, service: str = "serving.service:ProspectService") -> subprocess.Popen:
    proc = start_service(env, log.parent / f"bentoml-{port}", "127.0.0.1", port, service=service, log=log.open("w"))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("service did not become ready in 120 s")


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, bytes]:
    conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {KEY}",
                                                  "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


async def _load(port: int, ids: list[str], clients: int, seconds: float) -> tuple[int, int]:
    import aiohttp

    done, failed = 0, 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {KEY}"}

    async def client(k: int) -> None:
        nonlocal done, failed
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as session:
            i = k
            while time.perf_counter() < stop:
                try:
                    async with session.post("/score", json={"lead_id": ids[i % len(ids)], "as_of": AS_OF}) as r:
                        await r.read()
                        done += 1
                        failed += r.status != 200
                except aiohttp.ClientError:
                    failed += 1
                i += clients

    await asyncio.gather(*(client(k) for k in range(clients)))
    return done, failed


def _measure(port: int, ids: list[str], requests: int, seconds: float) -> dict:
    """p50/p99 of sequential /score calls and 16-client throughput, each the median of REPEATS runs."""
    failed = 0
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in ids[:100]:  # warm every worker
        failed += _post(conn, "/score", {"lead_id": i, "as_of": AS_OF})[0] != 200
    p50, p99, rps = [], [], []
    for _ in range(REPEATS):
        latencies = []
        for k in range(requests):
            t0 = time.perf_counter()
            status, _ = _post(conn, "/score", {"lead_id": ids[k % len(ids)], "as_of": AS_OF})
            latencies.append((time.perf_counter() - t0) * 1e3)
            failed += status != 200
        p50.append(float(np.median(latencies)))
        p99.append(float(np.percentile(latencies, 99)))
    conn.close()
    for _ in range(REPEATS):
        done, load_failed = asyncio.run(_load(port, ids, 16, seconds))
        rps.append(done / seconds)
        failed += load_failed
    return {"p50_ms": float(np.median(p50)), "p99_ms": float(np.median(p99)), "rps_16": float(np.median(rps)),
            "failed": failed}


def _batches(port: int, ids: list[str], body: dict, rounds: int, clients: int) -> tuple[list[float], int]:
    """Seconds per round of ``clients`` concurrent /score_batch calls (one connection each), and the failures.

    One kind of call per block, after a warm-up round: a batch's score log is written behind its
    answer, so a block pays for its own log, not for the previous block's.
    """
    conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(clients)]
    failed = 0
    with ThreadPoolExecutor(clients) as pool:
        times = []
        for k in range(rounds + 1):
            t0 = time.perf_counter()
            answers = list(pool.map(lambda conn: _post(conn, "/score_batch", body), conns))
            if k:  # the first round warms the block up
                times.append(time.perf_counter() - t0)
            # checked outside the timing: reading a 1 MB answer is the client's cost, not the service's
            failed += sum(status != 200 or len(json.loads(answer)["scores"]) != len(ids) for status, answer in answers)
    for conn in conns:
        conn.close()
    return times, failed


def _alternate(ports: tuple[int, int], ids: list[str], n: int) -> tuple[list[float], list[float]]:
    """Sequential /score latencies on two services, one request each in turn."""
    conns = [http.client.HTTPConnection("127.0.0.1", p) for p in ports]
    times: tuple[list[float], list[float]] = ([], [])
    for k in range(n):
        for conn, out in zip(conns, times, strict=True):
            t0 = time.perf_counter()
            status, _ = _post(conn, "/score", {"lead_id": ids[k % len(ids)], "as_of": AS_OF})
            out.append((time.perf_counter() - t0) * 1e3)
            if status != 200:
                raise RuntimeError(f"/score answered {status}")
    for conn in conns:
        conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000, help="Leads to generate.")
    parser.add_argument("--workers", type=int, default=2, help="Service worker processes.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each concurrent load run.")
    parser.add_argument("--requests", type=int, default=2000, help="Sequential requests for the latencies.")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(FunnelConfig(n_leads=args.leads, seed=11), folder / "demo", taxonomy)
        store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
        ingest(load_mapping(ROOT / "mappings" / "demo.yaml"), folder / "demo", store, taxonomy, folder / "q")
        frames = load_frames(store)
        early = frames.leads.loc[frames.leads["created_at"] < pd.Timestamp("2025-09-01", tz="UTC"), "lead_id"]
        ids = early.sample(1000, random_state=1).tolist()
        _top_up(store, ids, taxonomy)
        config = TrainConfig(seed=3)
        save_bundle(train(load_frames(store), taxonomy, config), config, folder / "models" / "champion", version="1")
        n_events = np.mean([len(store.lead_events(i).ts_us) for i in ids[:200]])

        env = {**os.environ, "PROSPECT_STORE_URL": store.url, "PROSPECT_MODELS_DIR": str(folder / "models"),
               "PROSPECT_HOME": str(folder), "PROSPECT_API_KEY": KEY, "PROSPECT_SERVE_WORKERS": str(args.workers)}
        settings = Settings(store_url=store.url, models_dir=folder / "models", home=folder)
        scorer = load_scorer(settings)
        moment = pd.Timestamp(AS_OF)
        for i in ids[:50]:
            scorer.score_stored_leads(store, [i], moment).only()  # warm up the compiled scan
        batch_inprocess, quick_inprocess, rank_inprocess = [], [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            scorer.score_stored_leads(store, ids, moment)
            batch_inprocess.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scorer.score_stored_leads(store, ids, moment, reasons=False)
            quick_inprocess.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scorer.score_stored_leads(store, ids, moment, reasons=False, criteria=False)
            rank_inprocess.append(time.perf_counter() - t0)
        explained = float(np.mean([s.with_reasons for s in scorer.score_stored_leads(store, ids, moment,
                                                                                     reasons="tiers").scored]))
        booster = scorer.bundle.booster
        leads, owner, events = store.leads_with_events(ids)
        matrix = scorer.bundle.vectorizer.transform_leads(leads, owner, events.ts_us, events.type, events.channel,
                                                          np.arange(len(leads)), np.full(len(leads), AS_OF_US))
        treeshap_s, tables_s = [], []
        for _ in range(REPEATS):  # LightGBM's TreeSHAP and the bundle's tables, in turn on the same rows
            t0 = time.perf_counter()
            booster.predict(matrix, pred_contrib=True, num_iteration=booster.best_iteration or None)
            treeshap_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scorer.bundle.treeshap(matrix)
            tables_s.append(time.perf_counter() - t0)
        inprocess = []
        for _ in range(REPEATS):
            one = []
            for k in range(args.requests):
                t0 = time.perf_counter()
                scorer.score_stored_leads(store, [ids[k % len(ids)]], moment).only()
                one.append((time.perf_counter() - t0) * 1e3)
            inprocess.append((float(np.median(one)), float(np.percentile(one, 99))))

        bare_port = _free_port()
        bare = _start(env, bare_port, folder / "bare.log", "benchmarks.bare_service:Bare")
        try:
            floor = _measure(bare_port, ids, args.requests, args.seconds)
        finally:
            bare.terminate()
            bare.wait(timeout=30)
        port = _free_port()
        proc = _start(env, port, folder / "serve.log")
        try:
            served = _measure(port, ids, args.requests, args.seconds)
            failed = served["failed"]
            batch_s, n_failed = _batches(port, ids, {"lead_ids": ids, "as_of": AS_OF}, max(REPEATS, 5), 1)
            failed += n_failed
            tiers_s, n_failed = _batches(port, ids, {"lead_ids": ids, "as_of": AS_OF, "reasons": "tiers"},
                                         max(REPEATS, 5), 1)
            failed += n_failed
            quick_s, n_failed = _batches(port, ids, {"lead_ids": ids, "as_of": AS_OF, "reasons": False},
                                         max(REPEATS, 5), 1)
            failed += n_failed
            rank_s, n_failed = _batches(port, ids, {"lead_ids": ids, "as_of": AS_OF, "reasons": False,
                                                    "criteria": False}, max(REPEATS, 5), 1)
            failed += n_failed
            sync_s, n_failed = _batches(port, ids, {"lead_ids": ids, "as_of": AS_OF, "reasons": False},
                                        max(REPEATS, 5), 2 * args.workers)
            failed += n_failed
            off_port = _free_port()
            off = _start({**env, "PROSPECT_SCORE_LOG": "0"}, off_port, folder / "serve-no-log.log")
            try:
                _alternate((port, off_port), ids, 100)  # warm both
                log_on, log_off = _alternate((port, off_port), ids, args.requests)
            finally:
                off.terminate()
                off.wait(timeout=30)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        logged = ScoreLog(store).count()
        store.close()

    p50 = served["p50_ms"]
    inprocess_p50 = float(np.median([a for a, _ in inprocess]))
    batch_per_s = len(ids) / float(np.median(batch_s))
    tiers_per_s = len(ids) / float(np.median(tiers_s))
    treeshap_per_s = len(ids) / float(np.median(treeshap_s))
    tables_per_s = len(ids) / float(np.median(tables_s))
    result = {
        "workers": args.workers,
        "events_per_scored_lead": round(float(n_events), 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(served["p99_ms"], 3),
        "rps_16": round(served["rps_16"], 1),
        "failed": int(failed),
        "bare_p50_ms": round(floor["p50_ms"], 3),
        "bare_p99_ms": round(floor["p99_ms"], 3),
        "bare_rps_16": round(floor["rps_16"], 1),
        "bare_failed": int(floor["failed"]),
        "inprocess_p50_ms": round(inprocess_p50, 3),
        "inprocess_p99_ms": round(float(np.median([b for _, b in inprocess])), 3),
        "http_overhead_ratio": round(p50 / inprocess_p50, 2),
        "batch_leads_per_s": round(batch_per_s),
        "batch_tiers_leads_per_s": round(tiers_per_s),
        "batch_tiers_explained_share": round(explained, 3),
        "batch_no_reasons_leads_per_s": round(len(ids) / float(np.median(quick_s))),
        "batch_rank_leads_per_s": round(len(ids) / float(np.median(rank_s))),
        "batch_no_reasons_concurrent_leads_per_s": round(2 * args.workers * len(ids) / float(np.median(sync_s))),
        "inprocess_batch_leads_per_s": round(len(ids) / float(np.median(batch_inprocess))),
        "inprocess_batch_no_reasons_leads_per_s": round(len(ids) / float(np.median(quick_inprocess))),
        "inprocess_batch_rank_leads_per_s": round(len(ids) / float(np.median(rank_inprocess))),
        "treeshap_leads_per_s": round(treeshap_per_s),
        "batch_vs_treeshap": round(batch_per_s / treeshap_per_s, 3),
        "batch_tiers_vs_treeshap": round(tiers_per_s / treeshap_per_s, 3),
        "tables_leads_per_s": round(tables_per_s),
        "tables_vs_treeshap": round(tables_per_s / treeshap_per_s, 2),
        "model_trees": booster.num_trees(),
        "score_log_on_p50_ms": round(float(np.median(log_on)), 3),
        "score_log_off_p50_ms": round(float(np.median(log_off)), 3),
        "score_log_p50_ratio": round(float(np.median(log_on)) / float(np.median(log_off)), 3),
        "score_log_entries": logged,
    }
    print(f"bare BentoML floor: p50 {result['bare_p50_ms']} ms, p99 {result['bare_p99_ms']} ms, 16 clients: "
          f"{result['bare_rps_16']} req/s")
    print(f"one lead by id over HTTP: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; in-process p50 "
          f"{result['inprocess_p50_ms']} ms; 16 clients: {result['rps_16']} req/s; batch of 1,000: "
          f"{result['batch_leads_per_s']:,} leads/s ({result['batch_no_reasons_leads_per_s']:,} without reasons, "
          f"{result['batch_rank_leads_per_s']:,} without reasons and criteria; "
          f"exact contributions alone: LightGBM {result['treeshap_leads_per_s']:,}, the bundle's tables "
          f"{result['tables_leads_per_s']:,}); /score p50 with the score log "
          f"{result['score_log_on_p50_ms']} ms, without {result['score_log_off_p50_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
