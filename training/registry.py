"""Champion and challenger: promote a new model only when it is better, and roll back when needed.

Both models are scored on the same, most recent out-of-time window of the current data, so the
comparison is fair whatever data each was trained on. Each promotion records the champion it
replaced, so rollbacks can walk back one step at a time. The champion is also exported as a bundle
to the models folder, where serving loads it without MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sklearn.metrics import roc_auc_score

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput
from training.bundle import Bundle, load_bundle, verify_bundle, write_manifest
from training.split import split_snapshots
from training.tracking import MODEL_NAME

HISTORY_TAG = "champion_history"


class PromotionError(ValueError):
    """Promotion or rollback cannot go ahead; the message says why."""


@dataclass(frozen=True)
class Comparison:
    challenger: str
    champion: str | None
    challenger_auc: float
    champion_auc: float | None
    window: str
    n: int
    promoted: bool


def _bundle_of(version: str, into: Path) -> Bundle:
    import mlflow
    from mlflow import MlflowClient

    run_id = MlflowClient().get_model_version(MODEL_NAME, version).run_id
    target = into / f"v{version}"
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=str(target))
    return load_bundle(target / "bundle")


def _version_by_alias(alias: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException:
        return None


def champion_version() -> str | None:
    """The registry version behind the ``champion`` alias; None when there is none."""
    return _version_by_alias("champion")


def bundle_of_version(version: str, work_dir: Path) -> Bundle:
    """The bundle of one registry version, stamped with that version."""
    bundle = _bundle_of(version, work_dir)
    bundle.metadata["version"] = version
    return bundle


def champion_bundle(work_dir: Path) -> Bundle:
    """The bundle behind the registry's ``champion`` alias (serving without the exported copy)."""
    version = champion_version()
    if version is None:
        raise FileNotFoundError(f"the registry has no '{MODEL_NAME}@champion': run `prospect promote`")
    return bundle_of_version(version, work_dir)


def log_report(version: str | None, path: Path) -> str | None:
    """Attach a report page to the MLflow run that produced ``version``; returns the run id, None if unknown."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if version is None:
        return None
    try:
        run_id = MlflowClient().get_model_version(MODEL_NAME, version).run_id
    except MlflowException:
        return None
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifact(str(path), "report")
    return run_id


def latest_window_auc(bundle: Bundle, frames: StoreFrames, taxonomy: Taxonomy, snapshots_config: SnapshotConfig,
                      valid_share: float, seed: int) -> tuple[float, int, str]:
    """ROC AUC of a bundle on the most recent out-of-time window of the current data."""
    snaps = build_snapshots(frames.leads, frames.events, frames.feedback, snapshots_config,
                                inbound_types=taxonomy.inbound_types)
    split = split_snapshots(snaps, snapshots_config.horizon_days, valid_share, seed)
    window = split.fit | split.eval
    X = FeatureInput(snaps.loc[window, ["lead_id", "as_of"]], frames.leads, frames.events)
    p = bundle.probability(bundle.vectorizer.transform_matrix(X))
    y = snaps.loc[window, "label"].to_numpy()
    return float(roc_auc_score(y, p)), int(window.sum()), split.description


def export_champion(bundle_dir: Path, models_dir: Path, version: str) -> Path:
    """Publish a bundle as ``models/champion``, stamped with its registry version, atomically.

    The bundle is copied aside into ``models/releases/``, stamped, given a fresh manifest and
    checked; only then is the ``champion`` link switched to it by one rename. A promote that is
    interrupted at any point leaves the previous champion in place, and a running service never
    sees a half-written bundle. The last few releases are kept for rollbacks and running readers.
    """
    releases = models_dir / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    aside = releases / f".v{version}-{stamp}.partial"
    shutil.copytree(bundle_dir, aside)
    metadata = json.loads((aside / "metadata.json").read_text())
    metadata["version"] = version
    (aside / "metadata.json").write_text(json.dumps(metadata, indent=1))
    write_manifest(aside)
    verify_bundle(aside)
    release = releases / f"v{version}-{stamp}"
    os.rename(aside, release)
    target = models_dir / "champion"
    link = models_dir / f".champion-{stamp}"
    os.symlink(os.path.relpath(release, models_dir), link)
    if target.is_dir() and not target.is_symlink():  # a champion exported by an older version: a plain folder
        os.rename(target, releases / f"previous-{stamp}")
    os.replace(link, target)
    _prune_releases(releases, keep=KEEP_RELEASES, current=release)
    return target


KEEP_RELEASES = 3


def _prune_releases(releases: Path, keep: int, current: Path) -> None:
    """Remove all but the newest ``keep`` releases (never the current one) and leftovers of failed exports."""
    done = sorted((p for p in releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in done[keep:]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def promote(frames: StoreFrames, taxonomy: Taxonomy, models_dir: Path, work_dir: Path, force: bool = False,
            valid_share: float = 0.25, seed: int = 7) -> Comparison:
    """Make the challenger the champion if it beats the champion on the latest window (or ``force``)."""
    from mlflow import MlflowClient

    challenger = _version_by_alias("challenger")
    if challenger is None:
        raise PromotionError("no challenger to promote: run `prospect train` first")
    champion = _version_by_alias("champion")
    if champion == challenger:
        raise PromotionError(f"version {challenger} is already the champion")
    new = _bundle_of(challenger, work_dir)
    config = SnapshotConfig(new.metadata["cadence_days"], new.metadata["horizon_days"])
    new_auc, n, window = latest_window_auc(new, frames, taxonomy, config, valid_share, seed)
    old_auc = None
    if champion is not None:
        old_auc, _, _ = latest_window_auc(_bundle_of(champion, work_dir), frames, taxonomy, config, valid_share, seed)
    better = champion is None or new_auc > old_auc
    if better or force:
        client = MlflowClient()
        history = client.get_registered_model(MODEL_NAME).tags.get(HISTORY_TAG, "")
        if champion is not None:
            client.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, ",".join(filter(None, [history, champion])))
        client.set_registered_model_alias(MODEL_NAME, "champion", challenger)
        export_champion(work_dir / f"v{challenger}" / "bundle", models_dir, challenger)
    return Comparison(challenger, champion, new_auc, old_auc, window, n, better or force)


def rollback(models_dir: Path, work_dir: Path) -> tuple[str, str]:
    """Return the champion alias to the previous champion; returns (from version, to version)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    current = _version_by_alias("champion")
    history = [v for v in client.get_registered_model(MODEL_NAME).tags.get(HISTORY_TAG, "").split(",") if v]
    if current is None or not history:
        raise PromotionError("nothing to roll back to: there is no earlier champion")
    previous = history.pop()
    client.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, ",".join(history))
    client.set_registered_model_alias(MODEL_NAME, "champion", previous)
    _bundle_of(previous, work_dir)
    export_champion(work_dir / f"v{previous}" / "bundle", models_dir, previous)
    return current, previous
