"""MLflow: one run per training, the model in the registry, the newest version as ``challenger``.

Tracking defaults to an embedded SQLite file in the home folder (no server to run); any tracking
URI works through ``MLFLOW_TRACKING_URI`` or the CLI flag. Artifacts of the embedded default live
beside the database, not in the current directory. Pointing MLflow at the tracking URI, and the
registry's names, are ``runtime.registry``'s: serving from the registry needs them too.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from runtime.registry import MODEL_NAME


def _flat(prefix: str, value: object, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def _plots(result) -> dict[str, object]:  # noqa: ANN001 - TrainResult
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.metrics import calibration_curve

    figures = {}
    curve = calibration_curve(result.eval_labels, result.eval_probabilities)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, curve["predicted"].max()], [0, curve["predicted"].max()], "--", color="grey", label="perfect")
    ax.plot(curve["predicted"], curve["observed"], "o-", label="model")
    ax.set(xlabel="predicted probability", ylabel="observed prospect rate", title="Calibration (held-out leads)")
    ax.legend()
    figures["calibration_curve.png"] = fig
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.plot(result.gains["share_of_leads"], result.gains["share_of_prospects"], "o-", label="model")
    ax.set(xlabel="share of leads worked (best first)", ylabel="share of prospects found", title="Gains")
    ax.legend()
    figures["gains.png"] = fig
    top = result.importance.head(15).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.barh(top["feature"], top["gain"])
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    figures["importance.png"] = fig
    return figures


def log_training(result, config, bundle_dir: Path) -> tuple[str, str]:  # noqa: ANN001
    """Log one training run with its plots, bundle and model; register it as the challenger.

    Returns (run id, registered version).
    """
    import lightgbm
    import matplotlib.pyplot as plt
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    fs = result.vectorizer.feature_set_
    params: dict = {}
    _flat("", asdict(config), params)
    params.update({"feature_set_version": fs.version, "calibration": result.calibrator.method,
                   "trees": result.booster.best_iteration, "out_of_time": result.split.out_of_time,
                   "leaky_allowed": ",".join(result.leaky_allowed) or "none",
                   "lightgbm_weight": result.robust.weight, "half_life_days": result.robust.half_life_days})
    with mlflow.start_run(run_name=f"train {result.trained_at}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags({"split": result.split.description, "data_window": " to ".join(result.data_window),
                         "drift": result.drift_line[:5000], "dominant_features": " ".join(result.dominance) or "none"})
        mlflow.log_metrics({f"{model}_{name}": float(v) for model, figures in result.metrics.items()
                            for name, v in figures.items() if np.isfinite(v)})
        for name, fig in _plots(result).items():
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)
        with tempfile.TemporaryDirectory() as tmp:
            for name, frame in (("per_channel.csv", result.per_channel), ("per_segment.csv", result.per_segment),
                                ("gains.csv", result.gains), ("importance.csv", result.importance)):
                frame.to_csv(Path(tmp) / name, index=False)
            mlflow.log_artifacts(tmp, "evaluation")
        mlflow.log_dict(fs.to_dict(), "feature_set.json")
        mlflow.log_artifacts(str(bundle_dir), "bundle")
        example = pd.DataFrame(result.example_matrix, columns=fs.names)
        signature = infer_signature(example, result.booster.predict(result.example_matrix))
        info = mlflow.lightgbm.log_model(result.booster, name="model", signature=signature, input_example=example,
                                         pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
                                         registered_model_name=MODEL_NAME)
        version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, "challenger", version)
    client.set_model_version_tag(MODEL_NAME, version, "metrics", json.dumps(
        {k: round(v["roc_auc"], 4) for k, v in result.metrics.items()}))
    return run.info.run_id, version
