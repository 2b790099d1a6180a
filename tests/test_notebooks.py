"""Both notebooks run top to bottom (nbclient, a real kernel) on the demo's generated data."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, demo_env


def _run(name: str, monkeypatch, home) -> nbformat.NotebookNode:  # noqa: ANN001
    for key, value in demo_env(home).items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    book = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    return book


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
def test_exploration_notebook_runs_on_the_demo_data(demo_run, monkeypatch) -> None:  # noqa: ANN001
    home, _ = demo_run
    book = _run("exploration.ipynb", monkeypatch, home)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert "StoreCounts(leads=4000" in _text(code[0])
    outputs = "".join(_text(c) for c in code)
    assert "prospect rate" in outputs and "positive" in outputs
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) >= 2  # the plots were drawn


@pytest.mark.slow
def test_retraining_notebook_ingests_trains_compares_and_promotes(demo_run, monkeypatch) -> None:  # noqa: ANN001
    home, _ = demo_run
    book = _run("retraining.ipynb", monkeypatch, home)
    outputs = "\n".join(_text(c) for c in book.cells if c.cell_type == "code")
    assert "stored 40 new answers" in outputs
    assert "is the challenger" in outputs and "challenger v2" in outputs
    assert ("promoted" in outputs) or ("kept the champion" in outputs)
    assert "first run: trained on" in outputs and "second run: nothing new since the last retrain" in outputs
