"""Feature rows kept on a Dask cluster's workers: one block per lake partition, never gathered whole.

Features are computed per lake partition on the workers (``features.partitioned.bucket_features``);
only each partition's snapshots (lead id, as-of time, label: a few columns per snapshot) come back
to the client, which splits them by time. The feature blocks stay where they were computed: a
selection is a list of row positions per block, per-row functions run on the blocks and return
vectors, and LightGBM (``lightgbm.dask``) trains on a Dask array built from the selected rows of
each block. The client therefore holds per-snapshot vectors and the bounded samples that
``TrainConfig.client_rows`` allows, not the matrix.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
from dask import delayed
from distributed import Client, Future

from engines.dask_cluster import DaskEngine
from features.partitioned import LakeJob, bucket_features, fit_vectorizer
from features.vectorizer import FeatureVectorizer


def _same(value: Any) -> Any:  # noqa: ANN401
    return value


def _rows_of(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    return block[index]


def _on_block(fn: Callable[..., Any], block: np.ndarray, index: np.ndarray, vectorizer: FeatureVectorizer,
              *columns: np.ndarray) -> Any:  # noqa: ANN401 - whatever fn returns
    matrix = block[index]
    return fn(matrix, vectorizer.to_frame(matrix), *columns)


@dataclass(frozen=True)
class DaskRows:
    """A selection of the feature rows, block by block, on the workers.

    ``index[k]`` holds the selected row positions of block ``k`` (sorted); the rows' order is block
    after block, as the snapshots were concatenated on the client.
    """

    client: Client
    blocks: tuple[Future, ...]  # float32 feature matrix of each lake partition, on the workers
    index: tuple[np.ndarray, ...]
    vectorizer: FeatureVectorizer
    shared: Future  # the same vectoriser on every worker, a task's result (recomputed if lost)
    holds_all = False

    def __len__(self) -> int:
        return sum(len(i) for i in self.index)

    @property
    def width(self) -> int:
        return len(self.vectorizer.feature_set_.names)

    def _pieces(self, values: np.ndarray) -> list[np.ndarray]:
        """A per-row vector over these rows cut into one piece per block."""
        return np.split(values, np.cumsum([len(i) for i in self.index])[:-1])

    def select(self, mask: np.ndarray) -> DaskRows:
        mask = np.asarray(mask, dtype=bool)
        if len(mask) != len(self):
            raise ValueError(f"a mask of {len(mask):,} values cannot select among {len(self):,} rows")
        index = tuple(i[m] for i, m in zip(self.index, self._pieces(mask), strict=True))
        return DaskRows(self.client, self.blocks, index, self.vectorizer, self.shared)

    def _used(self) -> list[int]:
        return [k for k, i in enumerate(self.index) if len(i)]

    def map(self, fn: Callable[..., Any], *columns: np.ndarray) -> list:
        pieces = [self._pieces(np.asarray(c)) for c in columns]
        futures = [self.client.submit(_on_block, fn, self.blocks[k], self.index[k], self.shared,
                                      *(p[k] for p in pieces), pure=False) for k in self._used()]
        return self.client.gather(futures)

    def take(self, index: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        index = np.asarray(index)
        if index.size and (np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= len(self)):
            raise ValueError(f"take needs sorted, distinct row positions below {len(self):,}")
        chosen = np.zeros(len(self), dtype=bool)
        chosen[index] = True
        part = self.select(chosen)
        futures = [self.client.submit(_rows_of, part.blocks[k], part.index[k], pure=False) for k in part._used()]
        blocks = self.client.gather(futures)
        matrix = np.concatenate(blocks) if blocks else np.empty((0, self.width), dtype=np.float32)
        return matrix, self.vectorizer.to_frame(matrix)

    @property
    def native(self) -> DaskRows:
        return self

    def array(self) -> da.Array:
        """The selected rows as a Dask array of one chunk per (non-empty) block, computed on the workers."""
        return da.concatenate([da.from_delayed(delayed(_rows_of)(self.blocks[k], self.index[k]),
                                               (len(self.index[k]), self.width), np.float32) for k in self._used()])

    def chunked(self, values: np.ndarray) -> da.Array:
        """A per-row vector as a Dask array chunked like :meth:`array` (labels, weights)."""
        return da.from_array(np.asarray(values), chunks=(tuple(len(self.index[k]) for k in self._used()),))


def lake_rows(job: LakeJob, engine: DaskEngine) -> tuple[pd.DataFrame, DaskRows, FeatureVectorizer]:
    """The lake's labelled snapshots (here) and their feature rows (left on the workers), with the vectoriser."""
    client = engine.client
    vectorizer = fit_vectorizer(job, engine)
    parts = engine.submit(partial(bucket_features, job, vectorizer), list(range(job.buckets)), "features")
    snapshots = client.gather([client.submit(operator.itemgetter(0), p, pure=False) for p in parts])
    blocks = tuple(client.submit(operator.itemgetter(1), p, pure=False) for p in parts)
    del parts  # the blocks hold the matrices now; the snapshots' copies on the workers can go
    index = tuple(np.arange(len(s)) for s in snapshots)
    frame = pd.concat(snapshots, ignore_index=True)
    # a task's result, not scattered data: Dask can compute it again when the workers holding it die;
    # copied to every worker, as the broadcast scatter did, so that work on a block runs where it is
    shared = client.submit(_same, vectorizer, pure=False)
    client.replicate([shared])
    return frame, DaskRows(client, blocks, index, vectorizer, shared), vectorizer
