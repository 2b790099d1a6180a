"""The model bundle: everything scoring needs, in one folder, loadable without an MLflow server.

This module owns the format (which files, the manifest) and loading; ``training.bundle`` writes a
trained result in it.

A bundle holds the LightGBM model file, the calibrator, the tier thresholds, the score scale, the
feature set (names, vocabulary, categories), the taxonomy and attributes it was trained with, the
run's metadata and a model card in Markdown for the humans who decide whether to trust it. When
training blended LightGBM with the logistic regression (``training.robust``), the fitted logistic
pipeline is in ``linear.joblib`` (a scikit-learn object, loaded with the pinned scikit-learn) and
its weight in the metadata; without that file the bundle is LightGBM alone, as before. Everything
else is JSON, YAML or LightGBM's text format, and the pickle holds scikit-learn classes only: no
class of this project is pickled, so moving a module never makes a saved bundle unloadable.

``manifest.json`` lists every file with its size and SHA-256 and is written last: a bundle is
checked against it before LightGBM reads the model file, because LightGBM crashes the whole
process (no Python exception) on a truncated or damaged model file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import yaml

from contract.taxonomy import Taxonomy
from features.registry import AttributeInfo, FeatureSet
from features.vectorizer import FeatureVectorizer
from runtime.calibration import Calibrator
from runtime.contributions import contributions, tree_contributions
from runtime.raw import blend, logistic_scores, raw_scores
from runtime.tiers import Thresholds
from runtime.treeshap import TreeShap

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

    @property
    def categorical(self) -> list[str]:
        return [s.name for s in self.vectorizer.feature_set_.specs if s.dtype == "category"]

    @cached_property
    def treeshap(self) -> TreeShap:
        """The trees' TreeSHAP tables, built once per bundle (:func:`load_bundle` builds them as it loads)."""
        return TreeShap.from_booster(self.booster)

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        raw = raw_scores(self.booster, matrix)
        if self.linear is not None:
            linear = logistic_scores(self.linear, self.vectorizer.to_frame(matrix), self.categorical)
            raw = blend(raw, linear, self.metadata["blend"]["lightgbm_weight"])
        return np.clip(self.calibrator(raw), 0.0, 1.0)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score's log-odds, (n, n_features + 1), the last the bias.

        For a blend they explain both parts as blended (:mod:`runtime.contributions`). A blended bundle
        saved before bundles kept the logistic part's column means (``blend.linear_means``) explains its
        LightGBM part alone, as it did when it served: its replayed reasons stay equal; retraining
        gives it reasons of the blend.
        """
        means = (self.metadata.get("blend") or {}).get("linear_means")
        if self.linear is None or means is None:
            return tree_contributions(self.booster, matrix, self.treeshap)
        return contributions(self.booster, matrix, self.vectorizer.to_frame(matrix), self.linear, self.categorical,
                             np.asarray(means, dtype=np.float64), self.metadata["blend"]["lightgbm_weight"],
                             self.treeshap)

    def score(self, p: np.ndarray) -> np.ndarray:
        """0-100: the share of validation leads this probability beats (97 = better than 97% of leads)."""
        return np.clip(np.searchsorted(self.score_scale, p, side="right") - 1, 0, 100).astype(np.int64)


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
    """Load a bundle folder after checking it against its manifest; a missing or damaged file is named.

    The trees' TreeSHAP tables are built here (tens of milliseconds), so no request waits for them.
    """
    verify_bundle(folder)
    taxonomy = Taxonomy.model_validate(yaml.safe_load((folder / "taxonomy.yaml").read_text()))
    attributes = tuple(AttributeInfo(**a) for a in json.loads((folder / "attributes.json").read_text()))
    feature_set = FeatureSet.from_dict(json.loads((folder / "feature_set.json").read_text()))
    bundle = Bundle(
        booster=lgb.Booster(model_file=str(folder / "model.txt")),
        calibrator=Calibrator.from_dict(json.loads((folder / "calibrator.json").read_text())),
        thresholds=Thresholds(**json.loads((folder / "thresholds.json").read_text())),
        score_scale=np.asarray(json.loads((folder / "score_scale.json").read_text())),
        vectorizer=FeatureVectorizer.from_feature_set(feature_set, taxonomy, attributes),
        metadata=json.loads((folder / "metadata.json").read_text()),
        linear=joblib.load(folder / LINEAR) if (folder / LINEAR).exists() else None,
    )
    _ = bundle.treeshap
    return bundle
