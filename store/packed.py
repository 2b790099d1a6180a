"""One lead's events packed into one value, so a batch reads a row per lead instead of ~50 event rows.

The packed record is derived data: the event rows stay the source of truth, and the record is
rewritten, in the same transaction, whenever a write touches its lead: new events that come at or
after the lead's last one are appended (``append``), a late one has the whole record packed again.
Layout, for ``n`` events:
the times as little-endian int64 UTC microseconds, then each event's type and channel as int32
positions in the lead's own lists of distinct names, then those lists as one JSON array
``[[types...], [channels...]]`` (a channel may be null). Codes rather than names: a batch decodes
a few names per lead instead of two strings per event. Events are in time order; events at the same
instant keep the order they were stored in, as a read of the event rows ordered by time gives.
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from itertools import chain

import numpy as np
import pandas as pd

SMALL_WRITE = 2_000
"""Up to this many events (the stored ones of the touched leads included), records are packed lead by lead."""
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


def last_time(blob: bytes, n: int) -> int:
    """The time of a packed record's last event (its latest: records are in time order)."""
    return int.from_bytes(blob[8 * (n - 1): 8 * n], "little", signed=True)


def append(blob: bytes, n: int, ts_us: list[int], types: list, channels: list) -> bytes:
    """A lead's packed record with more events added after its ``n`` stored ones, equal byte for byte to
    ``pack`` of all the events (when none of the new ones is earlier than ``last_time``, which the
    caller checks, and the new ones are in order).

    A live write brings a few events to leads holding many: repacking the whole record on each write
    cost most of an API call. Here the stored part is copied as bytes; only the new events are coded,
    against the lead's own name lists, which grow (and are re-encoded) only when a new name comes.
    """
    text = blob[16 * n:]
    type_index, channel_index = _name_index(text)
    try:
        type_code = [type_index[t] for t in types]
        channel_code = [channel_index[c] for c in channels]
    except KeyError:  # a name the lead has not had yet: it takes the next code, and the lists grow
        type_names, channel_names = dict(type_index), dict(channel_index)
        type_code = [type_names.setdefault(t, len(type_names)) for t in types]
        channel_code = [channel_names.setdefault(c, len(channel_names)) for c in channels]
        text = json.dumps([list(type_names), list(channel_names)], separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    k = len(ts_us)
    return b"".join((blob[:8 * n], struct.pack(f"<{k}q", *ts_us), blob[8 * n:12 * n], struct.pack(f"<{k}i", *type_code),
                     blob[12 * n:16 * n], struct.pack(f"<{k}i", *channel_code), text))


@lru_cache(maxsize=4096)
def _name_index(text: bytes) -> tuple[dict, dict]:
    """A record's name lists as {name: code} (read-only: shared between calls). Leads share few
    distinct lists, so a write's leads mostly find theirs here instead of parsing JSON each."""
    type_list, channel_list = json.loads(text)
    return {name: k for k, name in enumerate(type_list)}, {name: k for k, name in enumerate(channel_list)}


def pack_many(bounds: np.ndarray, ts_us: np.ndarray, types: np.ndarray, channels: np.ndarray) -> list[bytes]:
    """The packed values of many leads at once, equal byte for byte to ``pack`` of each.

    Events come grouped by lead, each lead's in order, lead ``k``'s at ``bounds[k]:bounds[k+1]``. The
    per-lead lists of distinct names are found with array operations over the whole write; only
    the final concatenation is per lead (a per-event Python loop made ingest a third slower).
    """
    n_leads = bounds.size - 1
    if bounds[-1] <= SMALL_WRITE:  # an API call's few events: the arrays' set-up costs more than the loop
        return [pack(ts_us[a:b], types[a:b].tolist(), channels[a:b].tolist())
                for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    lead = np.repeat(np.arange(n_leads), np.diff(bounds))
    type_code, type_names = _local_codes(lead, types, n_leads)
    channel_code, channel_names = _local_codes(lead, channels, n_leads)
    times = np.ascontiguousarray(ts_us, dtype=TIME_DTYPE).tobytes()
    type_bytes, channel_bytes = type_code.astype(CODE_DTYPE).tobytes(), channel_code.astype(CODE_DTYPE).tobytes()
    out, texts = [], {}  # leads share few distinct name lists: each is encoded once
    for k, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        key = (tuple(type_names[k]), tuple(channel_names[k]))
        text = texts.get(key)
        if text is None:
            text = texts[key] = json.dumps([type_names[k], channel_names[k]], separators=(",", ":"),
                                           ensure_ascii=False).encode("utf-8")
        out.append(b"".join((times[8 * a:8 * b], type_bytes[4 * a:4 * b], channel_bytes[4 * a:4 * b], text)))
    return out


def _local_codes(lead: np.ndarray, values: np.ndarray, n_leads: int) -> tuple[np.ndarray, list[list]]:
    """Each value's position in its lead's list of distinct values (in order of first appearance), and the lists."""
    if not lead.size:
        return np.empty(0, np.int64), [[] for _ in range(n_leads)]
    code, uniques = pd.factorize(values, use_na_sentinel=False)
    names = [None if v is None or v != v else v for v in uniques.tolist()]  # a missing channel is null
    key = lead.astype(np.int64) * (len(names) + 1) + code
    pairs, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first, kind="stable")  # leads stay contiguous: events are grouped by lead
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(by_appearance.size)
    pair_lead = pairs // (len(names) + 1)
    starts = np.searchsorted(pair_lead[by_appearance], np.arange(n_leads + 1), side="left")
    local = (rank - starts[pair_lead])[inverse.ravel()]
    value_names = [names[c] for c in (pairs[by_appearance] % (len(names) + 1)).tolist()]
    return local, [value_names[s:e] for s, e in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)]


