"""Retraining on a schedule: train on all feedback so far, promote under the promotion rule, export, report.

The same library functions as ``prospect train``, ``promote`` and ``report``, in that order. A run
records how much feedback it trained on (rows, and the latest answer's time) in
``Settings.retrain_dir``; the next run does nothing when no feedback arrived since, so cron can
call it as often as it likes. A lock file keeps two runs from overlapping; the running service keeps
reading the store meanwhile (SQLite in WAL mode, or a server database).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from contract.taxonomy import Taxonomy
from config.settings import Settings
from contract.timeunits import from_micros
from store.event_store import EventStore, feedback_table
from training.promotion import Comparison
from training.train import TrainConfig, TrainResult


class RetrainBusy(RuntimeError):
    """Another retrain holds the lock."""


@dataclass(frozen=True)
class FeedbackMark:
    """How much feedback the store holds: what a retrain trained on."""

    rows: int
    latest: str | None

    def describe(self) -> str:
        return f"{self.rows:,} feedback rows, the latest answered {self.latest or 'never'}"


@dataclass
class RetrainOutcome:
    mark: FeedbackMark
    previous: FeedbackMark | None
    result: TrainResult | None = None
    version: str | None = None
    comparison: Comparison | None = None
    report: Path | None = None

    @property
    def trained(self) -> bool:
        return self.result is not None


def feedback_mark(store: EventStore) -> FeedbackMark:
    with store.engine.connect() as conn:
        rows, latest = conn.execute(select(func.count(), func.max(feedback_table.c.ts))).one()
    return FeedbackMark(int(rows), None if latest is None else from_micros([latest])[0].isoformat())


def _state(folder: Path) -> Path:
    return folder / "state.json"


def last_trained_on(folder: Path) -> FeedbackMark | None:
    """What the last retrain recorded in ``folder`` (``Settings.retrain_dir``), None before the first."""
    path = _state(folder)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return FeedbackMark(data["rows"], data["latest"])


def _record(folder: Path, mark: FeedbackMark, outcome: RetrainOutcome) -> None:
    path = _state(folder)
    data = {**asdict(mark), "version": outcome.version, "promoted": bool(outcome.comparison and outcome.comparison.promoted),
            "at": datetime.now(UTC).isoformat(timespec="seconds")}
    path.with_suffix(".tmp").write_text(json.dumps(data, indent=1))
    path.with_suffix(".tmp").replace(path)


@contextmanager
def _lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainBusy("another `prospect retrain` is running; this one does nothing") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retrain(settings: Settings, taxonomy: Taxonomy, config: TrainConfig = TrainConfig(), report: bool = True,
            force: bool = False) -> RetrainOutcome:
    """Train, promote if better, export and report, unless no feedback arrived since the last retrain."""
    from features.dataset import load_frames
    from runtime.bundle import load_bundle
    from training.register import train_and_register
    from training.promotion import log_report, promote

    store = EventStore(settings.resolved_store_url)
    with _lock(settings.retrain_dir):
        out = RetrainOutcome(feedback_mark(store), last_trained_on(settings.retrain_dir))
        if out.previous == out.mark and not force:
            return out
        frames = load_frames(store)
        registered = train_and_register(frames, taxonomy, config, settings)
        out.result, out.version = registered.result, registered.version
        out.comparison = promote(frames, taxonomy, settings.models_dir, settings.registry_cache)
        if report:
            from report.numbers import compute
            from report.page import write

            champion = load_bundle(settings.models_dir / "champion")
            out.report = write(compute(champion, frames, taxonomy), settings.report_page)
            log_report(champion.metadata.get("version"), out.report)
        _record(settings.retrain_dir, out.mark, out)
    return out
