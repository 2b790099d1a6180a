"""One lead's events packed into one value, so a batch reads a row per lead instead of ~50 event rows.

The packed record is derived data: the event rows stay the source of truth, and the record is
rewritten, in the same transaction, whenever a write touches its lead. Layout, for ``n`` events:
the times as little-endian int64 UTC microseconds, then each event's type and channel as int32
positions in the lead's own lists of distinct names, then those lists as one JSON array
``[[types...], [channels...]]`` (a channel may be null). Codes rather than names: a batch decodes
a few names per lead instead of two strings per event. Events are in time order; events at the same
instant keep the order they were stored in, as a read of the event rows ordered by time gives.
"""

from __future__ import annotations

import json
from itertools import chain

import numpy as np

TIME_DTYPE = np.dtype("<i8")
CODE_DTYPE = np.dtype("<i4")


def pack(ts_us: np.ndarray, types: list, channels: list) -> bytes:
    """One lead's events (already in order) as the packed value."""
    type_names: dict = {}
    channel_names: dict = {}
    type_code = np.array([type_names.setdefault(t, len(type_names)) for t in types], dtype=CODE_DTYPE)
    channel_code = np.array([channel_names.setdefault(c, len(channel_names)) for c in channels], dtype=CODE_DTYPE)
    text = json.dumps([list(type_names), list(channel_names)], separators=(",", ":"), ensure_ascii=False)
    return (np.ascontiguousarray(ts_us, dtype=TIME_DTYPE).tobytes() + type_code.tobytes() + channel_code.tobytes()
            + text.encode("utf-8"))


def unpack_many(counts: list[int], blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many packed values -> (times, types, channels) of all their events, one lead after another.

    One ``frombuffer`` per array and one ``json.loads`` for the whole batch: per-lead calls cost more
    than the decoding itself.
    """
    if not blobs:
        return np.empty(0, np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object)
    pairs = list(zip(counts, blobs, strict=True))
    ts = np.frombuffer(b"".join(b[: 8 * n] for n, b in pairs), dtype=TIME_DTYPE).astype(np.int64)
    type_code = np.frombuffer(b"".join(b[8 * n: 12 * n] for n, b in pairs), dtype=CODE_DTYPE).astype(np.int64)
    channel_code = np.frombuffer(b"".join(b[12 * n: 16 * n] for n, b in pairs), dtype=CODE_DTYPE).astype(np.int64)
    names = json.loads(b"[" + b",".join(b[16 * n:] for n, b in pairs) + b"]")
    return ts, _names(type_code, [v[0] for v in names], counts), _names(channel_code, [v[1] for v in names], counts)


def _names(local: np.ndarray, per_lead: list[list], counts: list[int]) -> np.ndarray:
    """Per-lead codes -> the names as one object array (each lead's codes shifted into one list of all names)."""
    offsets = np.cumsum([0] + [len(v) for v in per_lead])[:-1]
    every = np.empty(int(offsets[-1]) + len(per_lead[-1]), dtype=object)
    every[:] = list(chain.from_iterable(per_lead))
    return every[local + np.repeat(offsets, counts)]


def merge_order(lead: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Order events by (lead, time), keeping the given order among equal ones (stored ones first, then
    new ones as written: the order the event rows were inserted in)."""
    return np.lexsort((np.arange(lead.size), ts_us, lead))
