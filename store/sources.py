"""Reading CSV and Parquet sources in chunks, with errors that name the file, row and column.

Chunks keep a 0-based index that continues across chunks, so a row number in a message or in the
quarantine file points at the same data row of the source (row 1 = the first row after the header).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from contract.mapping import SourceMapping


class SourceError(ValueError):
    """A source cannot be read as the mapping describes it; the message says where and why."""


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int, int, bytes]:
    """Return (1-based line, 1-based byte column, offending bytes) of the first line that fails to decode."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                return lineno, exc.start + 1, line[exc.start : exc.end]
    return 0, 0, b""


def _encoding_error(path: Path, encoding: str) -> SourceError:
    line, col, bad = _first_undecodable_line(path, encoding)
    return SourceError(
        f"{path}: row {max(line - 1, 1)} (line {line}, byte {col}) is not valid {encoding}: "
        f"bytes {bad!r}; set `encoding:` for this source in the mapping (for example latin-1 or cp1252)"
    )


def check_columns(path: Path, header: list[str], needed: list[str], delimiter: str) -> None:
    """Fail with a precise message when mapped columns are missing, guessing a wrong delimiter."""
    missing = [c for c in needed if c not in header]
    if not missing:
        return
    hint = ""
    if len(header) == 1:
        try:
            guessed = csv.Sniffer().sniff(header[0], delimiters=",;\t|").delimiter
        except csv.Error:
            guessed = None
        if guessed and guessed != delimiter:
            hint = f"; the header has a single column: the file seems to use {guessed!r} as delimiter, " \
                   f"the mapping says {delimiter!r} (set `delimiter:` in the mapping)"
    raise SourceError(
        f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(m) for m in missing)} (found: {', '.join(repr(h) for h in header[:12])}){hint}"
    )


def read_chunks(path: Path, source: SourceMapping, needed: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield raw chunks of a source; CSV values stay text so the mapping decides how to parse them."""
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    if source.file_format == "parquet":
        yield from _parquet_chunks(path, needed, chunk_rows)
    else:
        yield from _csv_chunks(path, source, needed, chunk_rows)


def _parquet_chunks(path: Path, needed: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
    check_columns(path, pf.schema_arrow.names, needed, delimiter=",")
    if pf.metadata.num_rows == 0:
        raise SourceError(f"{path}: the file has no data rows")
    offset = 0
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=needed):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        yield frame


def _csv_chunks(path: Path, source: SourceMapping, needed: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    options = dict(
        sep=source.delimiter,
        encoding=source.encoding,
        dtype=str,
        keep_default_na=False,
        na_values=["", *source.null_values],
    )
    try:
        header = list(pd.read_csv(path, nrows=0, **options).columns)
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, source.encoding) from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path}: the file is empty") from exc
    check_columns(path, header, needed, source.delimiter)
    rows = 0
    try:
        for chunk in pd.read_csv(path, chunksize=chunk_rows, **options):
            rows += len(chunk)
            yield chunk
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, source.encoding) from exc
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path}: cannot be parsed as CSV with delimiter {source.delimiter!r}: {exc}") from exc
    if rows == 0:
        raise SourceError(f"{path}: the file has a header but no data rows")
