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
- total_s: wall time of the whole run, lake generation included when it happened in this run
  (generation_s; lakes_cached says whether they came from the cache instead).

The small lake is simulated (1M leads, about 10M events) and held in memory as Arrow tables; the big
lake is those rows written several times under distinct lead ids (copy k prefixes every id with
``Ck-``), each lead in the partition its new id hashes to, one pass per partition: the same rows the
lake writer would write from the copies, without staging them. Simulating 5M distinct leads takes
about 12 minutes here, and every lead costs the features the same either way; --distinct simulates
every lead instead (streamed through the lake writer). Generated lakes are kept between runs under
--cache (default $TMPDIR/prospect-scale-lakes), keyed by the sizes and by the code and files that
generate them; --no-cache generates afresh into the run's temporary folder.

Usage: python benchmarks/scale.py [--leads 5000000] [--small-leads 1000000]; a quick run:
--leads 400000 --small-leads 200000. The last line is a JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from engines.dask_cluster import DaskEngine, connect  # noqa: E402
from engines.local import LocalEngine  # noqa: E402
from features.partitioned import LakeJob, bucket_features, fit_vectorizer, write_lake_features  # noqa: E402
from features.registry import AttributeInfo  # noqa: E402
from features.snapshots import SnapshotConfig  # noqa: E402
from lake.layout import SORT, TABLES, Manifest, bucket_dir, bucket_of, read_manifest, write_manifest  # noqa: E402
from lake.writer import LakeRun, conform  # noqa: E402
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


ID_COLUMNS = ("lead_id", "event_id", "feedback_id")
GENERATED_FROM = ("simulator/*.py", "lake/*.py", "contract/taxonomy.yaml", "mappings/demo.yaml")
"""Files whose content decides what the generated lakes hold: a change in any of them is a new cache entry."""


def simulate_lake(root: Path, leads: int, buckets: int, small: tuple[Path, int, int] | None = None) -> None:
    """Simulate ``leads`` leads chunk by chunk straight into a lake (and the first ``small[1]`` of them into
    a second lake of ``small[2]`` buckets at ``small[0]``) through the lake writer, never holding more than
    a chunk: for --distinct, whose big lake would not fit in memory."""
    taxonomy, attributes = load_taxonomy(), demo_attributes()
    lake = LakeRun(root, buckets, attributes, "simulator")
    second = LakeRun(small[0], small[2], attributes, "simulator") if small else None
    for frames in simulate_chunks(FunnelConfig(n_leads=leads, seed=5, history=False), taxonomy):
        for table in TABLES:
            lake.write(table, frames[table])
            if second and frames["leads"]["lead_id"].iloc[0] < f"L{small[1]:07d}":
                second.write(table, frames[table])
    lake.finish()
    if second:
        second.finish()


def simulated_tables(leads: int) -> dict[str, pa.Table]:
    """The simulated leads, events and feedback as Arrow tables of the lake's schemas, in memory."""
    taxonomy, attributes = load_taxonomy(), demo_attributes()
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    for frames in simulate_chunks(FunnelConfig(n_leads=leads, seed=5, history=False), taxonomy):
        for table in TABLES:
            parts[table].append(conform(frames[table], table, attributes))
    return {t: pa.concat_tables(parts[t]) for t in TABLES}


def _prefixed(data: pa.Table, prefix: str) -> pa.Table:
    """The rows with every id column prefixed (a copy's rows under ids of its own)."""
    for name in ID_COLUMNS:
        if prefix and name in data.column_names:
            i = data.column_names.index(name)
            data = data.set_column(i, name, pc.binary_join_element_wise(prefix, data[name], ""))
    return data


