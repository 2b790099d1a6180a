"""The one vectoriser: (lead, as-of) snapshots -> feature columns, for training, batch scoring and serving.

Training passes many as-of times per lead, serving a few leads (often one) and "now"; both run the
same family functions on the same arrays. ``transform`` takes DataFrames; ``transform_leads`` takes
lead records and their events as arrays straight from the store or a caller, skipping DataFrame work
that would dominate a small call. One lead is a batch of one: there is no single-lead variant to
keep in step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from contract.lead_record import LeadRecord
from contract.taxonomy import Taxonomy, load_taxonomy
from contract.timeunits import to_micros
from features.encode import encode_ids, factorize
from features.event_order import MAX_LEADS, EventArrays, sort_order
from features.history import HistoryCodes, apply_as_of, encode_history
from features.registry import AttributeInfo, FeatureSet, Vocabulary, behaviour_specs, profile_specs
from features.scan import scan
LEAD_COLUMNS = ("lead_id", "created_at", "source")
PARALLEL_MIN_SNAPSHOTS = 100_000
"""Below this many snapshots a second thread costs more than it saves."""
MATRIX_DTYPE = np.float32
"""Features are computed in float64 and stored once as float32: half the memory for millions of
snapshots, and LightGBM bins every value into a histogram anyway. Counts stay exact up to 16 million
and day counts keep sub-second precision."""


@dataclass(frozen=True)
class VocabularySummary:
    """What the vectoriser learns from part of the data: inbound events per channel, categories seen."""

    attributes: tuple[AttributeInfo, ...]
    channel_counts: dict[str, int]
    categories: dict[str, tuple[str, ...]]


@dataclass
class FeatureInput:
    """What features are computed from: snapshots to score, the leads, and their events."""

    snapshots: pd.DataFrame  # lead_id, as_of (tz-aware)
    leads: pd.DataFrame  # lead_id, created_at, source, attribute columns
    events: pd.DataFrame  # lead_id, ts (tz-aware), type, optional channel
    history: pd.DataFrame | None = None
    """Attribute history (lead_id, attribute, value, recorded_at tz-aware): values as of each snapshot."""


class UnknownEventType(ValueError):
    """An event's type is not in the taxonomy the features were built with (e.g. a model trained before it existed)."""


def infer_attributes(leads: pd.DataFrame) -> tuple[AttributeInfo, ...]:
    """Attribute specs from column types, for callers without the store's attribute table."""
    out = []
    for col in leads.columns:
        if col in LEAD_COLUMNS:
            continue
        kind = "numeric" if pd.api.types.is_numeric_dtype(leads[col]) else "categorical"
        out.append(AttributeInfo(name=col, kind=kind))
    return tuple(out)


