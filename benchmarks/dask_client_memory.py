"""What a Dask training run holds on the client: its peak resident memory against the feature matrix's size.

With ``--engine dask`` the feature matrix stays on the workers; the client holds the snapshots'
columns, per-snapshot score vectors and samples of at most ``TrainConfig.client_rows`` rows. This
run generates a lake in a child process (so its memory does not count), then trains on it with
2 single-threaded workers and prints the client's peak RSS before and after training beside the
matrix's size (snapshots x features x 4 bytes) and the workers' peaks. One half-life candidate
(``half_lives=(None,)``) keeps the run short; the memory held does not depend on how many
candidates are fitted.

Usage: python benchmarks/dask_client_memory.py [--leads 40000] [--cadence 7] [--client-rows 200000].
The last line is a JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# as in benchmarks/scale.py: this folder's features.py must not shadow the project's features package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=40_000)
    parser.add_argument("--cadence", type=float, default=7.0, help="Days between a lead's snapshots.")
    parser.add_argument("--client-rows", type=int, default=200_000)
    parser.add_argument("--buckets", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        lake = Path(scratch) / "lake"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from benchmarks.scale import simulate_lake; "
                        "simulate_lake(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))",
                        str(lake), str(args.leads), str(args.buckets)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(f"lake of {args.leads:,} leads generated in {time.perf_counter() - started:.0f} s (not counted)",
              flush=True)
        measure(lake, args)


def measure(lake: Path, args: argparse.Namespace) -> None:
    from contract.taxonomy import load_taxonomy
    from engines.dask_cluster import DaskEngine, connect
    from features.partitioned import LakeJob
    from features.snapshots import SnapshotConfig
    from training.dask_model import dask_lightgbm
    from training.lake_train import train_lake
    from training.train import TrainConfig

    config = TrainConfig(snapshots=SnapshotConfig(cadence_days=args.cadence), half_lives=(None,),
                         client_rows=args.client_rows)
    client, cluster = connect(workers=2, memory_limit=None)
    try:
        before = rss_mb()
        started = time.perf_counter()
        result = train_lake(LakeJob.open(lake, load_taxonomy()), DaskEngine(client), config, dask_lightgbm(client))
        seconds = time.perf_counter() - started
        workers = client.run(rss_mb)
    finally:
        client.close()
        cluster.close()
    snapshots = len(result.split.train)
    matrix_mb = snapshots * len(result.vectorizer.feature_set_.names) * 4 / 1024 ** 2
    figures = {"leads": args.leads, "snapshots": snapshots, "matrix_mb": round(matrix_mb, 1),
               "client_rows": args.client_rows, "client_before_mb": round(before, 1),
               "client_peak_mb": round(rss_mb(), 1), "client_growth_mb": round(rss_mb() - before, 1),
               "largest_worker_peak_mb": round(max(workers.values()), 1), "dask_train_s": round(seconds, 1),
               "roc_auc": round(result.metrics["model"]["roc_auc"], 4)}
    print(f"client peak {figures['client_peak_mb']:.0f} MB ({figures['client_before_mb']:.0f} MB before training) "
          f"for a {matrix_mb:.0f} MB matrix of {snapshots:,} snapshots", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
