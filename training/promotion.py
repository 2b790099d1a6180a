"""Champion and challenger: promote a new model only when it is better, and roll back when needed.

Both models are scored on the same window of the current data: the challenger's own held-out
(eval) leads, rebuilt from the split parameters saved in its bundle, minus every lead the champion
was trained, stopped early or calibrated on -- so neither model has seen any lead it is judged on.

The rule: the challenger is promoted when the lower bound of the 95% paired bootstrap interval (by
lead) of AUC(challenger) - AUC(champion) is above -margin (default 0.005): it must be shown not to
be worse, and a difference within noise in its favour is not taken for an improvement either way.
The interval is printed and logged to the challenger's MLflow run. Each promotion records the
champion it replaced, so rollbacks can walk back one step at a time. The champion is also exported as a bundle
to the models folder, where serving loads it without MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sklearn.metrics import roc_auc_score

from contract.taxonomy import Taxonomy
from features.dataset import StoreFrames
from runtime.bundle import Bundle, verify_bundle, write_manifest
from runtime.registry import MODEL_NAME, download_bundle, version_by_alias
from training.evaluation import SplitParams, evaluation_window, window_probabilities
from training.metrics import PairedDifference, paired_bootstrap_auc

HISTORY_TAG = "champion_history"
MARGIN = 0.005
"""How much worse (in ROC AUC) the challenger may plausibly be and still be promoted."""
MIN_WINDOW_PROSPECTS = 10


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
    difference: PairedDifference | None = None  # challenger - champion, None without a champion
    margin: float = MARGIN
    window_leads: frozenset[str] = field(default=frozenset(), repr=False)  # ids: kept out of any printed form

    @property
    def rule(self) -> str:
        return (f"promote when the lower bound of the 95% interval of AUC(challenger) - AUC(champion) is above "
                f"-{self.margin:g}")


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


def export_champion(bundle_dir: Path, models_dir: Path, version: str) -> Path:
    """Publish a bundle as ``models/champion``, stamped with its registry version, atomically.

    The bundle is copied aside into ``models/releases/``, stamped, given a fresh manifest and
    checked; only then is the ``champion`` link switched to it by one rename. A promote that is
    interrupted at any point leaves the previous champion in place, and a running service never
    sees a half-written bundle. The last few releases are kept for rollbacks and running readers.
    """
    releases = models_dir / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    aside = releases / f".v{version}-{stamp}.partial"
    shutil.copytree(bundle_dir, aside)
    metadata = json.loads((aside / "metadata.json").read_text())
    metadata["version"] = version
    (aside / "metadata.json").write_text(json.dumps(metadata, indent=1))
    write_manifest(aside)
    verify_bundle(aside)
    release = releases / f"v{version}-{stamp}"
    os.rename(aside, release)
    target = models_dir / "champion"
    link = models_dir / f".champion-{stamp}"
    os.symlink(os.path.relpath(release, models_dir), link)
    if target.is_dir() and not target.is_symlink():  # a champion exported by an older version: a plain folder
        os.rename(target, releases / f"previous-{stamp}")
    os.replace(link, target)
    _prune_releases(releases, keep=KEEP_RELEASES, current=release)
    return target


KEEP_RELEASES = 3


def _prune_releases(releases: Path, keep: int, current: Path) -> None:
    """Remove all but the newest ``keep`` releases (never the current one) and leftovers of failed exports."""
    done = sorted((p for p in releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in done[keep:]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def _log_promotion(version: str, c: Comparison) -> None:
    """Record the comparison on the challenger's MLflow run: both AUCs, the interval, the rule and the decision."""
    import mlflow
    from mlflow import MlflowClient

    run_id = MlflowClient().get_model_version(MODEL_NAME, version).run_id
    figures = {"promotion_challenger_auc": c.challenger_auc, "promotion_window_snapshots": float(c.n)}
    if c.difference is not None:
        figures.update({"promotion_champion_auc": c.champion_auc, "promotion_auc_diff": c.difference.diff,
                        "promotion_ci95_low": c.difference.low, "promotion_ci95_high": c.difference.high})
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: v for k, v in figures.items() if v == v})
        mlflow.set_tags({"promotion_rule": c.rule, "promotion_window": c.window[:5000],
                         "promotion_decision": "promoted" if c.promoted else "kept the champion",
                         "promotion_against": c.champion or "none"})


