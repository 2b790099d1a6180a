"""Which bundle is the champion in the MLflow registry, and fetching a version's bundle from it.

Serving follows the registry's ``champion`` alias when ``PROSPECT_MODEL_SOURCE=mlflow``; promotion
reads the same aliases before it moves them (``training.promotion``). MLflow is imported inside the
functions: a service that serves from the models folder never loads it.
"""

from __future__ import annotations

from pathlib import Path

from runtime.bundle import Bundle, load_bundle

MODEL_NAME = "prospect-scorer"
EXPERIMENT = "prospect-propensity"


def use_tracking(uri: str, artifact_root: Path | None) -> None:
    """Point MLflow at ``uri`` and make sure the experiment exists (with local artifacts for SQLite)."""
    import logging

    import mlflow

    # MLflow announces database migrations and registrations at INFO; our commands report what matters
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = artifact_root.resolve().as_uri() if artifact_root is not None else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)


def download_bundle(version: str, into: Path) -> Bundle:
    """The bundle of one registry version, downloaded into ``into/v<version>/bundle`` and loaded."""
    import mlflow
    from mlflow import MlflowClient

    run_id = MlflowClient().get_model_version(MODEL_NAME, version).run_id
    target = into / f"v{version}"
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=str(target))
    return load_bundle(target / "bundle")


def version_by_alias(alias: str) -> str | None:
    """The registry version an alias (``champion``, ``challenger``) points at; None when it points nowhere."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException:
        return None


def champion_version() -> str | None:
    """The registry version behind the ``champion`` alias; None when there is none."""
    return version_by_alias("champion")


def bundle_of_version(version: str, work_dir: Path) -> Bundle:
    """The bundle of one registry version, stamped with that version."""
    bundle = download_bundle(version, work_dir)
    bundle.metadata["version"] = version
    return bundle


def champion_bundle(work_dir: Path) -> Bundle:
    """The bundle behind the registry's ``champion`` alias (serving without the exported copy)."""
    version = champion_version()
    if version is None:
        raise FileNotFoundError(f"the registry has no '{MODEL_NAME}@champion': run `prospect promote`")
    return bundle_of_version(version, work_dir)
