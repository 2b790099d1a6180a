"""How the HTTP service is started: the one ``bentoml serve`` command line, for the CLI, the tests and the benchmarks.

BentoML keeps its Prometheus counters in ``$BENTOML_HOME/prometheus_multiproc_dir`` and empties that folder
whenever a service starts. Two services on one machine with the default home (``~/bentoml``) therefore erase
each other's ``/metrics``: a second service starting made the first one's counters vanish mid-run. Each
service gets a runtime folder of its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:ProspectService"


def serve_command(host: str, port: int, service: str = SERVICE) -> list[str]:
    """The ``bentoml serve`` command line for ``service`` (an ``module:Class`` in this repository)."""
    return [sys.executable, "-m", "bentoml", "serve", service, "--host", host, "--port", str(port),
            "--working-dir", str(ROOT)]


def serve_env(env: Mapping[str, str], runtime_dir: Path) -> dict[str, str]:
    """``env`` with BentoML's home moved to ``runtime_dir``, so this service's metrics are its own."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    return {**env, "BENTOML_HOME": str(runtime_dir.resolve())}


def start_service(env: Mapping[str, str], runtime_dir: Path, host: str, port: int, *, service: str = SERVICE,
                  log: IO | None = None) -> subprocess.Popen:
    """Start the service in the background (output to ``log``, or inherited when None)."""
    return subprocess.Popen(serve_command(host, port, service), env=serve_env(env, runtime_dir), stdout=log,
                            stderr=subprocess.STDOUT if log is not None else None)
