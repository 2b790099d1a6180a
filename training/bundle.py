"""The model bundle: everything scoring needs, in one folder, loadable without an MLflow server.

A bundle holds the LightGBM model file, the calibrator, the tier thresholds, the score scale, the
feature set (names, vocabulary, categories), the taxonomy and attributes it was trained with, the
run's metadata and a model card in Markdown for the humans who decide whether to trust it. When
training blended LightGBM with the logistic regression (``training.robust``), the fitted logistic
pipeline is in ``linear.joblib`` (a scikit-learn object, loaded with the pinned scikit-learn) and
its weight in the metadata; without that file the bundle is LightGBM alone, as before.

``manifest.json`` lists every file with its size and SHA-256 and is written last: a bundle is
checked against it before LightGBM reads the model file, because LightGBM crashes the whole
process (no Python exception) on a truncated or damaged model file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import yaml

from contract.taxonomy import Taxonomy
from features.registry import AttributeInfo, FeatureSet
from features.vectorizer import FeatureVectorizer
from training.calibration import Calibrator
from training.baselines import logistic_scores
from training.model import raw_scores
from training.robust import blend
from training.tiers import Thresholds

FILES = ("model.txt", "calibrator.json", "thresholds.json", "score_scale.json", "feature_set.json", "taxonomy.yaml",
         "attributes.json", "metadata.json", "MODEL_CARD.md")
MANIFEST = "manifest.json"
LINEAR = "linear.joblib"
"""The logistic part of a blend: in a bundle only when training chose to blend."""


def _parts(folder: Path, listed: dict | None = None) -> tuple[str, ...]:
    """The files a bundle consists of: the required ones, and the linear part when it has one."""
    blended = (folder / LINEAR).exists() or (listed is not None and LINEAR in listed)
    return FILES + ((LINEAR,) if blended else ())


class BundleError(FileNotFoundError):
    """A bundle folder that must not be loaded: a file missing, damaged or not the one the manifest names.

    A FileNotFoundError, so callers that say "no usable champion" for a missing bundle say it here too.
    """


@dataclass
class Bundle:
    booster: lgb.Booster
    calibrator: Calibrator
    thresholds: Thresholds
    score_scale: np.ndarray  # 101 quantiles of validation probabilities: score = percentile
    vectorizer: FeatureVectorizer
    metadata: dict
    linear: object | None = None  # the logistic pipeline of a blend, None for LightGBM alone

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        raw = raw_scores(self.booster, matrix)
        if self.linear is not None:
            categorical = [s.name for s in self.vectorizer.feature_set_.specs if s.dtype == "category"]
            linear = logistic_scores(self.linear, self.vectorizer.to_frame(matrix), categorical)
            raw = blend(raw, linear, self.metadata["blend"]["lightgbm_weight"])
        return np.clip(self.calibrator(raw), 0.0, 1.0)

    def score(self, p: np.ndarray) -> np.ndarray:
        """0-100: the share of validation leads this probability beats (97 = better than 97% of leads)."""
        return np.clip(np.searchsorted(self.score_scale, p, side="right") - 1, 0, 100).astype(np.int64)


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
                  "fit_half_roc_auc": robust.choices, "rounds": robust.rounds},
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict:
    """Record each file's size and checksum, and the version; call it after the last file is written."""
    version = json.loads((folder / "metadata.json").read_text()).get("version")
    manifest = {"version": version,
                "files": {name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
                          for name in _parts(folder)}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def verify_bundle(folder: Path) -> dict:
    """Check every file against the manifest (presence, size, SHA-256); returns the manifest.

    Raises BundleError naming the folder and the first file that is missing or differs, so that a
    damaged bundle is refused with one clear line instead of crashing the process that loads it.
    """
    if not folder.is_dir():
        raise BundleError(f"{folder}: no model bundle there (run `prospect promote`)")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        listed = manifest["files"]
    except FileNotFoundError:
        raise BundleError(f"{folder}: {MANIFEST} is missing; re-export the bundle with `prospect promote`") from None
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{folder}: {MANIFEST} is damaged (not the JSON the exporter writes)") from None
    for name in _parts(folder, listed):
        path = folder / name
        if name not in listed:
            raise BundleError(f"{folder}: {name} is not listed in {MANIFEST}")
        if not path.is_file():
            raise BundleError(f"{folder}: {name} is missing")
        if path.stat().st_size != listed[name].get("bytes") or _sha256(path) != listed[name].get("sha256"):
            raise BundleError(f"{folder}: {name} is damaged (size or checksum differs from {MANIFEST})")
    return manifest


def load_bundle(folder: Path) -> Bundle:
    """Load a bundle folder after checking it against its manifest; a missing or damaged file is named."""
    verify_bundle(folder)
    taxonomy = Taxonomy.model_validate(yaml.safe_load((folder / "taxonomy.yaml").read_text()))
    attributes = tuple(AttributeInfo(**a) for a in json.loads((folder / "attributes.json").read_text()))
    feature_set = FeatureSet.from_dict(json.loads((folder / "feature_set.json").read_text()))
    return Bundle(
        booster=lgb.Booster(model_file=str(folder / "model.txt")),
        calibrator=Calibrator.from_dict(json.loads((folder / "calibrator.json").read_text())),
        thresholds=Thresholds(**json.loads((folder / "thresholds.json").read_text())),
        score_scale=np.asarray(json.loads((folder / "score_scale.json").read_text())),
        vectorizer=FeatureVectorizer.from_feature_set(feature_set, taxonomy, attributes),
        metadata=json.loads((folder / "metadata.json").read_text()),
        linear=joblib.load(folder / LINEAR) if (folder / LINEAR).exists() else None,
    )


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
{'Per-lead reasons describe the LightGBM part of the blend.' if metadata['blend']['lightgbm_weight'] < 1 else ''}

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
