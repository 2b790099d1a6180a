"""Bundles kept by registry version, so that a score logged months ago can be replayed with its model.

Whatever loads a champion to score with keeps a copy under ``<bundles>/v<version>`` first (a
bundle is a few hundred kilobytes). Lookups also try the folders the registry downloads into
(``Settings.bundle_caches``: promotions and serving from MLflow keep ``v<version>/bundle`` there),
so versions promoted or served before this existed are found too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from runtime.bundle import FILES


def kept_folder(bundles: Path, version: str) -> Path:
    return bundles / f"v{version}"


def keep_bundle(folder: Path, bundles: Path) -> Path | None:
    """Copy a versioned bundle folder to ``<bundles>/v<version>`` unless already kept.

    The version is read from the copy, not from the source, so a champion exported by a promotion
    running at the same moment is kept under its own version, never another's.
    """
    bundles.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keep-", dir=bundles))
    try:
        # every file, not only the required ones: optional parts (a blend's linear model) score too
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        version = json.loads((staging / "metadata.json").read_text()).get("version")
        if version is None:
            return None
        target = kept_folder(bundles, str(version))
        if not target.exists():
            staging.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def find_bundle(bundles: Path, caches: tuple[Path, ...], version: str) -> Path | None:
    """The folder of a bundle of this registry version on this machine, None if none is kept."""
    for folder in (kept_folder(bundles, version), *(cache / f"v{version}" / "bundle" for cache in caches)):
        if all((folder / name).exists() for name in FILES):
            return folder
    return None
