"""Model quality on generated data (against the known ceiling) and on the two real data sets.

For every data set the shipped model (drift-robust blend, calibrated), a plain LightGBM with
default parameters, the logistic regression and the points rule score, side by side on the same
snapshots (ROC AUC; PR AUC and calibration error where they apply).

- synthetic: out of time on generated leads (converted leads keep acting until sales answers),
  beside the ceiling (the AUC of the simulator's true probabilities on the same snapshots) and two
  weaker oracles (one that ignores buying windows not yet under way, one that ignores them all),
  with the ratio to each; a random split beside.
- drift: the simulator's drift scenario (base rate and channel mix change 60% of the way through
  the arrival period), out of time.
- x_education: stratified 5-fold (seeded) on the before-contact columns only; and whether the
  leakage guard stops training when the after-contact columns are included.
- olist: out of time (the latest 25% of leads), against plain LightGBM, logistic regression, the
  rule score and a segment conversion-rate table (origin x landing page) on the same snapshots, with
  a paired bootstrap interval (by lead) for the AUC difference to the best of them; a random split beside.

Usage: python benchmarks/quality.py [--leads 30000] [--only x_education ...]. The last line is a JSON object.

Its keys are made per data set from one prefix (``synthetic``, ``drift``, ``xedu``, ``olist``): for
example ``synthetic_auc``, ``synthetic_ece`` and ``synthetic_logistic_auc``; ``drift_auc``,
``drift_ece`` and ``drift_logistic_auc``; ``xedu_auc``, ``xedu_plain_lgbm_auc`` and
``xedu_logistic_auc``; ``olist_auc`` beside ``olist_best_baseline_auc``. ``<prefix>_auc`` is always
the shipped model; ``_plain_lgbm``, ``_logistic`` and ``_rule_score`` are the others on the same rows.
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

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402

from contract.mapping import load_mapping  # noqa: E402
from contract.taxonomy import load_taxonomy  # noqa: E402
from features.dataset import load_frames  # noqa: E402
from simulator.funnel import FunnelConfig, generate  # noqa: E402
from simulator.truth import prospect_probability  # noqa: E402
from store.event_store import EventStore  # noqa: E402
from store.ingest import ingest  # noqa: E402
from runtime.raw import logistic_scores  # noqa: E402
from training.baselines import logistic_baseline  # noqa: E402
from training.guards import TrainingStopped  # noqa: E402
from training.metrics import paired_bootstrap_auc  # noqa: E402
from training.split import Split, split_snapshots  # noqa: E402
from training.train import Prepared, TrainConfig, TrainResult, fit, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"


def _frames(mapping: str, data_dir: Path, folder: Path):  # noqa: ANN202
    taxonomy = load_taxonomy()
    store = EventStore(f"sqlite:///{folder / f'{mapping}.sqlite'}")
    ingest(load_mapping(ROOT / "mappings" / f"{mapping}.yaml"), data_dir, store, taxonomy, folder / "q")
    return load_frames(store), taxonomy


def _plain_lightgbm(prepared: Prepared, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    frame = prepared.vectorizer.to_frame(prepared.matrix)
    model = lgb.LGBMClassifier(verbose=-1, random_state=0, n_jobs=2).fit(frame[train], prepared.y[train])
    return model.predict_proba(frame[test])[:, 1]


def _logistic_all_labelled(prepared: Prepared, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """The logistic regression fitted on every labelled lead the refitted shipped model sees (train and fit half)."""
    fs = prepared.vectorizer.feature_set_
    frame = prepared.vectorizer.to_frame(prepared.matrix)
    model, cats = logistic_baseline(frame[train], prepared.y[train], fs, seed)
    return logistic_scores(model, frame[test], cats)


def _side_by_side(prefix: str, prepared: Prepared, result: TrainResult) -> tuple[dict, dict[str, np.ndarray]]:
    """The shipped model, plain LightGBM, logistic regression and rule score on the same eval snapshots.

    ``logistic`` is the run's own baseline (fitted on the training part); ``logistic_all_labelled`` is
    fitted on the training part and the fit half, the rows the refitted shipped model and plain LightGBM see.
    """
    split, y = result.split, result.eval_labels
    labelled = split.train | split.fit_half
    scores = {"plain_lgbm": _plain_lightgbm(prepared, labelled, split.eval_half), **result.baseline_scores,
              "logistic_all_labelled": _logistic_all_labelled(prepared, labelled, split.eval_half, 7)}
    m = result.metrics["model"]
    out = {f"{prefix}_auc": m["roc_auc"], f"{prefix}_pr_auc": m["pr_auc"], f"{prefix}_ece": m["ece"],
           **{f"{prefix}_{k}_auc": float(roc_auc_score(y, v)) for k, v in scores.items()},
           f"{prefix}_logistic_ece": result.metrics["logistic"]["ece"],
           f"{prefix}_plain_lgbm_pr_auc": float(average_precision_score(y, scores["plain_lgbm"])),
           f"{prefix}_lightgbm_weight": result.robust.weight,
           f"{prefix}_half_life_days": result.robust.half_life_days or 0.0,
           f"{prefix}_trees": float(result.robust.rounds.get("refit_trees", result.robust.rounds["early_stopped_trees"]))}
    return out, scores


def _oracles_without_windows(truth: pd.DataFrame, ev: pd.DataFrame) -> tuple[float, float]:
    """AUC of the true probabilities when the oracle is not told of buying windows (not yet under way, or at all).

    The simulator draws each lead's buying window when the lead arrives, so the ceiling knows of a
    window weeks before any behaviour shows it. Each snapshot gets its own copy of its lead's truth,
    with the window's amplitude set to zero where the oracle is not told of it.
    """
    rows = truth.set_index("lead_id").loc[ev["lead_id"].to_numpy()].reset_index(drop=True)
    rows["lead_id"] = np.arange(len(rows)).astype(str)
    days = ((pd.DatetimeIndex(ev["as_of"]).as_unit("us") - pd.DatetimeIndex(rows["day0"]).as_unit("us"))
            / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    ahead = (rows["peak"] - 2 * rows["width"]).to_numpy() > days

    def auc(told: pd.DataFrame) -> float:
        return roc_auc_score(ev["label"], prospect_probability(told, told["lead_id"], ev["as_of"], 30))

    return auc(rows.assign(amp=np.where(ahead, 0.0, rows["amp"]))), auc(rows.assign(amp=0.0))


def _generated(n_leads: int, folder: Path, prefix: str, **scenario) -> dict:  # noqa: ANN003
    taxonomy = load_taxonomy()
    generate(FunnelConfig(n_leads=n_leads, seed=101, **scenario), folder / prefix, taxonomy)
    frames, taxonomy = _frames("demo", folder / prefix, folder / prefix)
    config = TrainConfig()
    prepared = prepare(frames, taxonomy, config)
    oot = fit(prepared, split_snapshots(prepared.snapshots, 30, 0.25, config.seed), config)
    out, _ = _side_by_side(prefix, prepared, oot)
    ev = prepared.snapshots[oot.split.eval_half]
    truth = pd.read_parquet(folder / prefix / "truth.parquet")
    oracles = {"oracle": roc_auc_score(ev["label"], prospect_probability(truth, ev["lead_id"], ev["as_of"], 30))}
    oracles["oracle_started_windows"], oracles["oracle_no_windows"] = _oracles_without_windows(truth, ev)
    for name, auc in oracles.items():
        out[f"{prefix}_{name}_auc"] = auc
        out[f"{prefix}_auc_ratio_to_{name}"] = out[f"{prefix}_auc"] / auc
    if not scenario:
        rnd = fit(prepared, split_snapshots(prepared.snapshots, 30, 0.25, config.seed, random=True), config)
        out[f"{prefix}_random_split_auc"] = rnd.metrics["model"]["roc_auc"]
    return out


def x_education(folder: Path, config: TrainConfig = TrainConfig(drop_after_contact=True)) -> dict:
    frames, taxonomy = _frames("x_education", REAL, folder)
    prepared = prepare(frames, taxonomy, config)
    y = prepared.y
    folds: list[dict] = []
    for fold, (rest, test) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y)):
        train_idx, fit_idx = train_test_split(rest, test_size=0.2, random_state=fold, stratify=y[rest])
        masks = [np.isin(np.arange(len(y)), idx) for idx in (train_idx, fit_idx, test)]
        result = fit(prepared, Split(*masks, False, None, "stratified 5-fold"), config)
        folds.append(_side_by_side("xedu", prepared, result)[0])
    out = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
    leaky = prepare(frames, taxonomy, TrainConfig())
    try:
        fit(leaky, split_snapshots(leaky.snapshots, seed=0), TrainConfig())
        stopped = False
    except TrainingStopped:
        stopped = True
    return {**out, "xedu_folds_auc": [round(f["xedu_auc"], 4) for f in folds], "xedu_leaky_guard_stopped": stopped}


def olist(folder: Path) -> dict:
    frames, taxonomy = _frames("olist", REAL, folder)
    config = TrainConfig()
    prepared = prepare(frames, taxonomy, config)
    split = split_snapshots(prepared.snapshots, 30, 0.25, config.seed)
    result = fit(prepared, split, config)
    out, scores = _side_by_side("olist", prepared, result)
    y, ev = prepared.y, split.eval_half
    frame = prepared.vectorizer.to_frame(prepared.matrix)
    segment = frame["origin"].astype(str) + "|" + frame["attr_landing_page_id"].astype(str)
    rates = pd.Series(y[split.train]).groupby(segment[split.train].to_numpy()).agg(["sum", "count"])
    prior = y[split.train].mean()
    smoothed = (rates["sum"] + 20 * prior) / (rates["count"] + 20)
    scores["segment_table"] = segment[ev].map(smoothed).fillna(prior).to_numpy()
    out["olist_segment_table_auc"] = float(roc_auc_score(y[ev], scores["segment_table"]))
    best = max(scores, key=lambda k: out[f"olist_{k}_auc"])
    diff = paired_bootstrap_auc(y[ev], result.eval_probabilities, scores[best],
                                prepared.snapshots.loc[ev, "lead_id"].to_numpy(), replicates=1000, seed=0)
    rnd = fit(prepared, split_snapshots(prepared.snapshots, 30, 0.25, config.seed, random=True), config)
    return {**out, "olist_best_baseline_auc": out[f"olist_{best}_auc"], "olist_best_baseline": best,
            "olist_diff_to_best": diff.diff, "olist_diff_ci95": [diff.low, diff.high],
            "olist_censored_snapshots": int(prepared.snapshots.attrs.get("censored", 0)),
            "olist_eval_snapshots": int(ev.sum()), "olist_random_split_auc": rnd.metrics["model"]["roc_auc"]}


PARTS = ("synthetic", "drift", "x_education", "olist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=30_000, help="Generated leads for the synthetic part.")
    parser.add_argument("--drift-leads", type=int, default=20_000, help="Generated leads for the drift scenario.")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                        help=f"Run only this part (repeatable; one of {', '.join(PARTS)}); default: all of them.")
    args = parser.parse_args()
    parts = args.only or list(PARTS)
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "synthetic" in parts:
            result.update(_generated(args.leads, Path(tmp), "synthetic"))
            print({k: round(v, 4) for k, v in result.items()}, flush=True)
        if "drift" in parts:
            result.update(_generated(args.drift_leads, Path(tmp), "drift", drift_at=0.6))
            print({k: round(v, 4) for k, v in result.items() if k.startswith("drift")}, flush=True)
        real = [p for p in parts if p in ("x_education", "olist")]
        if real and not REAL.is_dir():
            print(f"real data sets not found at {REAL}; {', '.join(real)} did not run")
            real = []
        if "x_education" in real:
            result.update(x_education(Path(tmp)))
            print({k: v for k, v in result.items() if k.startswith("xedu")}, flush=True)
        if "olist" in real:
            result.update(olist(Path(tmp)))
    def rounded(v: object) -> object:
        return round(v, 4) if isinstance(v, float) else [rounded(x) for x in v] if isinstance(v, list) else v

    print(json.dumps({k: rounded(v) for k, v in result.items()}))


if __name__ == "__main__":
    main()
