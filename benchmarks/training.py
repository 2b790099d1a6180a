"""Training speed: about a million snapshots through the whole pipeline, beside LightGBM alone.

- train_s: `training.train` end to end on generated data -- snapshots, features, out-of-time split,
  leakage guard, LightGBM with early stopping, calibration choice, both baselines, evaluation.
- lightgbm_s: LightGBM alone on the same training and validation matrices, same parameters and
  early stopping: what any pipeline around it must pay anyway.
- overhead_ratio: train_s / lightgbm_s.

Usage: python benchmarks/training.py [--leads 40000]. The last line is a JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/features.py would
# shadow the project's features package; drop the folder before importing the project.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from features.dataset import load_frames  # noqa: E402
from simulator.funnel import FunnelConfig, generate  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from store.ingest import ingest  # noqa: E402
from training.model import fit_lightgbm  # noqa: E402
from training.train import TrainConfig, prepare, train  # noqa: E402
from training.split import split_snapshots  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=40_000, help="Generated leads (40,000 give about 1M snapshots).")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    config = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(FunnelConfig(n_leads=args.leads, seed=5), folder / "demo", taxonomy)
        store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
        ingest(load_mapping(ROOT / "mappings" / "demo.yaml"), folder / "demo", store, taxonomy, folder / "q")
        frames = load_frames(store)

        started = time.perf_counter()
        result = train(frames, taxonomy, config)
        train_s = time.perf_counter() - started

        prepared = prepare(frames, taxonomy, config)
        split = split_snapshots(prepared.snapshots, config.snapshots.horizon_days, config.valid_share, config.seed)
        categorical = [i for i, s in enumerate(prepared.vectorizer.feature_set_.specs) if s.dtype == "category"]
        started = time.perf_counter()
        booster = fit_lightgbm(prepared.matrix[split.train], prepared.y[split.train], prepared.matrix[split.fit_half],
                               prepared.y[split.fit_half], categorical, config.model, config.seed)
        lightgbm_s = time.perf_counter() - started
    snapshots = len(prepared.snapshots)
    print(f"{snapshots:,} snapshots ({int(split.train.sum()):,} for training), {len(prepared.vectorizer.feature_set_.names)}"
          f" features; pipeline {train_s:.1f} s, LightGBM alone {lightgbm_s:.1f} s ({booster.best_iteration} trees); "
          f"held-out ROC AUC {result.metrics['model']['roc_auc']:.4f}")
    print(json.dumps({"snapshots": snapshots, "train_rows": int(split.train.sum()), "train_s": round(train_s, 2),
                      "lightgbm_s": round(lightgbm_s, 2), "overhead_ratio": round(train_s / lightgbm_s, 2),
                      "trees": int(booster.best_iteration)}))


if __name__ == "__main__":
    main()
