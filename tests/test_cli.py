"""The `prospect` command line, run as a user would run it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from prospect.cli import app
from tests.conftest import REAL_DATA, REPO, write_yaml

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("generate", "ingest", "status", "demo"):
        assert command in result.output
    for command in ("generate", "ingest", "status", "demo"):
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "--home" in sub.output


def test_generate_then_ingest_then_ingest_again(tmp_path: Path) -> None:
    home = str(tmp_path)
    result = runner.invoke(app, ["generate", "--leads", "800", "--home", home])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "events.parquet").exists()
    first = runner.invoke(app, ["ingest", "--home", home])
    assert first.exit_code == 0, first.output
    assert "store now holds 800 leads" in first.output
    second = runner.invoke(app, ["ingest", "--home", home])
    assert second.exit_code == 0
    rows = [line.split("│") for line in second.output.splitlines() if "│" in line]
    rows = [cells for cells in rows if cells[2].strip() in ("leads", "history", "events", "feedback")]
    assert len(rows) == 4 and all(cells[4].strip() == "0" for cells in rows), second.output
    assert "store now holds 800 leads" in second.output


def test_wrong_mapping_exits_2_and_nothing_usable_exits_1(tmp_path: Path) -> None:
    bad = write_yaml(tmp_path / "bad.yaml", {"name": "x", "sources": [{"file": "a.csv", "leads": {"colums": {}}}]})
    result = runner.invoke(app, ["ingest", str(bad), "--home", str(tmp_path)])
    assert result.exit_code == 2 and "invalid mapping" in result.output and "colums" in result.output
    empty = write_yaml(tmp_path / "m.yaml", {"name": "x", "sources": [
        {"file": "none.csv", "leads": {"columns": {"lead_id": "id", "created_at": "t"}}}]})
    (tmp_path / "none.csv").write_text("")
    result = runner.invoke(app, ["ingest", str(empty), "--home", str(tmp_path)])
    assert result.exit_code == 1 and "none.csv: the file is empty" in result.output


def test_real_mapping_from_the_command_line(tmp_path: Path) -> None:
    if not REAL_DATA.is_dir():
        import pytest

        pytest.skip(f"real data sets live in {REAL_DATA} (absent here)")
    result = runner.invoke(app, ["ingest", str(REPO / "mappings" / "olist.yaml"), "--data-dir", str(REAL_DATA),
                                 "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "store now holds 8,000 leads, 8,000 events, 841 feedback rows" in result.output
