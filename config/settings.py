"""All paths and settings in one typed place, for the library, the CLI, the service and notebooks alike.

Values come from the environment (``PROSPECT_*``) or from CLI flags; nothing is read or created
at import time. ``Settings()`` is cheap, so commands build one when they start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the embedded store, quarantine files and generated data live."""

    model_config = SettingsConfigDict(env_prefix="PROSPECT_", extra="forbid")

    home: Path = Field(Path("var"), description="Working folder for the embedded store and outputs.")
    store_url: str | None = Field(
        None, description="SQLAlchemy URL of the event store; default: SQLite file in the home folder."
    )
    taxonomy: Path | None = Field(None, description="Event taxonomy YAML; default: the packaged one.")
    chunk_rows: int = Field(200_000, gt=0, description="Rows read per chunk when ingesting files.")
    clock_skew_minutes: int = Field(
        5, ge=0, description="Timestamps up to this far past 'now' are accepted (clock drift between systems)."
    )

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else SQLite in the home folder."
    )
    models_dir: Path = Field(Path("models"), description="Where the promoted champion bundle is exported.")
    model_source: Literal["models", "mlflow"] = Field(
        "models", description="Where serving loads the champion: the exported bundle in models_dir, or the "
        "'champion' alias of the registry at the tracking URI.")
    serve_workers: int = Field(1, ge=1, le=16, description="Worker processes of the HTTP service.")
    keepalive_requests: int = Field(
        50, ge=1, description="Requests one keep-alive connection may carry before the service closes it, so "
        "that long-lived client connections spread over the worker processes.")
    max_body_bytes: int = Field(2_000_000, gt=0, description="Larger HTTP request bodies are refused (413).")
    max_payload_events: int = Field(5_000, gt=0, description="Events one /score_payload call may carry (more: 422).")
    criteria: Path | None = Field(None, description="Explicit-criteria rule YAML; default: the packaged one.")
    promotion_margin: float = Field(
        0.005, ge=0, lt=1, description="Promote a challenger when the lower bound of the 95% paired bootstrap interval "
        "of AUC(challenger) - AUC(champion) is above minus this margin.")
    api_key_name: str = Field("default", min_length=1, description="Name of the caller holding PROSPECT_API_KEY, "
                              "recorded in the score log (the key itself never is).")
    api_keys: str | None = Field(None, description="More callers, each with its own key: 'name:key,name:key'.")
    score_log: bool = Field(True, description="Record every score handed out in the score log (store table).")
    score_log_retention_days: float = Field(400, gt=0, description="Score log entries older than this are deleted.")
    score_log_flush_seconds: float = Field(0.2, gt=0, description="The score log writer inserts at least this often.")
    monitor_feature_psi: float = Field(0.25, gt=0, description="Monitor alarm: a feature's population stability "
                                       "index (live period against the training window) above this.")
    monitor_score_psi: float = Field(0.25, gt=0, description="Monitor alarm: the score distribution's PSI above this.")
    monitor_auc_drop: float = Field(0.10, gt=0, description="Monitor alarm: ROC AUC on feedback for served scores "
                                    "this far below the validation ROC AUC.")
    model_poll_seconds: float = Field(
        10.0, gt=0, description="How often each service worker checks whether another champion was promoted; "
        "all workers serve the new one within this interval plus the load time.")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection that has not sent a complete request head this long after "
        "connecting (or after starting a request) is closed.")
    keepalive_timeout_seconds: float = Field(
        5.0, gt=0, description="An idle keep-alive connection is closed after this long.")
    max_connections: int = Field(
        1000, ge=10, description="Open connections per worker; past it, the connection waiting longest for "
        "its request head is closed to make room.")
    lake: Path | None = Field(None, description="Parquet event lake folder; default: <home>/lake.")
    lake_buckets: int = Field(64, ge=1, le=100_000, description="Partitions of a new lake (fixed once written): "
                              "aim for a few per Dask worker thread and at most a few million events each.")
    dask_scheduler: str | None = Field(None, description="Dask scheduler address (tcp://host:8786); default: a "
                                       "LocalCluster on this machine.")
    dask_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for the Dask scheduler before giving up.")
    max_store_events: int = Field(30_000_000, gt=0, description="Above this many events `features` and `train` "
                                  "refuse to load the store into one process and point at the lake and Dask.")

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{(self.home / 'mlflow.db').as_posix()}"

    @property
    def artifact_root(self) -> Path | None:
        """Artifacts of the embedded tracking database live beside it; a server decides its own."""
        return self.home / "mlartifacts" if self.resolved_tracking_uri.startswith("sqlite:") else None

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.home / 'store.sqlite').as_posix()}"

    @property
    def resolved_lake(self) -> Path:
        return self.lake or self.home / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def features_dir(self) -> Path:
        """Where ``prospect features`` writes its Parquet output by default."""
        return self.home / "features"

    @property
    def bundles_dir(self) -> Path:
        """Every trained bundle (one folder per run), and the versions kept for replay (``v<version>``)."""
        return self.home / "bundles"

    @property
    def registry_cache(self) -> Path:
        """Where promotion downloads registered bundles to compare them (``v<version>/bundle``)."""
        return self.home / "registry"

    @property
    def serving_cache(self) -> Path:
        """Where serving from the MLflow registry downloads the champion (``v<version>/bundle``)."""
        return self.home / "serving-cache"

    @property
    def bundle_caches(self) -> tuple[Path, ...]:
        """Folders that may hold a bundle of a given version under ``v<version>/bundle``."""
        return self.registry_cache, self.serving_cache

    @property
    def report_page(self) -> Path:
        return self.home / "report" / "report.html"

    @property
    def health_page(self) -> Path:
        return self.home / "monitor" / "health.html"

    @property
    def health_figures(self) -> Path:
        """The headline figures of the last ``prospect monitor``, read by the service's gauges."""
        return self.home / "monitor" / "health.json"

    @property
    def service_runtime_dir(self) -> Path:
        """BentoML's home for ``prospect serve``: it wipes the metrics folder there at every start, so a
        folder shared by two services would erase the other one's counters."""
        return self.home / "bentoml"

    @property
    def retrain_dir(self) -> Path:
        """The retrain job's lock and the record of what it last trained on."""
        return self.home / "retrain"
