"""Time in the product: int64 UTC microseconds since the epoch, and the one place that converts to it.

The store keeps every timestamp as UTC microseconds, the compiled feature scan counts in them and
the API's times become them on arrival, so a moment means the same thing everywhere. Naive
timestamps are refused, never guessed: a CRM export in local time read as UTC would move every
event by hours and change recency and business-hours features without anyone noticing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

US_PER_MS = 1_000
US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
US_PER_WEEK = 7 * US_PER_DAY


def to_micros(values: pd.Series | pd.DatetimeIndex | list, what: str = "timestamps", check: bool = True
              ) -> np.ndarray:
    """Timezone-aware timestamps -> int64 UTC microseconds; naive ones and missing values are refused.

    ``check=False`` skips the scan for missing values and dates before 1970, for columns the data
    contract's rules have already checked on their way into the store.
    """
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        raise ValueError(f"{what} must be timezone-aware (UTC or with an offset)")
    out = index.as_unit("us").asi8  # a zone-aware index holds UTC integers whatever its zone: no conversion
    if check and out.size and out.min() < 0:  # NaT is the most negative integer
        raise ValueError(f"{what} has missing values or dates before 1970")
    return out


def timestamp_micros(moment: pd.Timestamp | datetime | str, what: str) -> int:
    """One timezone-aware moment -> int UTC microseconds (``Timestamp.value`` is nanoseconds whatever the unit)."""
    stamp = pd.Timestamp(moment)
    if stamp.tz is None:
        raise ValueError(f"{what} must be timezone-aware (UTC or with an offset)")
    return int(stamp.tz_convert("UTC").as_unit("us").asm8.astype(np.int64))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetimes_micros(values: np.ndarray) -> np.ndarray:
    """Aware Python datetimes (or pandas Timestamps; None as 0) -> int64 UTC microseconds, as ``to_micros``
    gives: the API's few validated records, where building a pandas index would cost more than the work."""
    return np.fromiter(((v - _EPOCH) // timedelta(microseconds=1) if v is not None else 0 for v in values),
                       dtype=np.int64, count=len(values))


def from_micros(values: np.ndarray | pd.Series | list) -> pd.DatetimeIndex:
    """int64 UTC microseconds -> zone-aware UTC timestamps."""
    return pd.to_datetime(np.asarray(values, dtype=np.int64), unit="us", utc=True)


def latest_acceptable(clock_skew: timedelta, now: datetime | None = None) -> pd.Timestamp:
    """The latest moment a source or a caller may name: now, plus the drift tolerated between clocks.

    Events, feedback and as-of times after it are refused as being in the future, in file ingest,
    in the API and in scoring alike.
    """
    return (pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")) + clock_skew
