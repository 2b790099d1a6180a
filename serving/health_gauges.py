"""The monitor's headline figures as Prometheus gauges on the service's ``/metrics``.

``prospect monitor`` (run from cron) writes its headline figures to ``<home>/monitor/health.json``;
each worker re-reads that file when it changes and sets one gauge per figure, so dashboards and
alert rules watch model health beside latency. prometheus_client is imported when the service
starts, after BentoML has set up its multi-process metrics folder (see ``bentoml.metrics``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FIGURES = {
    "max_feature_psi": "Largest population stability index of a feature, live period against training",
    "score_psi": "Population stability index of the served probabilities against training",
    "feedback_roc_auc": "ROC AUC of served scores on the feedback that came in for them",
    "feedback_ece": "Calibration error of served scores on their feedback",
    "scores_with_feedback": "Served scores whose horizon has passed (the feedback figures' sample)",
    "feedback_delay_days": "Median days from serving a score to sales' answer",
    "live_prospect_ready_share": "Share of live scores in the prospect-ready tier",
    "alarms": "Monitor limits crossed at the last run",
}


class HealthGauges:
    """One gauge per headline figure, refreshed from the monitor's file every ``interval`` seconds."""

    def __init__(self, path: Path, interval: float = 30.0) -> None:
        from prometheus_client import Gauge

        self.path = path
        self.gauges = {name: Gauge(f"prospect_model_{name}", text, multiprocess_mode="livemax")
                       for name, text in FIGURES.items()}
        self._seen: float | None = None
        self.refresh()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="health-gauges", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return  # no monitor run yet
        if mtime == self._seen:
            return
        try:
            figures = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("model health gauges: cannot read %s (%s)", self.path, type(exc).__name__)
            return
        self._seen = mtime
        for name, gauge in self.gauges.items():
            value = figures.get(name)
            gauge.set(float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else value)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
