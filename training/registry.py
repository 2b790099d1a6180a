"""Champion and challenger: promote a new model only when it is better, and roll back when needed.

Both models are scored on the same, most recent out-of-time window of the current data, so the
comparison is fair whatever data each was trained on. Each promotion records the champion it
replaced, so rollbacks can walk back one step at a time. The champion is also exported as a bundle
to the models folder, where serving loads it without MLflow.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import roc_auc_score

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput
from training.bundle import Bundle, load_bundle
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


def champion_bundle(work_dir: Path) -> Bundle:
    """The bundle behind the registry's ``champion`` alias (serving without the exported copy)."""
    version = _version_by_alias("champion")
    if version is None:
        raise FileNotFoundError(f"the registry has no '{MODEL_NAME}@champion': run `prospect promote`")
    bundle = _bundle_of(version, work_dir)
    bundle.metadata["version"] = version
    return bundle


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
    X = FeatureInput(snaps.loc[window, ["lead_id", "as_of"]], frames.leads, frames.events, frames.history)
    p = bundle.probability(bundle.vectorizer.transform_matrix(X))
    y = snaps.loc[window, "label"].to_numpy()
    return float(roc_auc_score(y, p)), int(window.sum()), split.description


def export_champion(bundle_dir: Path, models_dir: Path, version: str) -> Path:
    """Copy a bundle to ``models/champion``, stamped with its registry version."""
    target = models_dir / "champion"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle_dir, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["version"] = version
    (target / "metadata.json").write_text(json.dumps(metadata, indent=1))
    return target


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