CODED_FROM = 512
"""From this many events, a batch's types and channels are read as categoricals; below, as object
arrays of names: making a categorical's categories costs about 40 µs, more than a lead scored
alone spends on its names, and its consumers look a few hundred names up one by one anyway."""


def unpack_many(counts: list[int], blobs: list[bytes]
                ) -> tuple[np.ndarray, np.ndarray | pd.Categorical, np.ndarray | pd.Categorical]:
    """Many packed values -> (times, types, channels) of all their events, one lead after another.

    From :data:`CODED_FROM` events, types and channels come as categoricals (a missing channel is
    code -1, never a category) whose categories are in order of first appearance, as
    ``pd.factorize`` of the names gives them: the batch's names are coded here, from the leads'
    short lists, so that consumers need not hash 50,000 names again. Fewer events come as object
    arrays of names (None for a missing channel). One ``frombuffer`` per array and one
    ``json.loads`` for the whole batch: per-lead calls cost more than the decoding itself.
    """
    if not blobs:
        return np.empty(0, np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object)
    pairs = list(zip(counts, blobs, strict=True))
    ts = np.frombuffer(b"".join([b[: 8 * n] for n, b in pairs]), dtype=TIME_DTYPE).astype(np.int64, copy=False)
    type_code = np.frombuffer(b"".join([b[8 * n: 12 * n] for n, b in pairs]), dtype=CODE_DTYPE)
    channel_code = np.frombuffer(b"".join([b[12 * n: 16 * n] for n, b in pairs]), dtype=CODE_DTYPE)
    names = json.loads(b"[" + b",".join([b[16 * n:] for n, b in pairs]) + b"]")
    decode = _categorical if ts.size >= CODED_FROM else _names
    return ts, decode(type_code, [v[0] for v in names], counts), decode(channel_code, [v[1] for v in names], counts)


def _names(local: np.ndarray, per_lead: list[list], counts: list[int]) -> np.ndarray:
    """Per-lead codes -> the names as one object array (each lead's codes shifted into one list of all names)."""
    offsets = np.cumsum([0] + [len(v) for v in per_lead])[:-1]
    every = np.empty(int(offsets[-1]) + len(per_lead[-1]), dtype=object)
    every[:] = list(chain.from_iterable(per_lead))
    return every[local + np.repeat(offsets, counts)]


def _categorical(local: np.ndarray, per_lead: list[list], counts: list[int]) -> pd.Categorical:
    """Per-lead codes -> the names as one categorical: each lead's codes are shifted into the list of
    every lead's names, whose distinct ones are the categories.

    The categories come in order of first appearance in that list, leads in order: each lead's list
    is in order of first appearance among its events (``pack``), so that is their order of first
    appearance among the events. A dict codes the list (7,000 type names for 1,000 leads) faster than
    pandas once the list is made an array.
    """
    sizes = np.fromiter(map(len, per_lead), np.int64, len(per_lead))
    categories = [name for name in dict.fromkeys(chain.from_iterable(per_lead)) if name is not None]
    index: dict = {name: k for k, name in enumerate(categories)}
    index[None] = -1  # a missing channel: code -1, not a category
    code = np.fromiter(map(index.__getitem__, chain.from_iterable(per_lead)), np.int64, int(sizes.sum()))
    where = local + np.repeat(np.cumsum(sizes) - sizes, counts)
    return pd.Categorical.from_codes(code[where], dtype=pd.CategoricalDtype(pd.Index(categories, dtype=object)),
                                     validate=False)


def names_of(values: np.ndarray | pd.Categorical) -> np.ndarray:
    """Types or channels as :func:`unpack_many` gives them -> an object array of names, None where
    missing (what ``pack`` takes)."""
    if not isinstance(values, pd.Categorical):
        return values
    return np.append(np.asarray(values.categories, dtype=object), None)[values.codes]


def merge_order(lead: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Order events by (lead, time), keeping the given order among equal ones (stored ones first, then
    new ones as written: the order the event rows were inserted in)."""
    return np.lexsort((np.arange(lead.size), ts_us, lead))
