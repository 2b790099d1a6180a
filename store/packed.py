"""One lead's events packed into one value, so a batch reads a row per lead instead of ~50 event rows.

The packed record is derived data: the event rows stay the source of truth, and the record is
rewritten, in the same transaction, whenever a write touches its lead. Layout: the times as
little-endian int64 microseconds (``n`` of them), then the types and channels as one JSON array
``[[types...], [channels...]]`` (a channel may be null). Events are in time order; events at the
same instant keep the order they were stored in, as a read of the event rows ordered by time gives.
"""

from __future__ import annotations

import json
from itertools import chain

import numpy as np

TIME_DTYPE = np.dtype("<i8")


def pack(ts_us: np.ndarray, types: list, channels: list) -> bytes:
    """One lead's events (already in order) as the packed value."""
    text = json.dumps([types, channels], separators=(",", ":"), ensure_ascii=False)
    return np.ascontiguousarray(ts_us, dtype=TIME_DTYPE).tobytes() + text.encode("utf-8")


def unpack_many(counts: list[int], blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many packed values -> (times, types, channels) of all their events, one lead after another.

    One ``frombuffer`` and one ``json.loads`` for the whole batch: per-lead calls cost more than the
    decoding itself.
    """
    if not blobs:
        return np.empty(0, np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object)
    times = b"".join(blob[: 8 * n] for n, blob in zip(counts, blobs, strict=True))
    text = b"[" + b",".join(blob[8 * n:] for n, blob in zip(counts, blobs, strict=True)) + b"]"
    parts = json.loads(text)
    ts = np.frombuffer(times, dtype=TIME_DTYPE).astype(np.int64)
    types = np.array(list(chain.from_iterable(p[0] for p in parts)), dtype=object)
    channels = np.empty(ts.size, dtype=object)
    channels[:] = list(chain.from_iterable(p[1] for p in parts))
    return ts, types, channels


def merge_order(lead: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Order events by (lead, time), keeping the given order among equal ones (stored ones first, then
    new ones as written: the order the event rows were inserted in)."""
    return np.lexsort((np.arange(lead.size), ts_us, lead))
