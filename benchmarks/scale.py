"""Scale past one machine: a 50M-event lake, features bucket by bucket and on Dask, Dask training, bulk scoring.

Figures (last line, JSON):
- lake_features_s: `prospect features --lake` on the big lake in this process, one partition at a
  time (fit the vocabulary from every partition, then snapshots, features and a Parquet file per
  partition); dask_features_s: the same on a LocalCluster of 2 single-threaded workers (cluster
  start-up printed, not counted); dask_overhead_ratio = dask_features_s / lake_features_s.
- peak_rss_gb: peak resident memory of the largest process (this one or a Dask worker), lake
  generation excluded (it runs in a child process first).
- scaling_ratio: features time per event on the big lake over the same on the small lake (10M
  events); partitions are of the same size in both, as a deployment would size them.
- train_s / dask_train_s: `prospect train --lake` on the small lake in this process and with
  --engine dask (features included, cluster start excluded); dask_train_auc_diff: Dask-trained
  minus single-process held-out ROC AUC. The snapshot cadence (default 180 days) gives about one
  snapshot per lead, so the 10M-event lake trains on about a million snapshots, as
  benchmarks/training.py does.
- bulk_score_leads_per_s: every lead of the big lake scored as of the end of its data, features
  included, no reasons, written as partitioned Parquet, on the LocalCluster (2 workers).

The big lake is the simulated small one (1M leads, about 10M events) written several times under
distinct lead ids: simulating 5M distinct leads takes about 12 minutes here, and every lead costs the
features the same either way. --distinct simulates every lead instead.

Usage: python benchmarks/scale.py [--leads 5000000] [--small-leads 1000000]. The last line is a JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pandas as pd  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from engines.dask_cluster import DaskEngine, connect  # noqa: E402
from engines.local import LocalEngine  # noqa: E402
from features.partitioned import LakeJob, bucket_features, fit_vectorizer, write_lake_features  # noqa: E402
from features.registry import AttributeInfo  # noqa: E402
from features.snapshots import SnapshotConfig  # noqa: E402
from lake.layout import TABLES, read_manifest  # noqa: E402
from lake.writer import LakeRun  # noqa: E402
from serving.bulk import bulk_score  # noqa: E402
from simulator.funnel import FunnelConfig, simulate_chunks  # noqa: E402
from training.bundle import save_bundle  # noqa: E402
from training.dask_model import dask_lightgbm  # noqa: E402
from training.lake_train import train_lake  # noqa: E402
from training.train import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_PARTITION = 1_250_000
"""Partition size of both lakes: about a million events, a few seconds of work each."""


def demo_attributes() -> tuple[AttributeInfo, ...]:
    leads = load_mapping(ROOT / "mappings" / "demo.yaml").sources[0].table("leads")
    return tuple(AttributeInfo(n, a.kind, a.role, a.description or "") for n, a in leads.attributes.items())


def _copy(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k-th copy of simulated rows under distinct ids (copy 0 keeps the ids)."""
    if k == 0:
        return frame
    out = frame.copy()
    for col in ("lead_id", "event_id", "feedback_id"):
        if col in out:
            out[col] = f"C{k}-" + out[col].astype(str)
    return out


