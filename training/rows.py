"""Where a training run's feature rows live: in this process, or left on a Dask cluster's workers.

A training run needs the feature matrix in four ways only: LightGBM trains on a selection of rows;
per-row functions (tree scores, the logistic regression's scores, the rule score, a column) are
evaluated on a selection and only their vectors are kept; a few rows (a bounded, seeded sample)
are read whole; and rows are selected by boolean masks over the snapshots. :class:`Rows` is that
interface. :class:`LocalRows` holds the matrix (and its DataFrame view) here and computes exactly what
the single-process run always computed; ``training.dask_rows.DaskRows`` keeps one block per lake
partition on the workers, so the client holds per-snapshot vectors and bounded samples, never the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd


class Rows(Protocol):
    holds_all: bool
    """True when every row is already in this process (nothing to bound when reading rows)."""

    def __len__(self) -> int: ...

    def select(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` (over these rows) is True, in order, where they are."""

    def map(self, fn: Callable[..., Any], *columns: np.ndarray) -> list:
        """``fn(matrix, frame, *column pieces)`` per block, in row order; ``columns`` are per-row vectors."""

    def take(self, index: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        """Rows ``index`` (sorted positions in these rows) as a matrix and DataFrame here; the caller bounds it."""

    @property
    def native(self) -> Any:
        """What a ``fit_booster`` of this engine trains on: the numpy matrix here, the rows themselves on Dask."""


@dataclass(frozen=True)
class LocalRows:
    """The whole matrix in this process, with its DataFrame view (categoricals as categories)."""

    matrix: np.ndarray
    frame: pd.DataFrame
    holds_all = True

    def __len__(self) -> int:
        return len(self.matrix)

    def select(self, mask: np.ndarray) -> LocalRows:
        return LocalRows(self.matrix[mask], self.frame[mask])

    def map(self, fn: Callable[..., Any], *columns: np.ndarray) -> list:
        return [fn(self.matrix, self.frame, *columns)]

    def take(self, index: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        return self.matrix[index], self.frame.iloc[index]

    @property
    def native(self) -> np.ndarray:
        return self.matrix


def scores(rows: Rows, fn: Callable[..., np.ndarray], *columns: np.ndarray) -> np.ndarray:
    """One value per row: ``fn`` evaluated where the rows are, only the vector brought here."""
    parts = rows.map(fn, *columns)
    return np.concatenate(parts) if parts else np.zeros(0)


def column(rows: Rows, name: str) -> pd.Series:
    """One feature column of these rows (as the DataFrame view types it), brought here."""
    parts = rows.map(_Column(name))
    return pd.concat(parts, ignore_index=True) if parts else pd.Series(dtype=object)


@dataclass(frozen=True)
class _Column:
    """A picklable ``Rows.map`` function reading one column of the DataFrame view."""

    name: str

    def __call__(self, matrix: np.ndarray, frame: pd.DataFrame) -> pd.Series:  # noqa: ARG002
        return frame[self.name].reset_index(drop=True)


def bounded(index: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """``index`` itself, or a seeded sorted sample of ``limit`` of its positions when it holds more."""
    if limit is None or index.size <= limit:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, limit, replace=False))