class FeatureVectorizer(TransformerMixin, BaseEstimator):
    """Point-in-time behaviour and profile features for (lead, as-of) snapshots.

    ``fit`` learns the vocabulary (channels seen, categories of categorical attributes) and freezes
    it into ``feature_set_``; ``transform`` never learns, so training and serving columns agree.
    """

    def __init__(self, taxonomy: Taxonomy | None = None, attributes: tuple[AttributeInfo, ...] | None = None,
                 max_channels: int = 12, n_jobs: int = 2) -> None:
        self.taxonomy = taxonomy
        self.attributes = attributes
        self.max_channels = max_channels
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def fit(self, X: FeatureInput, y: object = None) -> FeatureVectorizer:  # noqa: ARG002 - sklearn signature
        return self.fit_summaries([self.summarize(X)])

    def summarize(self, X: FeatureInput) -> VocabularySummary:
        """What ``fit`` learns from one part of the data; parts are combined by :meth:`fit_summaries`.

        A lake is fitted partition by partition (or on many workers) this way, and learns exactly
        what a fit on all the data at once would.
        """
        attributes = tuple(self.attributes) if self.attributes is not None else infer_attributes(X.leads)
        inbound = list((self.taxonomy or load_taxonomy()).inbound_types)
        counts: dict[str, int] = {}
        if "channel" in X.events and len(X.events):
            seen = X.events.loc[X.events["type"].isin(inbound), "channel"].value_counts()
            counts = {str(c): int(n) for c, n in seen.items()}
        categories = {"origin": _categories(X.leads["source"] if "source" in X.leads else pd.Series(dtype=str))}
        history = X.history if X.history is not None else pd.DataFrame(columns=["attribute", "value"])
        for a in attributes:
            if a.kind == "categorical":
                recorded = history.loc[history["attribute"] == a.name, "value"]
                categories[f"attr_{a.name}"] = _categories(pd.concat([X.leads.get(a.name, pd.Series(dtype=str))
                                                                      .astype("string"), recorded.astype("string")]))
        return VocabularySummary(attributes, counts, categories)

    def fit_summaries(self, summaries: list[VocabularySummary]) -> FeatureVectorizer:
        """Freeze the vocabulary learned from the summaries of all parts of the data."""
        taxonomy = self.taxonomy or load_taxonomy()
        attributes = summaries[0].attributes
        channels = list(dict.fromkeys(taxonomy.types[n].channel for n in taxonomy.inbound_types))
        counts: dict[str, int] = {}
        for summary in summaries:
            for channel, n in summary.channel_counts.items():
                counts[channel] = counts.get(channel, 0) + n
        # most frequent first; equal counts by name, so the order never depends on how data was split
        channels += [c for c in sorted(counts, key=lambda c: (-counts[c], c)) if c not in channels]
        vocab = Vocabulary(stages=taxonomy.stages, channels=tuple(channels[: self.max_channels]))
        categories = {name: tuple(sorted(set().union(*(s.categories[name] for s in summaries))))
                      for name in summaries[0].categories}
        specs = tuple(behaviour_specs(vocab, taxonomy) + profile_specs(list(attributes)))
        self.taxonomy_ = taxonomy
        self.attributes_ = attributes
        self.feature_set_ = FeatureSet(vocab=vocab, specs=specs, categories=categories)
        self._build_lookups()
        return self

    @classmethod
    def from_feature_set(cls, feature_set: FeatureSet, taxonomy: Taxonomy, attributes: tuple[AttributeInfo, ...]
                         ) -> FeatureVectorizer:
        """A fitted vectoriser for a saved feature set (serving a trained model)."""
        vec = cls(taxonomy=taxonomy, attributes=attributes)
        vec.taxonomy_, vec.attributes_, vec.feature_set_ = taxonomy, attributes, feature_set
        vec._build_lookups()
        return vec

    def _build_lookups(self) -> None:
        tax = self.taxonomy_
        # by type code (position in the taxonomy), for coding a call's events without a pass over the taxonomy
        names = list(tax.types)
        self._type_code = {n: k for k, n in enumerate(names)}
        self._level_of_code = np.array([tax.stage_level(n) for n in names], dtype=np.int8)
        self._inbound_of_code = np.array([tax.types[n].direction == "inbound" for n in names], dtype=bool)
        default_channel = [tax.types[n].channel for n in names]
        self._default_names = list(dict.fromkeys(default_channel))
        self._default_of_code = np.array([self._default_names.index(c) for c in default_channel], dtype=np.int64)
        self._channel_code = {c: i for i, c in enumerate(self.feature_set_.vocab.channels)}
        self._category_code = {name: {v: i for i, v in enumerate(cats)}
                               for name, cats in self.feature_set_.categories.items()}
        # what serving's profile values mostly are: a category's text, or None
        self._known_texts = {name: {**position, None: -1} for name, position in self._category_code.items()}
        self._n_behaviour = sum(1 for s in self.feature_set_.specs if s.role == "behaviour")
        self._profile_columns = [(s.name, "source" if s.name == "origin" else s.name.removeprefix("attr_"))
                                 for s in self.feature_set_.specs[self._n_behaviour:]]
        self._history_column = {column: k for k, (name, column) in enumerate(self._profile_columns)
                                if name != "origin"}
        self._history_categories = {column: self._category_code[name] for name, column in self._profile_columns
                                    if name != "origin" and name in self._category_code}

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:  # noqa: ARG002
        return np.asarray(self.feature_set_.names, dtype=object)

    # ------------------------------------------------------------------ transforming
    def transform(self, X: FeatureInput) -> pd.DataFrame:
        """Feature columns for every snapshot, in the snapshots' order; categoricals as pandas categories."""
        return self.to_frame(self.transform_matrix(X))

    def to_frame(self, matrix: np.ndarray) -> pd.DataFrame:
        """A feature matrix (categoricals as codes) as a DataFrame with categorical dtypes."""
        specs = self.feature_set_.specs
        n_float = self._n_behaviour
        frame = pd.DataFrame(matrix[:, :n_float], columns=[s.name for s in specs[:n_float]], copy=False)
        extra = {}
        for col, spec in enumerate(specs[n_float:], start=n_float):
            values = matrix[:, col]
            if spec.dtype == "category":
                codes = np.where(np.isnan(values), -1, values).astype(np.int64)
                extra[spec.name] = pd.Categorical.from_codes(codes, self.feature_set_.categories[spec.name])
            else:
                extra[spec.name] = values
        return pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1) if extra else frame

    def transform_matrix(self, X: FeatureInput) -> np.ndarray:
        """Features as one float32 matrix in ``feature_set_.names`` order; categoricals as codes, NaN if missing.

        This is what LightGBM consumes: its categorical codes are the positions in the saved categories.
        """
        leads = X.leads.reset_index(drop=True)
        events = X.events
        history = X.history if X.history is not None and len(X.history) else None
        others = (X.snapshots["lead_id"], events["lead_id"]) + ((history["lead_id"],) if history is not None else ())
        unique, (snap_lead, ev_lead, *hist_lead) = encode_ids(leads["lead_id"], *others)
        if not unique:
            raise ValueError("leads.lead_id must be unique")
        if (snap_lead < 0).any():
            unknown = X.snapshots["lead_id"][snap_lead < 0].unique()[:5]
            raise ValueError(f"snapshots for unknown lead_id: {', '.join(map(str, unknown))}")
        as_of = to_micros(X.snapshots["as_of"], "snapshots.as_of")
        known = ev_lead >= 0
        if not known.all():
            events, ev_lead = events[known], ev_lead[known]
        ts = to_micros(events["ts"], "events.ts") if len(events) else np.zeros(0, np.int64)
        level, inbound, channel, any_channel = self._event_codes(events["type"], events.get("channel"))
        lead_values = self._lead_values(leads)
        created = to_micros(leads["created_at"], "leads.created_at")
        codes = None if history is None else self.history_codes(
            hist_lead[0], history["attribute"], history["value"], to_micros(history["recorded_at"], "history.recorded_at"))
        if len(leads) <= MAX_LEADS:
            return self._compute(snap_lead, as_of, ev_lead, ts, level, inbound, channel, any_channel, created,
                                 lead_values, codes)
        # more leads than the sort key holds: features are per lead, so compute lead ranges separately
        out = np.empty((len(snap_lead), len(self.feature_set_.specs)), dtype=MATRIX_DTYPE)
        for lo in range(0, len(leads), MAX_LEADS):
            hi = min(lo + MAX_LEADS, len(leads))
            s = np.flatnonzero((snap_lead >= lo) & (snap_lead < hi))
            e = (ev_lead >= lo) & (ev_lead < hi)
            part = None if codes is None else codes.select((codes.lead >= lo) & (codes.lead < hi), lo)
            out[s] = self._compute(snap_lead[s] - lo, as_of[s], ev_lead[e] - lo, ts[e], level[e], inbound[e],
                                   channel[e], any_channel[e], created[lo:hi],
                                   {k: v[lo:hi] for k, v in lead_values.items()}, part)
        return out

    def history_codes(self, lead: np.ndarray, attribute: pd.Series | np.ndarray, value: pd.Series | np.ndarray,
                      recorded_us: np.ndarray) -> HistoryCodes:
        """History rows (``lead`` = position of each row's lead) coded for this feature set's profile columns."""
        return encode_history(lead, attribute, value, recorded_us, self._history_column, self._history_categories)

    def transform_leads(self, leads: list[LeadRecord], event_lead: np.ndarray, ts_us: np.ndarray,
                        types: np.ndarray | pd.Categorical, channels: np.ndarray | pd.Categorical | None,
                        snapshot_lead: np.ndarray, as_of_us: np.ndarray, history: HistoryCodes | None = None
                        ) -> np.ndarray:
        """Features of leads from plain arrays: the serving path (one lead is a batch of one), without DataFrames.

        ``event_lead`` and ``snapshot_lead`` give, for each event and each requested row, the position
        of its lead in ``leads``; ``history`` comes from :meth:`history_codes` with the same positions.
        ``types`` and ``channels`` are object arrays of names, or pandas Categoricals of them (a missing
        channel is code -1, never a category): the same features, without hashing every event's names.
        """
        if len(leads) > MAX_LEADS:
            raise ValueError(f"at most {MAX_LEADS:,} leads a call")
        level, inbound, channel, any_channel = self._event_codes(types, channels)
        return self._compute(np.asarray(snapshot_lead, np.int64), np.asarray(as_of_us, np.int64),
                             np.asarray(event_lead, np.int64), np.asarray(ts_us, np.int64), level, inbound, channel,
                             any_channel, np.array([lead.created_at_us for lead in leads], np.int64),
                             self._record_values(leads), history)

    # ------------------------------------------------------------------ internals
    def _event_codes(self, types: pd.Series | np.ndarray | pd.Categorical, channels: pd.Series | np.ndarray |
                     pd.Categorical | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per event: stage level, inbound or not, feature channel code, and a code per distinct channel.

        ``types`` and ``channels`` are names, or pandas Categoricals of them (a missing channel is code
        -1): the categories are looked up once each and the events only indexed, instead of hashing
        every event's name again.
        """
        seen_codes, seen_types = _factorize_names(types) if len(types) else (np.zeros(0, np.int64), [])
        type_of_seen = np.array([self._type_code.get(t, -1) for t in seen_types] + [-1], dtype=np.int64)
        type_code = type_of_seen[seen_codes]  # a missing type (code -1) takes the appended -1
        if (type_code < 0).any():
            raise UnknownEventType(_unknown_types(seen_codes, seen_types, type_code < 0))
        any_channel, channel_names = _factorize_names(channels) if channels is not None and len(types) else (
            np.full(type_code.size, -1, np.int64), [])
        # a missing channel is the taxonomy's channel for the type
        missing = any_channel < 0
        any_channel[missing] = len(channel_names) + self._default_of_code[type_code[missing]]
        vocabulary = [*channel_names, *self._default_names]
        to_feature = np.array([self._channel_code.get(c, -1) for c in vocabulary], dtype=np.int16)
        # the same channel name may appear both in the data and as a default: give both one code
        first: dict[str, int] = {}
        canonical = np.array([first.setdefault(c, k) for k, c in enumerate(vocabulary)], dtype=np.int32)
        return (self._level_of_code[type_code], self._inbound_of_code[type_code], to_feature[any_channel],
                canonical[any_channel])

    def _record_values(self, leads: list[LeadRecord]) -> dict[str, np.ndarray]:
        """Profile values of lead records, coded as :meth:`_lead_values` codes a DataFrame.

        A lead's profile is its ``source`` and its attributes, the attributes winning on a clash
        (:attr:`LeadRecord.profile`); it is read from the attributes here, not built as a dict per
        lead, which cost more than coding the values. A categorical column's values are looked up
        through C-level ``map`` in a table of its categories' texts (and None); only the values
        that table does not hold -- unseen texts, NaN, numbers -- take :func:`_category_position`.
        """
        attributes = [lead.attributes for lead in leads]
        values: dict[str, np.ndarray] = {}
        for name, column in self._profile_columns:
            if column == "source":
                raw = [a["source"] if "source" in a else lead.source for lead, a in zip(leads, attributes, strict=True)]
            else:
                raw = [a.get(column) for a in attributes]
            if name not in self._category_code:
                values[name] = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
                continue
            position = self._category_code[name]  # keyed by text, as training read them (astype string)
            try:
                codes = np.fromiter(map(self._known_texts[name].get, raw, repeat(OTHER)), np.int64, len(raw))
            except TypeError:  # an unhashable value: every value takes the general rule
                codes = np.full(len(raw), OTHER, np.int64)
            for k in np.flatnonzero(codes == OTHER).tolist():
                codes[k] = _category_position(raw[k], position)
            values[name] = codes
        return values

    def _lead_values(self, leads: pd.DataFrame) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        for name, column in self._profile_columns:
            raw = leads[column] if column in leads else pd.Series(np.nan, index=leads.index)
            if name in self._category_code:
                codes, seen = factorize(raw.astype("string")) if len(raw) else (np.zeros(0, np.int64), [])
                position = self._category_code[name]
                values[name] = np.append(np.array([position.get(v, -1) for v in seen], dtype=np.int64), -1)[codes]
            else:
                values[name] = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        return values

    def _compute(self, snap_lead: np.ndarray, as_of: np.ndarray, ev_lead: np.ndarray, ts: np.ndarray,
                 level: np.ndarray, inbound: np.ndarray, channel: np.ndarray, any_channel: np.ndarray,
                 created: np.ndarray, lead_values: dict[str, np.ndarray], history: HistoryCodes | None = None
                 ) -> np.ndarray:
        n_leads = created.size
        vocab = self.feature_set_.vocab
        actions, touches = EventArrays.split(ev_lead, ts, level, channel, any_channel, inbound, n_leads)
        # the scan walks snapshots in (lead, time) order and writes each row back to its original place
        order = sort_order(snap_lead, as_of)
        profile = np.empty((n_leads, len(self._profile_columns)))
        for col, (name, _) in enumerate(self._profile_columns):
            v = lead_values[name]
            profile[:, col] = np.where(v < 0, np.nan, v) if name in self._category_code else v
        matrix = np.empty((snap_lead.size, len(self.feature_set_.specs)), dtype=MATRIX_DTYPE)
        n_any = int(any_channel.max()) + 1 if any_channel.size else 1
        lead_sorted, as_of_sorted = snap_lead[order], as_of[order]

        def run(lo: int, hi: int) -> None:
            scan(actions.ts, actions.level, actions.channel, actions.any_channel, actions.start, touches.ts,
                 touches.start, lead_sorted[lo:hi], as_of_sorted[lo:hi], order[lo:hi], created, profile,
                 len(vocab.stages), len(vocab.channels), vocab.deep_level, n_any, matrix)

        # leads are independent and the compiled scan releases the GIL: split at lead boundaries
        parts = _lead_aligned_parts(lead_sorted, self.n_jobs if lead_sorted.size >= PARALLEL_MIN_SNAPSHOTS else 1)
        if len(parts) == 1:
            run(*parts[0])
        else:
            with ThreadPoolExecutor(len(parts)) as pool:
                list(pool.map(lambda p: run(*p), parts))
        if history is not None and history.lead.size:
            apply_as_of(matrix, self._n_behaviour, history, n_leads, lead_sorted, as_of_sorted, order)
        return matrix


OTHER = -2
"""A profile value the table of known texts does not hold: decided by :func:`_category_position`."""


def _category_position(value: object, position: dict[str, int]) -> int:
    """A profile value's category position: by its text, as training read values; -1 when missing or unseen."""
    return -1 if value is None or value != value else position.get(str(value), -1)


SMALL_NAMES = 512
"""Up to this many names, a dict codes them faster than pandas' hash table."""


def _factorize_names(values: pd.Series | np.ndarray | pd.Categorical) -> tuple[np.ndarray, list]:
    """Codes (a new int64 array, -1 for missing) and the names they stand for.

    Categoricals (and Series of them) give their own codes and categories, in the categories'
    order: nothing is hashed. Anything else is coded as :func:`~features.encode.factorize` codes it
    (names in order of first appearance), faster for the store's object arrays of names: they repeat
    a few string objects, whose hashes Python keeps, so pandas' hash table codes them in half the
    time Arrow takes to copy them first, and a dict codes a lead's few hundred names faster than
    pandas sets its table up (50 names: about 12 µs against 25 µs). Anything else -- a value that
    is not a string, a missing one other than None or NaN -- goes through Arrow, so that the result
    never differs.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        names = values.categories.tolist()
        if all(type(v) is str for v in names):
            return values.codes.astype(np.int64), names
        values = np.asarray(values, dtype=object)  # categories that are not names: coded as their values are
    if isinstance(values, np.ndarray) and values.dtype == object and values.size <= SMALL_NAMES:
        listed = values.tolist()
        if all(type(v) is str or v is None for v in listed):
            seen: dict[str, int] = {}
            codes = [-1 if v is None else seen.setdefault(v, len(seen)) for v in listed]
            return np.array(codes, dtype=np.int64), list(seen)
    if isinstance(values, np.ndarray) and values.dtype == object:
        codes, uniques = pd.factorize(values)
        names = uniques.tolist()
        missing = codes < 0
        if all(type(v) is str for v in names) and (
                not missing.any() or {type(v) for v in values[missing].tolist()} <= {type(None), float}):
            return codes.astype(np.int64, copy=False), names
    return factorize(values)


def _unknown_types(codes: np.ndarray, names: list, unknown: np.ndarray) -> str:
    """The refusal of events whose type is missing or not in the taxonomy: the first five such names, in
    the order the events first show them."""
    named = codes[unknown & (codes >= 0)]
    first = np.sort(np.unique(named, return_index=True)[1])
    shown = [names[c] for c in named[first][:5].tolist()]
    return f"unknown event types (not in the taxonomy): {', '.join(map(str, shown or ['(empty)']))}"


def _lead_aligned_parts(lead_sorted: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Split sorted snapshots into about ``n`` ranges that never cut a lead in two."""
    bounds = [0]
    for k in range(1, max(n, 1)):
        cut = int(np.searchsorted(lead_sorted, lead_sorted[lead_sorted.size * k // n], side="left"))
        if cut > bounds[-1]:
            bounds.append(cut)
    bounds.append(lead_sorted.size)
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo] or [(0, 0)]


def _categories(values: pd.Series) -> tuple[str, ...]:
    return tuple(sorted(str(v) for v in pd.unique(values.dropna())))