def write_copies(tables: dict[str, pa.Table], root: Path, copies: int, buckets: int) -> None:
    """The rows written ``copies`` times under distinct lead ids as a lake of ``buckets`` partitions.

    Copy 0 keeps the ids, copy k prefixes every id with ``Ck-``: the rows the simulator would give for
    more leads with the same statistics. They are laid out as the lake writer lays them out (each lead
    in the bucket its id hashes to, sorted by lead and time, one part file per bucket, the manifest
    last), but from memory in one pass per partition instead of staged and sorted again: with copies
    instead of simulating every lead, about 5 times faster than the streaming path.
    """
    root.mkdir(parents=True, exist_ok=True)
    leads = tables["leads"]["lead_id"].combine_chunks()
    owner = {t: pc.index_in(tables[t]["lead_id"], value_set=leads).to_numpy(zero_copy_only=False) for t in TABLES}
    row_buckets: dict[str, list[np.ndarray]] = {t: [] for t in TABLES}
    for k in range(copies):
        ids = pc.binary_join_element_wise(f"C{k}-", leads, "") if k else leads
        lead_bucket = bucket_of(ids.to_numpy(zero_copy_only=False), buckets).astype(np.int32)
        for t in TABLES:
            row_buckets[t].append(lead_bucket[owner[t]])
    for b in range(buckets):
        for t in TABLES:
            parts = [_prefixed(tables[t].take(np.flatnonzero(rows == b)), f"C{k}-" if k else "")
                     for k, rows in enumerate(row_buckets[t])]
            data = pa.concat_tables(parts).sort_by([(c, "ascending") for c in SORT[t]])
            if data.num_rows:
                bucket_dir(root, t, b).mkdir(parents=True, exist_ok=True)
                pq.write_table(data, bucket_dir(root, t, b) / "part-00001.parquet")
    latest = {t: int(pc.max(tables[t]["created_at" if t == "leads" else "ts"]).cast(pa.int64()).as_py())
              for t in TABLES if tables[t].num_rows}
    write_manifest(root, Manifest(buckets=buckets, attributes=[a.__dict__ for a in demo_attributes()],
                                  max_ts_us=latest, runs=[{
                                      "run": 1, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                      "rows": {t: tables[t].num_rows * copies for t in TABLES},
                                      "source": "simulator" + (f", {copies} copies under distinct ids" if copies > 1
                                                               else "")}]))


def build_lakes(folder: Path, leads: int, small_leads: int, distinct: bool) -> None:
    """The small lake simulated; the big one simulated too (``distinct``) or written as copies of the small one."""
    small_buckets = max(round(small_leads * 10 / EVENTS_PER_PARTITION), 1)
    copies = max(round(leads / small_leads), 1)
    if distinct:
        simulate_lake(folder / "big", leads, small_buckets * copies, (folder / "small", small_leads, small_buckets))
        return
    tables = simulated_tables(small_leads)
    write_copies(tables, folder / "small", 1, small_buckets)
    write_copies(tables, folder / "big", copies, small_buckets * copies)


def lakes_key(leads: int, small_leads: int, distinct: bool) -> str:
    """What the generated lakes depend on: the sizes, the partition size and the generating code and data."""
    digest = hashlib.sha256(json.dumps([leads, small_leads, distinct, EVENTS_PER_PARTITION]).encode())
    for path in sorted(f for pattern in GENERATED_FROM for f in ROOT.glob(pattern)):
        digest.update(path.read_bytes())
    for fn in (simulate_lake, simulated_tables, _prefixed, write_copies, build_lakes):
        digest.update(inspect.getsource(fn).encode())
    return f"{leads}-{small_leads}{'-distinct' if distinct else ''}-{digest.hexdigest()[:12]}"


def generated_lakes(args: argparse.Namespace, scratch: Path) -> tuple[Path, float, bool]:
    """The lakes' folder, seconds spent generating them now, and whether they came from the cache.

    Generated in a child process, so that its memory does not count towards the peak. Cached under
    ``--cache`` (default ``$TMPDIR/prospect-scale-lakes``) by :func:`lakes_key`, written to a temporary
    name first and renamed: an interrupted generation is never taken for a finished one.
    """
    key = lakes_key(args.leads, args.small_leads, args.distinct)
    target = scratch / "lakes" if args.no_cache else args.cache / key
    if (target / "big" / "manifest.json").exists() and (target / "small" / "manifest.json").exists():
        return target, 0.0, True
    building = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--leads", str(args.leads), "--small-leads", str(args.small_leads),
                    *(["--distinct"] if args.distinct else []), "--generate-only", str(building)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    building.rename(target)
    return target, time.perf_counter() - started, False


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
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "prospect-scale-lakes",
                        help="Folder keeping generated lakes between runs, by their parameters and code.")
    parser.add_argument("--no-cache", action="store_true", help="Generate the lakes afresh and delete them after.")
    parser.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        build_lakes(args.generate_only, args.leads, args.small_leads, args.distinct)
        return
    run_started = time.perf_counter()
    taxonomy = load_taxonomy()
    config = TrainConfig(snapshots=SnapshotConfig(cadence_days=args.cadence))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lakes, generation_s, cached = generated_lakes(args, folder)
        big, small = lakes / "big", lakes / "small"
        n_big, n_small = events_in(big), events_in(small)
        print(f"lakes: {n_big:,} events in {read_manifest(big).buckets} partitions, {n_small:,} in "
              f"{read_manifest(small).buckets}; " + (f"cached at {lakes}" if cached else
                                                     f"generated in {generation_s:.0f} s at {lakes}")
              + " (not counted)", flush=True)

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
        "generation_s": round(generation_s, 1), "lakes_cached": cached,
        "total_s": round(time.perf_counter() - run_started, 1),
    }))


if __name__ == "__main__":
    main()