def build_lakes(folder: Path, leads: int, small_leads: int, distinct: bool) -> None:
    """Simulate chunk by chunk and write both lakes directly, never holding more than a chunk."""
    taxonomy, attributes = load_taxonomy(), demo_attributes()
    copies = 1 if distinct else max(round(leads / small_leads), 1)
    simulated = leads if distinct else small_leads
    small_buckets = max(round(small_leads * 10 / EVENTS_PER_PARTITION), 1)
    big = LakeRun(folder / "big", small_buckets * round(leads / small_leads), attributes, "simulator")
    small = LakeRun(folder / "small", small_buckets, attributes, "simulator")
    for frames in simulate_chunks(FunnelConfig(n_leads=simulated, seed=5, history=False), taxonomy):
        in_small = frames["leads"]["lead_id"].iloc[0] < f"L{small_leads:07d}"
        for table in TABLES:
            if in_small:
                small.write(table, frames[table])
            for k in range(copies):
                big.write(table, _copy(frames[table], k))
    big.finish()
    small.finish()


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def events_in(root: Path) -> int:
    return sum(r["rows"]["events"] for r in read_manifest(root).runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5_000_000, help="Leads of the big lake (about 10 events each).")
    parser.add_argument("--small-leads", type=int, default=1_000_000, help="Leads of the small (10M-event) lake.")
    parser.add_argument("--cadence", type=float, default=180.0, help="Days between a lead's snapshots.")
    parser.add_argument("--distinct", action="store_true", help="Simulate every lead of the big lake.")
    parser.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        build_lakes(args.generate_only, args.leads, args.small_leads, args.distinct)
        return
    taxonomy = load_taxonomy()
    config = TrainConfig(snapshots=SnapshotConfig(cadence_days=args.cadence))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        # generated in a child process, so that its memory does not count towards the peak
        subprocess.run([sys.executable, __file__, "--leads", str(args.leads), "--small-leads", str(args.small_leads),
                        *(["--distinct"] if args.distinct else []), "--generate-only", str(folder)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        big, small = folder / "big", folder / "small"
        n_big, n_small = events_in(big), events_in(small)
        print(f"lakes: {n_big:,} events in {read_manifest(big).buckets} partitions, {n_small:,} in "
              f"{read_manifest(small).buckets}; generated in {time.perf_counter() - started:.0f} s (not counted)",
              flush=True)

        def features(root: Path, engine, out: str) -> float:  # noqa: ANN001
            t0 = time.perf_counter()
            total, _ = write_lake_features(LakeJob.open(root, taxonomy, config.snapshots), engine, folder / out)
            elapsed = time.perf_counter() - t0
            print(f"features {root.name} ({engine.name}): {total.snapshots:,} snapshots in {elapsed:.1f} s", flush=True)
            return elapsed

        # warm-up, not counted: imports and the compiled scan's cache load, on one partition
        warm = LakeJob.open(small, taxonomy, config.snapshots)
        bucket_features(warm, fit_vectorizer(warm, LocalEngine()), 0)
        lake_s = features(big, LocalEngine(), "f-big")
        small_s = features(small, LocalEngine(), "f-small")
        t0 = time.perf_counter()
        result = train_lake(LakeJob.open(small, taxonomy), LocalEngine(), config)
        train_s = time.perf_counter() - t0
        print(f"training: {train_s:.1f} s, ROC AUC {result.metrics['model']['roc_auc']:.4f}, "
              f"{result.booster.best_iteration} trees, {result.metrics['model']['n']:,} held-out snapshots", flush=True)
        bundle = save_bundle(result, config, folder / "bundle")
        t0 = time.perf_counter()
        client, cluster = connect(workers=2, memory_limit=None)
        print(f"LocalCluster of 2 workers up in {time.perf_counter() - t0:.1f} s (not counted)", flush=True)
        try:
            dask = DaskEngine(client)
            dask_s = features(big, dask, "f-dask")
            t0 = time.perf_counter()
            dask_result = train_lake(LakeJob.open(small, taxonomy), dask, config, dask_lightgbm(client))
            dask_train_s = time.perf_counter() - t0
            print(f"dask training: {dask_train_s:.1f} s, ROC AUC {dask_result.metrics['model']['roc_auc']:.4f}, "
                  f"{dask_result.booster.best_iteration} trees", flush=True)
            t0 = time.perf_counter()
            scored = bulk_score(big, bundle, read_manifest(big).observed_until, folder / "scores", dask)
            score_s = time.perf_counter() - t0
            print(f"bulk scoring (dask): {scored.scored:,} leads in {score_s:.1f} s", flush=True)
            workers_gb = max(client.run(rss_gb).values())
        finally:
            client.close()
            cluster.close()
        peak = max(rss_gb(), workers_gb)
        print(f"peak resident memory: this process {rss_gb():.2f} GB, largest Dask worker {workers_gb:.2f} GB", flush=True)
    print(json.dumps({
        "events": n_big, "small_events": n_small, "leads_scored": scored.scored,
        "lake_features_s": round(lake_s, 2), "dask_features_s": round(dask_s, 2), "peak_rss_gb": round(peak, 2),
        "scaling_ratio": round((lake_s / n_big) / (small_s / n_small), 3),
        "dask_overhead_ratio": round(dask_s / lake_s, 3),
        "dask_train_auc_diff": round(dask_result.metrics["model"]["roc_auc"] - result.metrics["model"]["roc_auc"], 4),
        "dask_train_s": round(dask_train_s, 1), "train_s": round(train_s, 1),
        "bulk_score_leads_per_s": round(scored.scored / score_s),
    }))


if __name__ == "__main__":
    main()
