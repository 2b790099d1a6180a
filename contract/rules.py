"""The checks every incoming record passes, a source-file row and an API record alike.

File ingest (``contract.mapping.map_chunk``, which quarantines) and the HTTP service
(``store.ingest.store_records``, which refuses the call) both call these functions, so a record
is accepted or refused for the same reason, with the same words, whichever way it arrives.
Each rule works on numpy arrays (one value per record): a file chunk holds 200,000 rows, an API
call 20, and neither should pay for the other's shape (no pandas objects on the way in).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from contract.tables import OUTCOMES
from contract.taxonomy import Taxonomy

BEFORE_CREATION = "dated before the lead was created"
"""Nothing can happen to a lead before it exists (a year-1 event would read as "first action 739,945 days ago")."""


def _text(value: object) -> str | None:
    if type(value) is str:  # the common case first: most values are already text
        return value.strip() or None
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return str(value).strip() or None


def clean_text(values: np.ndarray) -> np.ndarray:
    """Text as it is stored: surrounding blanks stripped, and empty text is a missing value (None)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [_text(v) for v in values]
    return out


def is_missing(values: np.ndarray) -> np.ndarray:
    """Missing or blank values: what a required column must not hold."""
    return np.fromiter((_text(v) is None for v in values), dtype=bool, count=len(values))


def required_reason(table: str, column: str) -> str:
    return f"required {table}.{column} is empty"


def now_micros(now: datetime) -> int:
    return int(pd.Timestamp(now).value) // 1000  # .value is in nanoseconds


def in_future(ts_us: np.ndarray, now: datetime) -> np.ndarray:
    """Times after ``now`` (the caller's clock plus the tolerated clock skew) have not happened yet."""
    return np.asarray(ts_us, dtype=np.int64) > now_micros(now)


def future_reasons(ts_us: np.ndarray, now: datetime) -> list[str]:
    from contract.mapping import display_text  # the display of times up to any year (Parquet can hold year 20000)

    shown = display_text(pd.Series(np.asarray(ts_us, dtype=np.int64).astype("datetime64[us]")).dt.tz_localize("UTC"))
    return [f"timestamp {s} is in the future (now {pd.Timestamp(now):%Y-%m-%d %H:%M} UTC)" for s in shown]


def unknown_types(types: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Event types the taxonomy does not define (a missing type is the required rule's business)."""
    known = taxonomy.types
    return np.fromiter((t is not None and t not in known for t in types), dtype=bool, count=len(types))


def unknown_type_reasons(types: np.ndarray) -> list[str]:
    return [f"unknown event type '{t}' (not in the taxonomy; add it to the taxonomy YAML or map it to a known type)"
            for t in types]


def default_channels(types: np.ndarray, channels: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """An event without a channel takes its type's channel from the taxonomy."""
    kinds = taxonomy.types
    out = np.empty(len(types), dtype=object)
    out[:] = [c if c is not None else (kinds[t].channel if t in kinds else None)
              for t, c in zip(types, channels, strict=True)]
    return out


def unknown_outcomes(outcomes: np.ndarray) -> np.ndarray:
    return np.fromiter((o is not None and o not in OUTCOMES for o in outcomes), dtype=bool, count=len(outcomes))


def unknown_outcome_reasons(outcomes: np.ndarray, column: str) -> list[str]:
    return [f"unknown outcome '{o}' (expected prospect or not_prospect; map source values under values.{column} "
            "in the mapping)" for o in outcomes]


def before_creation(ts_us: np.ndarray, created_us: np.ndarray, clock_skew_us: int) -> np.ndarray:
    """Records dated before their lead was created, beyond the tolerated clock skew."""
    return np.asarray(ts_us, dtype=np.int64) < np.asarray(created_us, dtype=np.int64) - clock_skew_us
