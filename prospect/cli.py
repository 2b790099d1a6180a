"""The ``prospect`` command line: one thin typer command per library function."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import Settings

app = typer.Typer(help="Prospect-propensity scorer: score leads on their behaviour over time.",
                  no_args_is_help=True, add_completion=False)
# soft_wrap: long messages (paths, reasons) stay on one line, so they can be grepped and copied
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

PACKAGED_MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Working folder (default: $PROSPECT_HOME or ./var).")]
CapacityOpt = Annotated[str | None, typer.Option("--capacity", help="Leads a week sales can call, e.g. 50/week: "
                                                "the prospect-ready cut-off is set so that about this many reach it "
                                                "(from the recent arrival rate) instead of the top 5%.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL of the event store "
                                                             "(default: $PROSPECT_STORE_URL or SQLite in the home folder).")]


ReportPageOpt = Annotated[Path | None, typer.Option(help="Where to write the page; default: "
                                                         "<home>/report/report.html.")]
HealthPageOpt = Annotated[Path | None, typer.Option(help="Where to write the page; default: "
                                                         "<home>/monitor/health.html.")]
LakeOpt = Annotated[Path | None, typer.Option("--lake", help="Read a Parquet event lake (see `prospect lake export`) "
                                                            "partition by partition instead of the store.")]


class EngineName(StrEnum):
    local = "local"
    dask = "dask"


EngineOpt = Annotated[EngineName, typer.Option("--engine", help="local: partitions one after the other in this process; dask: on a Dask "
                                             "cluster (needs --lake).")]
SchedulerOpt = Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 "
                                                                     "(default: $PROSPECT_DASK_SCHEDULER, else a "
                                                                     "LocalCluster on this machine).")]


def _settings(home: Path | None, store: str | None = None) -> Settings:
    overrides = {k: v for k, v in {"home": home, "store_url": store}.items() if v is not None}
    return Settings(**overrides)


def _per_week(capacity: str | None) -> float | None:
    """``50/week`` or ``50`` -> 50.0; anything else stops with a clear message."""
    if capacity is None:
        return None
    try:
        value = float(capacity.strip().removesuffix("/week").strip())
    except ValueError:
        value = -1.0
    if value <= 0:
        err.print(f"[red]error:[/red] --capacity {capacity!r}: give leads a week as a positive number, e.g. 50/week")
        raise typer.Exit(2)
    return value


def _champion(settings: Settings):  # noqa: ANN202 - runtime.bundle.Bundle, imported when needed
    """The exported champion bundle, or exit 2 saying how to get one."""
    from runtime.bundle import load_bundle

    try:
        return load_bundle(settings.models_dir / "champion")
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] no champion model: {exc}. Run `prospect train` and `prospect promote`.")
        raise typer.Exit(2) from exc


def _as_of(as_of: str | None):  # noqa: ANN202 - pandas.Timestamp, imported when needed
    """``--as-of`` as a zone-aware moment (now when not given), or exit 2 saying what is wrong."""
    import pandas as pd

    try:
        moment = pd.Timestamp(as_of) if as_of else pd.Timestamp.now(tz="UTC")
        if moment.tz is None:
            raise ValueError("give a time zone, e.g. 2026-01-31T12:00:00Z")
    except ValueError as exc:
        err.print(f"[red]error:[/red] --as-of {as_of!r}: {exc}")
        raise typer.Exit(2) from exc
    return moment


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


@app.command()
def generate(
    leads: Annotated[int, typer.Option(help="Number of leads to simulate.", min=1)] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and size give the same bytes.")] = 7,
    start: Annotated[str, typer.Option(help="First arrival date (YYYY-MM-DD).")] = "2025-01-06",
    months: Annotated[int, typer.Option(help="Months over which leads arrive.", min=1)] = 12,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <home>/demo).")] = None,
    home: HomeOpt = None,
    shift_at: Annotated[str | None, typer.Option(help="From this date (YYYY-MM-DD) leads act in the evening, most "
                                                      "new ones come from events and from small companies: a "
                                                      "scenario for `prospect monitor`.")] = None,
) -> None:
    """Simulate a B2B funnel and write leads, events, feedback and ground truth as Parquet."""
    from contract.taxonomy import load_taxonomy
    from simulator.funnel import FunnelConfig, generate as run

    settings = _settings(home)
    target = out or settings.demo_dir
    cfg = FunnelConfig(n_leads=leads, seed=seed, start=start, months=months, shift_at=shift_at)
    with _progress() as progress:
        task = progress.add_task("simulating leads", total=leads)
        try:
            paths = run(cfg, target, load_taxonomy(settings.taxonomy), lambda n: progress.advance(task, n))
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    console.print(f"wrote {leads:,} leads to {target}: " + ", ".join(p.name for p in paths.values()))


@app.command()
def ingest(
    mapping: Annotated[Path, typer.Argument(help="Mapping YAML (see mappings/).")] = PACKAGED_MAPPINGS / "demo.yaml",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder the mapping's files are relative to "
                                                                      "(default: <home>/demo for the demo mapping, "
                                                                      "else the mapping's folder).")] = None,
    lake: Annotated[Path | None, typer.Option("--lake", help="Load straight into this Parquet event lake instead of "
                                                            "the store (bulk history loads).")] = None,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Load sources into the event store (or a lake) through a mapping file; unusable rows go to quarantine."""
    from contract.mapping import MappingError, load_mapping
    from contract.taxonomy import TaxonomyError, load_taxonomy
    from store.event_store import EventStore
    from store.ingest import ingest as run

    settings = _settings(home, store)
    try:
        parsed = load_mapping(mapping)
        taxonomy = load_taxonomy(settings.taxonomy)
    except (MappingError, TaxonomyError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if data_dir is None:
        data_dir = settings.demo_dir if parsed.name == "demo" else mapping.parent
    event_store = EventStore(settings.resolved_store_url)
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def advance(label: str, n: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=None)
            progress.advance(tasks[label], n)

        if lake is not None:
            from lake.ingest import ingest_to_lake

            summary = ingest_to_lake(parsed, data_dir, lake, taxonomy, settings.quarantine_dir, settings.lake_buckets,
                                     settings.chunk_rows, progress=advance,
                                     clock_skew=timedelta(minutes=settings.clock_skew_minutes))
        else:
            summary = run(parsed, data_dir, event_store, taxonomy, settings.quarantine_dir, settings.chunk_rows,
                          progress=advance, clock_skew=timedelta(minutes=settings.clock_skew_minutes))
    table = Table(title=f"ingest {parsed.name}")
    for col in ("file", "table", "read", "stored", "duplicates", "quarantined", "skipped"):
        table.add_column(col, justify="left" if col in ("file", "table") else "right", overflow="fold")
    for b in summary.batches:
        table.add_row(b.file, b.table, f"{b.read:,}", f"{b.stored:,}", f"{b.duplicates:,}", f"{b.quarantined:,}",
                      f"{b.skipped:,}")
    console.print(table)
    for b in summary.batches:
        if b.quarantine_file:
            console.print(f"quarantined {b.quarantined:,} {b.table} rows of {b.file}: {b.quarantine_file}")
        if b.error:
            err.print(f"[red]error:[/red] {b.error} (nothing stored from this file)")
        if b.note:
            err.print(f"[yellow]passed over {b.table} of {b.file}:[/yellow] {b.note}")
    if lake is not None:
        console.print(f"written to the lake {lake}")
    else:
        counts = event_store.counts()
        console.print(f"store now holds {counts.leads:,} leads, {counts.events:,} events, "
                      f"{counts.feedback:,} feedback rows, {counts.history:,} attribute-history rows")
    if summary.exit_code:
        if summary.usable == 0 and not summary.failed:
            err.print("[red]error:[/red] nothing usable was found")
        raise typer.Exit(summary.exit_code)


@app.command()
def status(home: HomeOpt = None, store: StoreOpt = None) -> None:
    """Show what the event store holds."""
    from store.event_store import EventStore

    counts = EventStore(_settings(home, store).resolved_store_url).counts()
    console.print(f"{counts.leads:,} leads, {counts.events:,} events, {counts.feedback:,} feedback rows, "
                  f"{counts.history:,} attribute-history rows")


@app.command()
def features(
    cadence: Annotated[float, typer.Option(help="Days between as-of times of a lead's snapshots.", min=0.01)] = 7.0,
    horizon: Annotated[float, typer.Option(help="Days after the as-of time in which feedback labels it.",
                                           min=0.01)] = 30.0,
    lake: LakeOpt = None,
    engine: EngineOpt = EngineName.local,
    scheduler: SchedulerOpt = None,
    out: Annotated[Path | None, typer.Option(help="With --lake: folder for the features, one Parquet file per "
                                                  "partition (default: <home>/features).")] = None,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Build labelled (lead, as-of) snapshots from the store (or a lake) and compute their features."""
    import time

    from contract.taxonomy import load_taxonomy
    from features.dataset import training_set
    from features.snapshots import SnapshotConfig

    settings = _settings(home, store)
    if lake is not None or engine == "dask":
        _lake_features(settings, lake, engine, scheduler, SnapshotConfig(cadence, horizon), out)
        return
    frames = _store_frames(settings)
    if frames.leads.empty:
        err.print("[red]error:[/red] the store holds no leads; run `prospect ingest` first")
        raise typer.Exit(1)
    started = time.perf_counter()
    built = training_set(frames, load_taxonomy(settings.taxonomy), SnapshotConfig(cadence, horizon))
    elapsed = time.perf_counter() - started
    snaps, fs = built.snapshots, built.vectorizer.feature_set_
    console.print(f"{len(snaps):,} labelled snapshots of {snaps['lead_id'].nunique():,} leads "
                  f"({snaps['label'].mean():.1%} become prospects within {horizon:g} days); "
                  f"{len(fs.names)} features (set {fs.version}) in {elapsed:.1f} s")
    _families_table(fs)


def _families_table(fs) -> None:  # noqa: ANN001 - features.registry.FeatureSet
    families = Table(title="features per family")
    families.add_column("family")
    families.add_column("features", justify="right")
    families.add_column("example")
    for family in dict.fromkeys(s.family for s in fs.specs):
        members = [s for s in fs.specs if s.family == family]
        families.add_row(family, str(len(members)), members[0].description)
    console.print(families)


def _metrics_table(result) -> Table:  # noqa: ANN001 - training.train.TrainResult
    table = Table(title=f"evaluation on {result.metrics['model']['n']:,} held-out snapshots "
                        f"(base rate {result.metrics['model']['base_rate']:.2%})")
    table.add_column("model")
    for name in ("ROC AUC", "PR AUC", "Brier", "ECE", "lift top 10%"):
        table.add_column(name, justify="right")
    labels = {"model": "LightGBM (calibrated)", "rule_score": "rule score (points, decay)",
              "logistic": "logistic regression"}
    for key, label in labels.items():
        m = result.metrics[key]
        cells = [m["roc_auc"], m["pr_auc"], m["brier"], m["ece"], m["lift_top_decile"]]
        table.add_row(label, *("n/a" if v != v else f"{v:.4f}" if i < 4 else f"{v:.2f}x" for i, v in enumerate(cells)))
    return table


@app.command()
def train(
    horizon: Annotated[float, typer.Option(help="Days after the as-of time in which feedback labels it.",
                                           min=0.01)] = 30.0,
    cadence: Annotated[float, typer.Option(help="Days between as-of times of a lead's snapshots.", min=0.01)] = 7.0,
    valid_share: Annotated[float, typer.Option(help="Share of (latest) leads held out for validation.",
                                               min=0.05, max=0.9)] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed for the split, the model and calibration.")] = 7,
    allow_leaky: Annotated[list[str], typer.Option("--allow-leaky", help="Let this feature through the leakage "
                                                   "guard (repeatable); the run records it.")] = [],  # noqa: B006
    drop_after_contact: Annotated[bool, typer.Option(help="Leave out attributes the mapping marks as recorded by "
                                                          "sales after contact.")] = False,
    capacity: CapacityOpt = None,
    lake: LakeOpt = None,
    engine: EngineOpt = EngineName.local,
    scheduler: SchedulerOpt = None,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Train a calibrated LightGBM model on the store's feedback, validated out of time, against two baselines."""
    from contract.taxonomy import load_taxonomy
    from features.snapshots import SnapshotConfig
    from training.guards import TrainingStopped
    from training.train import TrainConfig
    from training.train import train as run

    settings = _settings(home, store)
    config = TrainConfig(snapshots=SnapshotConfig(cadence, horizon), valid_share=valid_share, seed=seed,
                         allow_leaky=tuple(allow_leaky), drop_after_contact=drop_after_contact,
                         capacity_per_week=_per_week(capacity))
    on_lake = lake is not None or engine == "dask"
    frames = None if on_lake else _store_frames(settings)
    # a lake run shows its own progress bar over partitions
    with nullcontext() if on_lake else err.status("training: snapshots, features, split, LightGBM, calibration, "
                                                   "baselines"):
        try:
            result = _lake_train(settings, lake, engine, scheduler, config) if on_lake else \
                run(frames, load_taxonomy(settings.taxonomy), config)
        except TrainingStopped as exc:
            err.print(f"[red]stopped:[/red] {exc}")
            raise typer.Exit(2) from exc
    console.print(result.split.description)
    console.print(result.drift_line)
    r = result.robust
    console.print(f"fitted with recency half-life {'none' if r.half_life_days is None else f'{r.half_life_days:g} days'}"
                  f" and LightGBM weight {r.weight:g} in the blend with the logistic regression (chosen on the fit half)")
    console.print(_metrics_table(result))
    for title, frame in (("per origin channel", result.per_channel), ("per segment", result.per_segment)):
        if frame.empty:
            continue
        table = Table(title=f"model {title} (held-out snapshots)")
        for col in ("group", "n", "base rate", "ROC AUC", "PR AUC", "lift top 10%"):
            table.add_column(col, justify="left" if col == "group" else "right")
        for r in frame.head(10).itertuples():
            table.add_row(str(r.group), f"{r.n:,}", f"{r.base_rate:.2%}", "n/a" if r.roc_auc != r.roc_auc
                          else f"{r.roc_auc:.3f}", "n/a" if r.pr_auc != r.pr_auc else f"{r.pr_auc:.3f}",
                          f"{r.lift_top_decile:.2f}x")
        console.print(table)
    t = result.thresholds
    console.print(f"tiers: prospect-ready at p >= {t.ready:.4f} (top {t.ready_share:.0%}), "
                  f"warming at p >= {t.warming:.4f} (next {t.warming_share:.0%}); calibration: "
                  f"{result.calibrator.method}; {result.booster.best_iteration} trees")
    console.print(f"tiers set by {t.policy}")
    if result.leaky_allowed:
        console.print("[yellow]allowed despite the leakage guard:[/yellow] " + "; ".join(
            f"{k} ({v})" for k, v in result.leaky_allowed.items()))
    top = result.importance.head(8)
    console.print("strongest features: " + ", ".join(top["feature"]))
    for note in result.dominance:
        console.print(f"[yellow]dominant feature:[/yellow] {note}")
    from training.register import register
    from runtime.registry import MODEL_NAME

    with err.status("logging the run to MLflow"):
        done = register(result, config, settings)
    console.print(f"MLflow run {done.run_id} ({settings.resolved_tracking_uri}); registered {MODEL_NAME} version "
                  f"{done.version} as challenger. `prospect promote` makes it the champion if it is better.")


@app.command()
def promote(
    force: Annotated[bool, typer.Option(help="Promote even if the challenger is not better.")] = False,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Make the challenger the champion if it beats it on the latest out-of-time window; export the bundle."""
    from contract.taxonomy import load_taxonomy
    from features.dataset import load_frames
    from store.event_store import EventStore
    from training.promotion import PromotionError
    from training.promotion import promote as run
    from runtime.registry import use_tracking

    settings = _settings(home, store)
    use_tracking(settings.resolved_tracking_uri, settings.artifact_root)
    frames = load_frames(EventStore(settings.resolved_store_url))
    try:
        with err.status("scoring challenger and champion on the latest window"):
            c = run(frames, load_taxonomy(settings.taxonomy), settings.models_dir, settings.registry_cache, force,
                    settings.promotion_margin)
    except PromotionError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"comparison window: {c.window}")
    champion = "no champion yet" if c.champion is None else f"champion v{c.champion} ROC AUC {c.champion_auc:.4f}"
    console.print(f"challenger v{c.challenger} ROC AUC {c.challenger_auc:.4f} vs {champion} on {c.n:,} snapshots")
    if c.difference is not None:
        console.print(f"AUC(challenger) - AUC(champion), paired bootstrap by lead: {c.difference.describe()}")
        console.print(f"rule: {c.rule}")
    if c.promoted:
        console.print(f"promoted v{c.challenger} to champion; bundle exported to {settings.models_dir / 'champion'}")
    else:
        console.print(f"kept v{c.champion}: the challenger may be worse than the champion by more than the margin "
                      "(use --force to promote anyway)")


@app.command()
def rollback(home: HomeOpt = None) -> None:
    """Return the champion alias to the previous champion and export its bundle."""
    from training.promotion import PromotionError
    from training.promotion import rollback as run
    from runtime.registry import use_tracking

    settings = _settings(home)
    use_tracking(settings.resolved_tracking_uri, settings.artifact_root)
    try:
        current, previous = run(settings.models_dir, settings.registry_cache)
    except PromotionError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"champion is v{previous} again (was v{current}); bundle exported to {settings.models_dir / 'champion'}")


@app.command()
def score(
    lead_ids: Annotated[list[str], typer.Argument(help="Lead ids to score (or use --file).")] = [],  # noqa: B006
    file: Annotated[Path | None, typer.Option(help="CSV with a lead_id column: score every lead in it.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the scores as CSV here instead of printing them.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Score as of this time (ISO 8601 with zone); default now.")] = None,
    lake: Annotated[Path | None, typer.Option("--lake", help="Bulk scoring: score every lead of this lake into "
                                                            "--out, one Parquet file per partition.")] = None,
    engine: EngineOpt = EngineName.local,
    scheduler: SchedulerOpt = None,
    reasons: Annotated[bool, typer.Option(help="Bulk scoring: add the reasons (about 100x the cost of a "
                                               "score).")] = False,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Score leads of the store with the champion: probability, 0-100 score, tier and reasons (or a whole lake)."""
    import pandas as pd

    from serving.score_recorder import ScoreRecorder
    from serving.scoring import load_scorer
    from store.event_store import EventStore

    settings = _settings(home, store)
    if lake is not None or engine == "dask":
        _bulk_score(settings, lake, engine, scheduler, as_of, out, reasons)
        return
    try:
        scorer = load_scorer(settings)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] no champion model: {exc}. Run `prospect train` and `prospect promote`.")
        raise typer.Exit(2) from exc
    moment = _as_of(as_of)
    ids = list(lead_ids)
    if file is not None:
        try:
            ids += pd.read_csv(file, dtype=str)["lead_id"].dropna().tolist()
        except (OSError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            err.print(f"[red]error:[/red] {file}: needs a readable CSV with a lead_id column ({exc})")
            raise typer.Exit(2) from exc
    if not ids:
        err.print("[red]error:[/red] give lead ids or --file")
        raise typer.Exit(2)
    event_store = EventStore(settings.resolved_store_url)
    scored, unknown, later = [], [], []
    for lo in range(0, len(ids), 1000):
        part = scorer.score_stored_leads(event_store, ids[lo:lo + 1000], moment)
        scored += part.scored
        unknown += part.unknown
        later += part.created_after_as_of
    recorder = ScoreRecorder(settings, event_store, scorer.criteria)
    score_ids = recorder.record(scored, "cli", "cli")
    recorder.close()
    if unknown:
        err.print(f"[yellow]not in the store, skipped:[/yellow] {len(unknown)} lead id(s), e.g. {unknown[0]}")
    if later:
        err.print(f"[yellow]created after --as-of, skipped:[/yellow] {len(later)} lead id(s), e.g. {later[0]}")
    if out is not None:
        from serving.score_table import score_rows

        score_rows(scored, score_ids).to_csv(out, index=False)
        console.print(f"wrote {len(scored):,} scores to {out}")
        return
    for s, score_id in zip(scored, score_ids, strict=True):
        chance = f"{s.probability:.1%}" if s.probability >= 0.001 else "<0.1%"  # "0.0%" reads as impossible
        console.print(f"[bold]{s.lead_id}[/bold]: {chance} (score {s.score}, {s.tier}, {s.trend}; "
                      f"model v{s.model_version}; score id {score_id})")
        for r in s.reasons_for:
            console.print(f"  + {r.text}")
        for r in s.reasons_against:
            console.print(f"  - {r.text}")
        for c in s.criteria:
            console.print(f"  {c.label}: {c.status.replace('_', ' ')} ({c.evidence})")
    if (unknown or later) and not scored:
        raise typer.Exit(1)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    insecure_dev: Annotated[bool, typer.Option("--insecure-dev", help="Run without PROSPECT_API_KEY (local demos "
                                                                        "only: every endpoint is open).")] = False,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Start the HTTP scoring service (BentoML) with the champion model."""
    import os
    import subprocess

    from serving.launch import serve_command, serve_env

    settings = _settings(home, store)
    env = {**os.environ, "PROSPECT_HOME": str(settings.home), "PROSPECT_STORE_URL": settings.resolved_store_url,
           "PROSPECT_MODELS_DIR": str(settings.models_dir.resolve())}
    if insecure_dev:
        env["PROSPECT_INSECURE_DEV"] = "1"
    elif not env.get("PROSPECT_API_KEY"):
        err.print("[red]error:[/red] set PROSPECT_API_KEY (clients send 'Authorization: Bearer <key>'), "
                  "or pass --insecure-dev for a local demo")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call(serve_command(host, port), env=serve_env(env, settings.service_runtime_dir)))


@app.command()
def report(
    out: ReportPageOpt = None, home: HomeOpt = None, store: StoreOpt = None,
) -> None:
    """Write the marketing report for the champion (one HTML page) and log it to the champion's MLflow run."""
    from contract.taxonomy import load_taxonomy
    from features.dataset import load_frames
    from report.numbers import compute
    from report.page import write
    from store.event_store import EventStore
    from training.promotion import log_report
    from runtime.registry import use_tracking

    settings = _settings(home, store)
    bundle, frames = _champion(settings), load_frames(EventStore(settings.resolved_store_url))
    with err.status("measuring the champion on the latest held-out leads"):
        figures = compute(bundle, frames, load_taxonomy(settings.taxonomy))
    path = write(figures, out or settings.report_page)
    use_tracking(settings.resolved_tracking_uri, settings.artifact_root)
    run_id = log_report(bundle.metadata.get("version"), path)
    logged = f"; logged to MLflow run {run_id}" if run_id else " (the champion is not in this MLflow registry)"
    console.print(f"report written to {path.resolve()}{logged}")


@app.command()
def demo(
    leads: Annotated[int, typer.Option(help="Number of leads to simulate.", min=1)] = 20_000,
    home: HomeOpt = None,
) -> None:
    """Run the whole loop on generated data: generate, ingest, features, train, evaluate, promote and report."""
    # each command's own defaults: the demo is what a user gets by running them one after the other
    generate(leads=leads, home=home)
    ingest(home=home)
    features(home=home)
    train(home=home)
    promote(home=home)
    report(home=home)


@app.command()
def replay(
    score_id: Annotated[str, typer.Argument(help="A score id from the score log (responses and `prospect score` "
                                                  "show it).")],
    lake: Annotated[Path | None, typer.Option("--lake", help="The lake whose bulk runs logged the score (default: "
                                                            "$PROSPECT_LAKE or <home>/lake).")] = None,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Recompute a served score with its model version and rules, and show it equals what was served."""
    from serving.replay import Replayer
    from store.event_store import EventStore
    from store.score_log import ScoreLog

    settings = _settings(home, store)
    event_store = EventStore(settings.resolved_store_url)
    root = lake or settings.resolved_lake
    r = Replayer(ScoreLog(event_store), event_store, settings, root if root.exists() else None).replay(score_id)
    if r.served is None or r.recomputed is None:
        err.print(f"[red]cannot replay {score_id}:[/red] {r.reason}")
        raise typer.Exit(1)
    e, s = r.served, r.recomputed
    served_at = _utc_time(e["served_at"])
    console.print(f"score {score_id}: served {served_at} to {e['caller']} ({e['endpoint']}), as of "
                  f"{_utc_time(e['as_of'])}, model v{e['model_version']}, features {e['feature_set_version']}, "
                  f"rules {e['rules_version']}")
    table = Table(title="served and recomputed")
    for col in ("", "probability", "score", "tier", "reasons", "criteria"):
        table.add_column(col)
    table.add_row("served", repr(e["probability"]), str(e["score"]), e["tier"],
                  "; ".join(r[1] for r in e["reasons"]["for"] + e["reasons"]["against"]),
                  ", ".join(f"{c[0]} {c[1]}" for c in e["criteria"]))
    table.add_row("recomputed", repr(s.probability), str(s.score), s.tier,
                  "; ".join(x.text for x in s.reasons_for + s.reasons_against),
                  ", ".join(f"{c.name} {c.status}" for c in s.criteria))
    console.print(table)
    if r.equal:
        console.print("equal: the same probability to the bit, the same score, tier, reasons and criteria")
        return
    err.print("[red]not equal:[/red] " + "; ".join(r.differences))
    raise typer.Exit(1)


@app.command()
def monitor(
    since: Annotated[str | None, typer.Option(help="Start of the live period (YYYY-MM-DD); default: the day after "
                                                   "the champion's training window.")] = None,
    days: Annotated[float, typer.Option(help="Length of the live period, and of the end of the training window it "
                                             "is compared with.", min=7)] = 90.0,
    out: HealthPageOpt = None, home: HomeOpt = None, store: StoreOpt = None,
) -> None:
    """Model health: feature and score drift, and the served scores against sales' feedback; exit 1 on an alarm."""
    import json

    import pandas as pd

    from features.dataset import load_frames
    from report.health import write
    from store.event_store import EventStore
    from store.score_log import ScoreLog
    from training.monitor import HealthLimits, check_health

    settings = _settings(home, store)
    bundle = _champion(settings)
    try:
        start = pd.Timestamp(since, tz="UTC") if since else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] --since {since!r}: {exc}")
        raise typer.Exit(2) from exc
    event_store = EventStore(settings.resolved_store_url)
    limits = HealthLimits(settings.monitor_feature_psi, settings.monitor_score_psi, settings.monitor_auc_drop)
    try:
        with err.status("comparing the live period with the training window"):
            h = check_health(bundle, load_frames(event_store), ScoreLog(event_store).frame(), start, days, limits)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"model v{h.version}: training window {' to '.join(h.training_window)}, live period "
                  f"{' to '.join(h.live_window)} ({h.n_live:,} live snapshots against {h.n_reference:,})")
    table = Table(title="features that moved most (population stability index)")
    for col in ("feature", "PSI"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for r in h.drift.head(10).itertuples():
        table.add_row(r.description, f"{r.psi:.3f}")
    console.print(table)
    console.print(f"scores: PSI {h.score_psi:.3f} ({h.score_source}); tier shares training/live: " + ", ".join(
        f"{r.tier} {r._2:.1%}/{r._3:.1%}" for r in h.tiers.itertuples()))
    m = h.metrics
    auc = f"{m['roc_auc']:.3f}" if "roc_auc" in m else "n/a"
    console.print(f"feedback on {m['n']:,} served scores ({m['prospects']:,} prospects): ROC AUC {auc} (validation "
                  f"{m['validation_roc_auc']:.3f}), median delay {m['delay_days']:.1f} days")
    for r in h.feedback.itertuples():
        console.print(f"  {r.tier}: {r.scores:,} scores, prospect {r.prospect:.1%}, not prospect {r._4:.1%}, "
                      f"unanswered {r.unanswered:.1%} ({r._6})")
    page = write(h, out or settings.health_page, settings.monitor_feature_psi)
    figures = settings.health_figures
    figures.parent.mkdir(parents=True, exist_ok=True)
    figures.with_suffix(".tmp").write_text(json.dumps(h.headline()))
    figures.with_suffix(".tmp").replace(figures)  # the service's gauges never read half a file
    console.print(f"model health page written to {page.resolve()}")
    if h.alarms:
        for a in h.alarms:
            err.print(f"[red]alarm:[/red] {a}")
        raise typer.Exit(1)
    console.print("no limit crossed")


@app.command()
def retrain(
    capacity: CapacityOpt = None,
    force: Annotated[bool, typer.Option(help="Retrain even if no feedback arrived since the last retrain.")] = False,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Train on all feedback so far, promote if better, export and report; does nothing when nothing new arrived."""
    from contract.taxonomy import load_taxonomy
    from prospect.retrain import RetrainBusy
    from prospect.retrain import retrain as run
    from training.guards import TrainingStopped
    from training.promotion import PromotionError
    from training.train import TrainConfig

    settings = _settings(home, store)
    config = TrainConfig(capacity_per_week=_per_week(capacity))
    try:
        with err.status("retraining: train, compare with the champion, export, report"):
            out = run(settings, load_taxonomy(settings.taxonomy), config, force=force)
    except RetrainBusy as exc:
        err.print(f"[yellow]{exc}[/yellow]")
        raise typer.Exit(1) from exc
    except (TrainingStopped, PromotionError) as exc:
        err.print(f"[red]stopped:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not out.trained:
        console.print(f"nothing new since the last retrain ({out.mark.describe()}): nothing done")
        return
    since = f"{out.previous.describe()} before" if out.previous else "first retrain"
    console.print(f"trained on {out.mark.describe()} ({since}); registered version {out.version} as challenger")
    console.print(_metrics_table(out.result))
    c = out.comparison
    champion = "no champion yet" if c.champion is None else f"champion v{c.champion} ROC AUC {c.champion_auc:.4f}"
    console.print(f"challenger v{c.challenger} ROC AUC {c.challenger_auc:.4f} vs {champion} on {c.n:,} snapshots: "
                  + (f"promoted v{c.challenger}; bundle exported to {settings.models_dir / 'champion'}" if c.promoted
                     else f"kept v{c.champion}"))
    console.print(f"report written to {out.report.resolve()}")


def _utc_time(micros: int) -> str:
    """Microseconds since the epoch as a readable UTC time."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(micros / 1e6, UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the lake and the Dask engine
lake_app = typer.Typer(help="The Parquet event lake: the store's tables partitioned by lead, for data past one "
                            "machine.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")


@lake_app.command("export")
def lake_export(
    lake: Annotated[Path | None, typer.Option("--lake", help="Lake folder (default: $PROSPECT_LAKE or "
                                                            "<home>/lake).")] = None,
    buckets: Annotated[int | None, typer.Option(help="Partitions of a new lake (default: $PROSPECT_LAKE_BUCKETS "
                                                     "or 64); an existing lake keeps its own.", min=1)] = None,
    home: HomeOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write the store's leads, events and feedback to the lake; a second export adds only what is new."""
    from lake.export import export_store
    from lake.layout import LakeError
    from store.event_store import EventStore

    settings = _settings(home, store)
    root = lake or settings.resolved_lake
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def advance(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"exporting {table}", total=None)
            progress.advance(tasks[table], n)

        try:
            summary = export_store(EventStore(settings.resolved_store_url), root, buckets or settings.lake_buckets,
                                   progress=advance)
        except LakeError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    added = ", ".join(f"{n:,} {t}" for t, n in summary.new_rows.items())
    if summary.total == 0:
        console.print(f"nothing new since the last export: {root} is up to date")
    elif summary.first:
        console.print(f"exported {added} to {root} (export run {summary.run})")
    else:
        console.print(f"added {added} to {root}: only rows stored since the last export (export run {summary.run})")


def _store_frames(settings: Settings):  # noqa: ANN202 - features.dataset.StoreFrames
    """The store's tables in memory, unless they are too big for one process: then say what to do instead."""
    from features.dataset import load_frames
    from store.event_store import EventStore

    event_store = EventStore(settings.resolved_store_url)
    events = event_store.counts().events
    if events > settings.max_store_events:
        err.print(f"[red]error:[/red] the store holds {events:,} events, more than one process loads at once "
                  f"(PROSPECT_MAX_STORE_EVENTS={settings.max_store_events:,}): run `prospect lake export`, then "
                  "this command with --lake (one partition at a time) or --engine dask")
        raise typer.Exit(2)
    return load_frames(event_store)


@contextmanager
def _engine(settings: Settings, engine: str, scheduler: str | None):  # noqa: ANN202 - yields an Engine
    """The engine asked for, with a progress bar over partitions; clear messages for an unusable cluster."""
    from engines.dask_cluster import SchedulerUnreachable, dask_engine
    from engines.local import LocalEngine

    with _progress() as progress:
        tasks: dict[str, int] = {}

        def advance(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(f"{engine}: {what}", total=total)
            progress.update(tasks[what], completed=done)

        if engine == "local":
            yield LocalEngine(advance)
            return
        try:
            cluster = dask_engine(scheduler or settings.dask_scheduler, timeout_s=settings.dask_timeout_s,
                                  progress=advance)
            running = cluster.__enter__()
        except SchedulerUnreachable as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        try:
            link = running.client.dashboard_link if running.client.cluster is None else None
            err.print(f"Dask: {running.workers} workers" + (f", dashboard {link}" if link else ""))
            yield running
        finally:
            cluster.__exit__(None, None, None)


def _lake_job(settings: Settings, lake: Path | None, snapshots, drop_after_contact: bool = False):  # noqa: ANN001, ANN202
    from contract.taxonomy import load_taxonomy
    from features.partitioned import LakeJob
    from lake.layout import LakeError

    try:
        return LakeJob.open(lake or settings.resolved_lake, load_taxonomy(settings.taxonomy), snapshots,
                            drop_after_contact)
    except LakeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _lake_features(settings: Settings, lake: Path | None, engine: str, scheduler: str | None, snapshots,  # noqa: ANN001
                   out: Path | None) -> None:
    import time

    from features.partitioned import write_lake_features

    job = _lake_job(settings, lake, snapshots)
    target = out or settings.features_dir
    started = time.perf_counter()
    with _engine(settings, engine, scheduler) as running:
        total, vectorizer = write_lake_features(job, running, target)
    fs = vectorizer.feature_set_
    share = total.positives / total.snapshots if total.snapshots else 0.0
    console.print(f"{total.snapshots:,} labelled snapshots of {total.leads:,} leads ({share:.1%} become prospects "
                  f"within {snapshots.horizon_days:g} days); {len(fs.names)} features (set {fs.version}) in "
                  f"{time.perf_counter() - started:.1f} s over {job.buckets} partitions ({engine}); written to "
                  f"{target}")
    _families_table(fs)


def _lake_train(settings: Settings, lake: Path | None, engine: str, scheduler: str | None, config):  # noqa: ANN001, ANN202
    from training.lake_train import train_lake

    job = _lake_job(settings, lake, config.snapshots, config.drop_after_contact)
    with _engine(settings, engine, scheduler) as running:
        if engine == "dask":
            from training.dask_model import dask_lightgbm

            return train_lake(job, running, config, dask_lightgbm(running.client))
        return train_lake(job, running, config)


def _bulk_score(settings: Settings, lake: Path | None, engine: str, scheduler: str | None, as_of: str | None,
                out: Path | None, reasons: bool) -> None:
    import time

    import pandas as pd

    from serving.bulk import bulk_score, new_run, prune_bulk_logs
    from runtime.versions import keep_bundle

    bundle_dir = settings.models_dir / "champion"
    if not (bundle_dir / "model.txt").exists():
        err.print(f"[red]error:[/red] no champion bundle in {bundle_dir}. Run `prospect train` and `prospect promote`.")
        raise typer.Exit(2)
    if out is None:
        err.print("[red]error:[/red] bulk scoring writes a folder of Parquet files: give --out FOLDER")
        raise typer.Exit(2)
    moment = _as_of(as_of)
    root = Path(_lake_job(settings, lake, None).root)
    # scored from the kept copy of its version: a promotion meanwhile cannot mix versions, and replay finds it
    bundle_dir = keep_bundle(bundle_dir, settings.bundles_dir) or bundle_dir
    log = None
    if settings.score_log:
        prune_bulk_logs(root, settings.score_log_retention_days)
        log = new_run(root, "cli")
    started = time.perf_counter()
    with _engine(settings, engine, scheduler) as running:
        count = bulk_score(root, bundle_dir, moment, out, running, reasons, log)
    elapsed = time.perf_counter() - started
    console.print(f"scored {count.scored:,} leads as of {moment:%Y-%m-%d %H:%M %Z} in {elapsed:.1f} s "
                  f"({count.scored / max(elapsed, 1e-9):,.0f} leads/s, {engine}); {count.created_after_as_of:,} created "
                  f"later were skipped; written to {out}" + (f", logged in {log.folder}" if log else ""))


if __name__ == "__main__":
    app()
