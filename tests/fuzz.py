"""schemathesis against the running service's own OpenAPI document: every operation, every check.

Used by the fuzz test and by ``benchmarks/reliability.py``. The run is bounded (a fixed number of
examples per operation, and for the benchmark a time budget), loopback only, with a fixed seed.

One setting differs from schemathesis' defaults, and why: its ``positive_data_acceptance`` check
expects schema-valid requests to be accepted, but some refusals depend on facts no JSON Schema can
state (a time before 1970 or in the future: 400; a time before the lead was created, an unknown
lead: 422 or 404; a body over the size limit: 413). Those statuses are documented per operation, and
the ``response_schema_conformance`` and ``status_code_conformance`` checks still hold every answer
to the document.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "404", "409", "413", "422"]
"""
SCHEMA_CHECKS = ("response_schema_conformance", "status_code_conformance", "content_type_conformance",
                 "response_headers_conformance")


@dataclass
class FuzzResult:
    requests: int
    server_errors: int
    schema_violations: int
    failures: dict[str, int] = field(default_factory=dict)
    per_operation: dict[str, int] = field(default_factory=dict)  # requests by "METHOD /path"
    exit_code: int = 0
    output_tail: str = ""


def run_fuzzer(base: str, key: str, folder: Path, max_examples: int = 100, seed: int = 42,
               max_seconds: int | None = 240, timeout: int = 900) -> FuzzResult:
    """Run schemathesis once; count requests, 5xx answers and failed schema checks from its NDJSON events.

    ``max_seconds`` is a budget schemathesis fills, not a cap: with ``--max-time`` it repeats the fuzzing phase
    (new draws, ``max_examples`` per operation each cycle) until the time is spent, so such a run always takes
    ``max_seconds``. ``None``: one pass of every phase (the coverage cases, then ``max_examples`` per operation),
    which stops when it is done; ``timeout`` bounds it (exceeding it raises ``subprocess.TimeoutExpired``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    events = folder / "events.ndjson"
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color", "run",
               f"{base}/docs.json", "--url", base, "-H", f"Authorization: Bearer {key}", "--checks", "all",
               "-n", str(max_examples), "--seed", str(seed), "--workers", "2",
               "--request-timeout", "30", "--continue-on-failure", "--report", "ndjson",
               "--report-ndjson-path", str(events)]
    if max_seconds is not None:
        command += ["--max-time", str(max_seconds)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                          timeout=timeout if max_seconds is None else max_seconds + 120)
    tally = _read_events(events)
    statuses = tally.statuses
    return FuzzResult(requests=sum(statuses.values()), server_errors=sum(n for s, n in statuses.items() if s >= 500),
                      schema_violations=sum(n for check, n in tally.failures.items() if check in SCHEMA_CHECKS),
                      failures=dict(tally.failures), per_operation=dict(tally.operations), exit_code=done.returncode,
                      output_tail=done.stdout[-3000:])


@dataclass
class _Tally:
    statuses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    operations: Counter = field(default_factory=Counter)


def _read_events(path: Path) -> _Tally:
    tally = _Tally()
    for line in path.read_text().splitlines():
        _walk(json.loads(line), tally)
    return tally


def _walk(node: object, tally: _Tally) -> None:
    """Collect response statuses, requests by operation and failed checks wherever they sit in an event."""
    if isinstance(node, dict):
        response, request = node.get("response"), node.get("request")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            tally.statuses[response["status_code"]] += 1
            if isinstance(request, dict) and isinstance(request.get("uri"), str):
                tally.operations[f"{request.get('method')} {urlsplit(request['uri']).path}"] += 1
        if node.get("status") in ("failure", "FAILURE") and isinstance(node.get("name"), str):
            tally.failures[node["name"]] += 1
        for value in node.values():
            _walk(value, tally)
    elif isinstance(node, list):
        for value in node:
            _walk(value, tally)
