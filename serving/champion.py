"""Which champion a service worker serves, and how it changes without a restart.

Each worker follows one pointer: the ``models/champion`` link (switched by one rename when a model
is promoted) or, with ``PROSPECT_MODEL_SOURCE=mlflow``, the registry's ``champion`` alias. Every
``model_poll_seconds`` it reads the pointer; when it names another bundle, the worker checks the
bundle against its manifest, loads it fully and scores a warm-up lead with it aside, and only then
replaces the one reference that requests read. A request takes that reference once, so it is
answered by one model from start to end, and its response names the version. A bundle that fails
the check or the load is refused with one log line and the current model keeps serving; the worker
tries again only when the pointer changes again.

All workers read the same pointer, so they serve the same version at start-up (a worker restarted
by the server included), and after a promote they all serve the new one within one poll interval
plus the load time (about a second): the only window in which two workers can answer with
different versions, each response naming its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contract.taxonomy import Taxonomy
from config.settings import Settings
from runtime.bundle import MANIFEST, BundleError, load_bundle, verify_bundle
from runtime.versions import keep_bundle
from serving.criteria import Criteria
from serving.scoring import Scorer

log = logging.getLogger("prospect.champion")


@dataclass(frozen=True)
class Pointer:
    """Where the champion is now: ``identity`` changes exactly when another bundle is promoted."""

    identity: str
    folder: Path | None  # the resolved release folder (models source)
    version: str | None  # the registry version (mlflow source)


@dataclass(frozen=True)
class Champion:
    """The model a request uses, taken once per request."""

    scorer: Scorer
    taxonomy: Taxonomy  # the taxonomy the model was trained with
    identity: str

    @property
    def version(self) -> str | None:
        return self.scorer.version


def read_pointer(settings: Settings) -> Pointer:
    """The current pointer, cheaply (a link and a small manifest, or one registry query).

    Raises BundleError when there is no champion to point at.
    """
    if settings.model_source == "mlflow":
        from runtime.registry import champion_version

        version = champion_version()
        if version is None:
            raise BundleError("the registry has no champion alias: run `prospect promote`")
        return Pointer(identity=f"registry:{version}", folder=None, version=version)
    folder = (settings.models_dir / "champion").resolve()
    if not folder.is_dir():
        raise BundleError(f"{folder}: no model bundle there (run `prospect promote`)")
    try:
        manifest = (folder / MANIFEST).read_bytes()
    except OSError:
        raise BundleError(f"{folder}: {MANIFEST} is missing; re-export the bundle with `prospect promote`") from None
    return Pointer(identity=f"{folder}:{hashlib.sha256(manifest).hexdigest()[:16]}", folder=folder, version=None)


def check_pointer(settings: Settings) -> Pointer:
    """Start-up check: the pointer and every file of its bundle, before any model file is parsed."""
    pointer = read_pointer(settings)
    if pointer.folder is not None:
        verify_bundle(pointer.folder)
    return pointer


def load_champion(settings: Settings, pointer: Pointer) -> Champion:
    """Load the bundle the pointer names (checked against its manifest first)."""
    if pointer.folder is not None:
        bundle = load_bundle(pointer.folder)
        keep_bundle(pointer.folder, settings.bundles_dir)  # replay finds it by version later
    else:
        from runtime.registry import bundle_of_version, use_tracking

        use_tracking(settings.resolved_tracking_uri, settings.artifact_root)
        # one cache per process: two workers downloading into one folder at once would mix files
        bundle = bundle_of_version(pointer.version, settings.serving_cache / f"pid-{os.getpid()}")
    scorer = Scorer(bundle, Criteria.load(settings.criteria, bundle.vectorizer.taxonomy_))
    return Champion(scorer=scorer, taxonomy=bundle.vectorizer.taxonomy_, identity=pointer.identity)


class ChampionWatcher:
    """Holds the champion of one worker and swaps it when the pointer moves."""

    def __init__(self, settings: Settings, warm_up: Callable[[Champion], None]) -> None:
        self.settings = settings
        self.warm_up = warm_up
        pointer = read_pointer(settings)
        self.current = load_champion(settings, pointer)
        warm_up(self.current)
        self.refused: str | None = None  # identity of the last bundle refused, not retried until it changes
        self._stop = threading.Event()

    def poll(self) -> bool:
        """Look at the pointer once; returns True when another model now serves."""
        try:
            pointer = read_pointer(self.settings)
        except Exception as exc:  # noqa: BLE001 - a missing pointer must not stop the model that serves
            self._refuse(f"pointer:{type(exc).__name__}", exc)
            return False
        if pointer.identity in (self.current.identity, self.refused):
            return False
        try:
            candidate = load_champion(self.settings, pointer)
            self.warm_up(candidate)
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the current model
            self._refuse(pointer.identity, exc)
            return False
        previous = self.current.version
        self.current = candidate  # one reference: a request sees the old or the new model, never both
        self.refused = None
        log.warning("champion swapped: version %s now serves (was %s)", candidate.version, previous)
        return True

    def _refuse(self, identity: str, exc: Exception) -> None:
        if identity != self.refused:
            reason = str(exc) if isinstance(exc, BundleError) else type(exc).__name__
            log.error("new champion refused, version %s keeps serving: %s", self.current.version, reason)
        self.refused = identity

    def start(self) -> threading.Thread:
        """Poll every ``model_poll_seconds`` on a daemon thread until :meth:`stop`."""
        thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while not self._stop.wait(self.settings.model_poll_seconds):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