def compare(challenger: Bundle, champion: Bundle | None, frames: StoreFrames, taxonomy: Taxonomy,
            margin: float = MARGIN, replicates: int = 1000) -> Comparison:
    """Score both bundles on the challenger's eval leads that the champion was not fitted on; apply the rule."""
    params = SplitParams.from_metadata(challenger.metadata)
    other = SplitParams.from_metadata(champion.metadata) if champion is not None else None
    window = evaluation_window(params, frames, taxonomy, not_fitted_by=other)
    y = window.y
    if y.sum() < MIN_WINDOW_PROSPECTS or y.sum() == len(y):
        raise PromotionError(f"the comparison window is too small to judge: {window.describe()}; it needs at least "
                             f"{MIN_WINDOW_PROSPECTS} prospects and some non-prospects (use --force to promote anyway)")
    _, p_new = window_probabilities(challenger, window, frames)
    new_auc = float(roc_auc_score(y, p_new))
    leads = frozenset(window.snapshots["lead_id"])
    if champion is None:
        return Comparison("", None, new_auc, None, window.describe(), len(y), True, None, margin, leads)
    _, p_old = window_probabilities(champion, window, frames)
    difference = paired_bootstrap_auc(y, p_new, p_old, window.snapshots["lead_id"].to_numpy(), replicates,
                                      seed=params.seed)
    return Comparison("", "", new_auc, float(roc_auc_score(y, p_old)), window.describe(), len(y),
                      difference.low > -margin, difference, margin, leads)


def promote(frames: StoreFrames, taxonomy: Taxonomy, models_dir: Path, work_dir: Path, force: bool = False,
            margin: float = MARGIN, replicates: int = 1000) -> Comparison:
    """Make the challenger the champion if the paired bootstrap says it is not worse (or ``force``)."""
    from dataclasses import replace

    from mlflow import MlflowClient

    challenger = version_by_alias("challenger")
    if challenger is None:
        raise PromotionError("no challenger to promote: run `prospect train` first")
    champion = version_by_alias("champion")
    if champion == challenger:
        raise PromotionError(f"version {challenger} is already the champion")
    new = download_bundle(challenger, work_dir)
    old = download_bundle(champion, work_dir) if champion is not None else None
    try:
        c = replace(compare(new, old, frames, taxonomy, margin, replicates), challenger=challenger, champion=champion)
    except PromotionError:
        if not force:
            raise
        c = Comparison(challenger, champion, float("nan"), None, "no usable comparison window", 0, False,
                       margin=margin)
    c = replace(c, promoted=c.promoted or force)
    if c.promoted:
        client = MlflowClient()
        history = client.get_registered_model(MODEL_NAME).tags.get(HISTORY_TAG, "")
        if champion is not None:
            client.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, ",".join(filter(None, [history, champion])))
        client.set_registered_model_alias(MODEL_NAME, "champion", challenger)
        export_champion(work_dir / f"v{challenger}" / "bundle", models_dir, challenger)
    _log_promotion(challenger, c)
    return c


def rollback(models_dir: Path, work_dir: Path) -> tuple[str, str]:
    """Return the champion alias to the previous champion; returns (from version, to version)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    current = version_by_alias("champion")
    history = [v for v in client.get_registered_model(MODEL_NAME).tags.get(HISTORY_TAG, "").split(",") if v]
    if current is None or not history:
        raise PromotionError("nothing to roll back to: there is no earlier champion")
    previous = history.pop()
    client.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, ",".join(history))
    client.set_registered_model_alias(MODEL_NAME, "champion", previous)
    download_bundle(previous, work_dir)
    export_champion(work_dir / f"v{previous}" / "bundle", models_dir, previous)
    return current, previous
