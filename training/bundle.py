"""Writing a trained result as a model bundle (the format and loading are ``runtime.bundle``'s).

The bundle carries the run's metadata, the parameters that rebuild its evaluation window, and a
model card in Markdown for the humans who decide whether to trust it.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import yaml

from runtime.bundle import LINEAR, write_manifest


def save_bundle(result, config, folder: Path, version: str | None = None) -> Path:  # noqa: ANN001 - TrainResult
    """Write a trained result as a bundle folder (created or overwritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    vec = result.vectorizer
    result.booster.save_model(str(folder / "model.txt"), num_iteration=result.booster.best_iteration or None)
    (folder / "calibrator.json").write_text(json.dumps(result.calibrator.to_dict()))
    (folder / "thresholds.json").write_text(json.dumps(result.thresholds.to_dict()))
    (folder / "score_scale.json").write_text(json.dumps(result.score_scale.tolist()))
    (folder / "feature_set.json").write_text(json.dumps(vec.feature_set_.to_dict(), indent=1))
    (folder / "taxonomy.yaml").write_text(yaml.safe_dump(vec.taxonomy_.model_dump(mode="json"), sort_keys=False))
    (folder / "attributes.json").write_text(json.dumps([a.__dict__ for a in vec.attributes_]))
    robust = result.robust
    if robust.linear is not None:
        joblib.dump(robust.linear, folder / LINEAR)
    else:
        (folder / LINEAR).unlink(missing_ok=True)
    metadata = {
        "version": version,
        "trained_at": result.trained_at,
        "data_window": list(result.data_window),
        "feature_set_version": vec.feature_set_.version,
        "horizon_days": config.snapshots.horizon_days,
        "cadence_days": config.snapshots.cadence_days,
        "split": result.split.description,
        "out_of_time": result.split.out_of_time,
        "calibration": result.calibrator.method,
        "trees": int(result.booster.best_iteration or result.booster.num_trees()),
        "metrics": result.metrics,
        "leaky_allowed": result.leaky_allowed,
        "seed": config.seed,
        "blend": {"lightgbm_weight": robust.weight, "half_life_days": robust.half_life_days,
                  "fit_half_roc_auc": robust.choices, "rounds": robust.rounds,
                  # the reference of the logistic part's contributions to the reasons (runtime.contributions)
                  **({"linear_means": robust.linear_means.tolist()} if robust.linear_means is not None else {})},
        "drift": result.drift_line,
        "dominant_features": result.dominance,
        # what training/evaluation.py needs to rebuild this run's evaluation window on later data
        "split_params": {"cadence_days": config.snapshots.cadence_days, "horizon_days": config.snapshots.horizon_days,
                         "valid_share": config.valid_share, "seed": config.seed,
                         "cutoff": result.split.cutoff.isoformat() if result.split.cutoff is not None else None},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (folder / "MODEL_CARD.md").write_text(model_card(result, metadata))
    write_manifest(folder)
    return folder


def _fitted_on(rounds: dict) -> str:
    """How the shipped trees were fitted and calibrated, in one sentence for the model card."""
    if "refit_trees" not in rounds:
        return "calibrated on the fit half, the most recent labelled leads."
    return (f"refitted on the training part and the fit half ({rounds['refit_rows']:,} snapshots, "
            f"{rounds['refit_trees']} trees: the {rounds['early_stopped_trees']} early-stopped ones scaled to the "
            "rows) and calibrated on cross-fitted fit-half scores, never on its own.")


def model_card(result, metadata: dict) -> str:  # noqa: ANN001
    m = result.metrics
    rows = "\n".join(
        f"| {label} | {m[k]['roc_auc']:.4f} | {m[k]['pr_auc']:.4f} | "
        + ("n/a" if m[k]["brier"] != m[k]["brier"] else f"{m[k]['brier']:.4f}") + " | "
        + ("n/a" if m[k]["ece"] != m[k]["ece"] else f"{m[k]['ece']:.4f}") + f" | {m[k]['lift_top_decile']:.2f}x |"
        for k, label in (("model", "this model"), ("rule_score", "rule score"), ("logistic", "logistic regression")))
    top = "\n".join(f"- {r.description} (`{r.feature}`)" for r in result.importance.head(10).itertuples())
    t = result.thresholds
    return f"""# Prospect-propensity model {metadata.get('version') or ''}

Predicts the probability that sales marks a lead `prospect` within {metadata['horizon_days']:g} days.
Trained {metadata['trained_at']} on snapshots from {metadata['data_window'][0]} to {metadata['data_window'][1]}
(feature set `{metadata['feature_set_version']}`, {metadata['trees']} trees, {metadata['calibration']} calibration).

## Validation
{metadata['split']}.

The figures below are on the *eval* half of the held-out leads (validation share
{metadata['split_params']['valid_share']:g}, seed {metadata['split_params']['seed']}, cutoff
{metadata['split_params']['cutoff'] or 'none: not out of time'}); the other half stopped training and
calibrated the probabilities. `training/evaluation.py` rebuilds this window from these saved
parameters for promotion and the report.

| model | ROC AUC | PR AUC | Brier | ECE | lift top 10% |
|---|---|---|---|---|---|
{rows}

Base rate on the held-out snapshots: {m['model']['base_rate']:.2%} of {m['model']['n']:,}.

## Drift and how the model was fitted
{metadata['drift']}.

Recency weights: {'none (every training snapshot weighs the same)' if metadata['blend']['half_life_days'] is None
                  else f"half-life {metadata['blend']['half_life_days']:g} days"}; LightGBM weight in the blend
with the logistic regression: {metadata['blend']['lightgbm_weight']:g} (both chosen by ROC AUC on the fit half);
{_fitted_on(metadata['blend'].get('rounds', {}))}
{'Per-lead reasons and the report explain both parts of the blend, weighted as blended; the dominant-feature '
 'check looks at the blend and at each part.' if metadata['blend']['lightgbm_weight'] < 1 else ''}

## Tiers
Set by {t.policy}.
- prospect-ready: probability >= {t.ready:.4f} (the top {t.ready_share:.0%} of validation leads)
- warming: probability >= {t.warming:.4f} (the next {t.warming_share:.0%})
- early lead: the rest

## What drives it
{top}

## Caveats
- Leakage guard overrides: {', '.join(result.leaky_allowed) or 'none'}.
- Dominant features: {' '.join(result.dominance) or 'none'}
- Probabilities are calibrated on held-out leads from the validation window; recalibrate after large
  changes in lead sources or sales process.
"""
