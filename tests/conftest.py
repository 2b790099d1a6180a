"""Shared fixtures: a fresh store per test, a fixed clock, and helpers that write tiny sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import uuid

import pytest
import yaml
from sqlalchemy import create_engine, text

from contract.mapping import Mapping
from contract.taxonomy import Taxonomy, load_taxonomy
from store.event_store import EventStore
from store.ingest import IngestSummary, ingest
from tests.postgres import server_binaries, temporary_cluster

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "real"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

CANONICAL = {
    "leads": {"columns": {"lead_id": "lead_id", "created_at": "created_at", "source": "source"},
              "attributes": {"industry": {"kind": "categorical"}, "employees": {"kind": "numeric"}}},
    "events": {"columns": {"event_id": "event_id", "lead_id": "lead_id", "ts": "ts", "type": "type"}},
    "feedback": {"columns": {"lead_id": "lead_id", "ts": "ts", "outcome": "outcome", "reason": "reason"}},
}

LEADS_CSV = """lead_id,created_at,source,industry,employees
L1,2025-01-01T09:00:00Z,paid_search,software,120
L2,2025-01-02T10:00:00Z,referral,finance,40
L3,2025-01-03T11:00:00Z,linkedin,,
"""


# --- running the suite on two pytest-xdist workers (pyproject's addopts: -n 2 --dist loadfile) -----------------
# Each module is one unit of work, so its module-scoped fixtures (a started service, a trained model, a Dask
# cluster) are built once, on one worker. (loadgroup with xdist_group marks would let modules share a unit, but
# xdist 3.8 renames node ids for it in a way pytest 9 ignores: the marks have no effect.) Modules are handed out
# heaviest first (--no-loadscope-reorder keeps this order), so the long ones overlap instead of one being left for
# the end; WEIGHTS are rough seconds, and a module missing from it (a new one) is scheduled after the weighed ones.
WEIGHTS = {  # seconds per module in one single-process run (2026-11, a busy 2-core machine: the ratios matter)
    "test_training": 860, "test_reliability": 550, "test_replay": 234, "test_retrain": 233,
    "test_service_score_log": 225, "test_scoring": 222, "test_notebooks": 206, "test_service": 172,
    "test_dask_engine": 167, "test_simulator": 155, "test_lake_cli": 108, "test_monitor": 75, "test_bulk_log": 36,
    "test_capacity": 35, "test_snapshots": 30, "test_features_properties": 27, "test_store": 24,
    "test_history_guard": 23, "test_report": 12, "test_replay_cli": 5,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:  # noqa: ARG001
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        first_seen.setdefault(item.path.stem, i)
    items.sort(key=lambda item: (-WEIGHTS.get(item.path.stem, 0), first_seen[item.path.stem]))


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a session-wide throwaway PostgreSQL cluster (Debian's postgresql package is on every machine)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql` package")
    with temporary_cluster(bin_dir) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EventStore:
    """An empty store; every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        s = EventStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield s
        s.close()
        return
    server = request.getfixturevalue("postgres_url")
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    s = EventStore(server.replace("/postgres?", f"/{name}?"))
    yield s
    s.close()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name}"))
    admin.dispose()


def mapping_for(files: dict[str, str], **source_options) -> Mapping:  # noqa: ANN003
    """A mapping with one source per table, canonical column names, and optional source options."""
    sources = [{"file": name, table: CANONICAL[table], **source_options.get(table, {})}
               for table, name in files.items()]
    return Mapping.model_validate({"name": "test", "sources": sources})


class Sources:
    """Writes small CSV files into a folder and ingests them with a fixed clock."""

    def __init__(self, folder: Path, store: EventStore, taxonomy: Taxonomy) -> None:
        self.folder, self.store, self.taxonomy = folder, store, taxonomy

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    def ingest(self, files: dict[str, str], chunk_rows: int = 1000, **source_options) -> IngestSummary:  # noqa: ANN003
        return ingest(mapping_for(files, **source_options), self.folder, self.store, self.taxonomy,
                      self.folder / "quarantine", chunk_rows=chunk_rows, now=NOW)


@pytest.fixture
def sources(tmp_path: Path, store: EventStore, taxonomy: Taxonomy) -> Sources:
    return Sources(tmp_path, store, taxonomy)


@pytest.fixture
def with_leads(sources: Sources) -> Sources:
    sources.write("leads.csv", LEADS_CSV)
    summary = sources.ingest({"leads": "leads.csv"})
    assert summary.batches[0].stored == 3
    return sources


def generated_store(folder: Path, n_leads: int, seed: int, taxonomy: Taxonomy, **scenario) -> EventStore:  # noqa: ANN003
    """A store filled with a freshly simulated funnel, through the demo mapping (as `prospect demo` does).

    ``scenario``: further FunnelConfig fields (e.g. ``drift_at``).
    """
    from contract.mapping import load_mapping
    from simulator.funnel import FunnelConfig, generate

    generate(FunnelConfig(n_leads=n_leads, seed=seed, **scenario), folder / "demo", taxonomy)
    store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
    mapping = load_mapping(REPO / "mappings" / "demo.yaml")
    if not scenario.get("history", True):  # a funnel without attribute history: no history file to read
        mapping = mapping.model_copy(update={"sources": [s for s in mapping.sources if s.table("history") is None]})
    summary = ingest(mapping, folder / "demo", store, taxonomy, folder / "q")
    assert summary.exit_code == 0, summary
    return store


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    """`prospect demo` on 4,000 generated leads in its own home: (home, printed output)."""
    from typer.testing import CliRunner

    from prospect.cli import app

    home = tmp_path_factory.mktemp("demo-run")
    result = CliRunner().invoke(app, ["demo", "--leads", "4000", "--home", str(home)], env=demo_env(home))
    assert result.exit_code == 0, result.output
    return home, result.output


def demo_env(home: Path) -> dict[str, str]:
    """The environment that points the CLI, notebooks and service at a demo home."""
    return {"PROSPECT_HOME": str(home), "PROSPECT_MODELS_DIR": str(home / "models"), "MLFLOW_TRACKING_URI": ""}
