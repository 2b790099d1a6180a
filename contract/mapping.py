"""Mapping files: how a CSV or Parquet source becomes canonical ``leads``, ``events`` and ``feedback``.

A user with a new CRM export writes one YAML file, not code. The file says which source column
feeds which canonical column, how timestamps are written, which values mean ``prospect``, and
which extra columns are profile attributes. ``map_chunk`` applies it to one chunk of raw rows and
reports every row it cannot use, with the column and the reason, instead of failing the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract import rules
from contract.errors import describe
from contract.tables import CRITERIA_FIELDS, TABLES, TableSpec
from contract.taxonomy import Taxonomy


class MappingError(ValueError):
    """The mapping itself is wrong (or does not fit its source); nothing from it can be stored."""


class TimestampFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field("ISO8601", description="strptime format, or ISO8601.")
    timezone: str = Field("UTC", description="Zone of values written without an offset.")
    unit: Literal["s", "ms", "us"] | None = Field(None, description="Values are epoch numbers in this unit.")


class AttributeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(None, description="Source column; defaults to the attribute name.")
    kind: Literal["categorical", "numeric"]
    role: Literal["profile", "criteria", "after_contact"] = Field(
        "profile",
        description="criteria: an explicit qualification field; after_contact: written by sales "
        "while or after talking to the lead, so a model scoring before contact must not use it.",
    )
    description: str = ""


class TableMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="canonical column -> source column")
    constants: dict[str, str] = Field(default_factory=dict, description="canonical column -> fixed value")
    timestamps: dict[str, TimestampFormat] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="canonical column -> {source value: canonical value}"
    )
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    keep: dict[str, list[str]] = Field(
        default_factory=dict,
        description="source column -> values: only rows whose value is listed in every such column are this "
        "table's; the others are skipped and counted (an export that mixes fields, like Salesforce LeadHistory).")

    def source_column(self, canonical: str) -> str | None:
        return self.columns.get(canonical)

    def attribute_column(self, name: str) -> str:
        spec = self.attributes[name]
        return spec.column or name


class SourceMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Path of the source, relative to the data folder given to ingest.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file suffix.")
    delimiter: str = ","
    encoding: str = "utf-8"
    null_values: list[str] = Field(default_factory=list, description="Values that mean 'empty'.")
    leads: TableMapping | None = None
    events: TableMapping | None = None
    feedback: TableMapping | None = None
    history: TableMapping | None = None
    """Attribute history: lead id, attribute, value, recorded-at (CRM property-history exports)."""

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        return "parquet" if self.file.lower().endswith((".parquet", ".pq")) else "csv"

    def table(self, name: str) -> TableMapping | None:
        return getattr(self, name)


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    sources: list[SourceMapping] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_tables(self) -> Mapping:
        for source in self.sources:
            mapped = [t for t in TABLES if source.table(t) is not None]
            if not mapped:
                raise ValueError(f"source {source.file!r} maps no table (leads, events, feedback or history)")
            for name in mapped:
                _check_table_mapping(source.file, TABLES[name], source.table(name))
        return self

    def attribute_kinds(self) -> dict[str, str]:
        """Every attribute the mapping declares, with its kind: what a history source may write."""
        return {name: attr.kind for source in self.sources if source.leads is not None
                for name, attr in source.leads.attributes.items()}


def _check_table_mapping(file: str, spec: TableSpec, tm: TableMapping) -> None:
    where = f"source {file!r}, table {spec.name}"
    for key in [*tm.columns, *tm.constants, *tm.timestamps, *tm.values]:
        if key not in spec.column_names:
            raise ValueError(f"{where}: unknown canonical column {key!r} (known: {', '.join(spec.column_names)})")
    for col in spec.required:
        if col not in tm.columns and col not in tm.constants:
            raise ValueError(f"{where}: required column {col!r} is neither mapped nor given a constant")
    for col in spec.timestamps:
        if col in tm.columns and col in tm.constants:
            raise ValueError(f"{where}: {col!r} is both mapped and constant")
    if tm.attributes and not spec.has_attributes:
        raise ValueError(f"{where}: attributes belong to the leads table")
    for name, attr in tm.attributes.items():
        if name in spec.column_names:
            raise ValueError(f"{where}: attribute {name!r} clashes with a canonical column")
        if attr.role == "criteria" and name not in CRITERIA_FIELDS:
            raise ValueError(f"{where}: criteria attributes are {', '.join(CRITERIA_FIELDS)}, not {name!r}")


def load_mapping(path: Path) -> Mapping:
    """Read and validate a mapping file; unknown keys are rejected so typos do not pass silently."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        raise MappingError(f"{path}: invalid mapping: {describe(exc)}") from exc


def required_source_columns(tm: TableMapping) -> list[str]:
    """Return the source columns a table mapping reads, in a stable order."""
    cols = list(tm.columns.values()) + [tm.attribute_column(a) for a in tm.attributes] + list(tm.keep)
    return list(dict.fromkeys(cols))


@dataclass
class MappedChunk:
    """Canonical rows that passed every check, and one issue row per problem found."""

    frame: pd.DataFrame
    """Canonical columns plus ``attr:<name>`` attribute columns, indexed by source row (0-based)."""
    issues: pd.DataFrame
    """Columns: row (0-based source row), column (source column name), reason."""


@dataclass(frozen=True)
class MapContext:
    taxonomy: Taxonomy
    now: datetime
    """Timestamps after this are refused as being in the future."""
    clock_skew: timedelta = timedelta(0)
    """Events and feedback dated more than this before their lead's creation are refused."""
    attributes: dict[str, str] = field(default_factory=dict)
    """Declared attributes and their kinds (categorical, numeric): what a history row may name."""


ISSUE_COLUMNS = ["row", "column", "reason"]


def _is_blank(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        return pd.Series(rules.is_missing(series.to_numpy(dtype=object)), index=series.index)
    return series.isna()


def display_text(values: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Values as text for messages and quarantine files, whatever they hold.

    pandas formats a typed timestamp through Python's datetime, which ends at year 9999; a Parquet
    source can hold later ones (a wrong unit, a corrupt value), and those must be reported, not crash.
    """
    if isinstance(values, pd.DataFrame):
        return pd.DataFrame({c: display_text(values[c]) for c in values.columns}, index=values.index)
    try:
        return values.astype("string")
    except (ValueError, NotImplementedError, OverflowError):
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            raise
        text = np.datetime_as_string(values.to_numpy(dtype="datetime64[us]"), unit="s")
        return pd.Series(text, index=values.index, dtype="string").mask(values.isna())


def _as_text(series: pd.Series) -> pd.Series:
    if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
        series = series.astype("string")  # numbers or times of a Parquet source: their text
    return pd.Series(rules.clean_text(series.to_numpy(dtype=object)), index=series.index, dtype="string")


def parse_timestamps(values: pd.Series, fmt: TimestampFormat) -> pd.Series:
    """Parse to UTC; unparseable values become NaT (the caller reports them)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    elif fmt.unit is not None:
        numbers = pd.to_numeric(values, errors="coerce")
        parsed = pd.to_datetime(numbers, unit=fmt.unit, errors="coerce")
    else:
        text = _as_text(values)
        if fmt.timezone == "UTC":
            return pd.to_datetime(text, format=fmt.format, utc=True, errors="coerce").astype("datetime64[us, UTC]")
        parsed = pd.to_datetime(text, format=fmt.format, errors="coerce")
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize(fmt.timezone, ambiguous="NaT", nonexistent="NaT")
    return parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def map_chunk(raw: pd.DataFrame, spec: TableSpec, tm: TableMapping, ctx: MapContext) -> MappedChunk:
    """Turn raw source rows into canonical rows; every unusable row gets at least one issue."""
    out = pd.DataFrame(index=raw.index)
    issues: list[pd.DataFrame] = []

    def flag(mask: pd.Series, column: str, reason: Callable[[pd.Series], pd.Series] | str,
             values: pd.Series | None = None) -> None:
        """Record an issue for each masked row; ``reason`` builds texts from the masked values only."""
        mask = mask.fillna(False).to_numpy(dtype=bool)
        if mask.any():
            rows = raw.index[mask]
            text = reason if isinstance(reason, str) else np.asarray(reason(values[mask]), dtype=object)
            issues.append(pd.DataFrame({"row": rows, "column": column, "reason": text}, index=rows))

    for col in spec.columns:
        src = tm.source_column(col.name)
        label = src or f"(constant {col.name})"
        if src is not None:
            values = raw[src]
        elif col.name in tm.constants:
            values = pd.Series(tm.constants[col.name], index=raw.index, dtype="string")
        else:
            out[col.name] = pd.Series(pd.NA, index=raw.index, dtype="string")
            continue
        blank = _is_blank(values)
        if col.required:
            flag(blank, label, rules.required_reason(spec.name, col.name))
        if col.kind == "timestamp":
            parsed = parse_timestamps(values, tm.timestamps.get(col.name, TimestampFormat()))
            fmt = tm.timestamps.get(col.name, TimestampFormat()).format
            flag(parsed.isna() & ~blank, label,
                 lambda v: "cannot parse timestamp '" + v.astype("string") + f"' (expected {fmt})", values)
            ts_us = parsed.to_numpy(dtype="datetime64[us]").astype(np.int64)  # NaT: the smallest, never future
            flag(pd.Series(rules.in_future(ts_us, ctx.now) & parsed.notna().to_numpy()), label,
                 lambda v: rules.future_reasons(v, ctx.now), ts_us)
            out[col.name] = parsed
            continue
        text = _as_text(values)
        if col.name in tm.values:
            mapped = text.map(tm.values[col.name])
            text = mapped.where(mapped.notna(), text).astype("string")
        if col.kind == "outcome":
            outcomes = text.to_numpy(dtype=object, na_value=None)
            flag(pd.Series(rules.unknown_outcomes(outcomes)), label,
                 lambda v, name=col.name: rules.unknown_outcome_reasons(v, name), outcomes)
        out[col.name] = text

    if spec.name == "events":
        types = out["type"].to_numpy(dtype=object, na_value=None)
        flag(pd.Series(rules.unknown_types(types, ctx.taxonomy)), tm.source_column("type") or "(constant type)",
             rules.unknown_type_reasons, types)
        channels = rules.default_channels(types, out["channel"].to_numpy(dtype=object, na_value=None), ctx.taxonomy)
        out["channel"] = pd.Series(channels, index=out.index, dtype="string")

    if spec.name == "history":
        _check_history(out, tm, ctx, flag)

    for name, attr in tm.attributes.items():
        src = tm.attribute_column(name)
        values = raw[src]
        if attr.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce") if values.dtype == object or pd.api.types.is_string_dtype(
                values.dtype) else values.astype("float64")
            flag(numbers.isna() & ~_is_blank(values), src,
                 lambda v: f"not a number (attribute {name} is numeric): '" + v.astype("string") + "'", values)
            out[f"attr:{name}"] = numbers.astype("float64")
        else:
            out[f"attr:{name}"] = _as_text(values)

    issue_frame = pd.concat(issues) if issues else pd.DataFrame(columns=ISSUE_COLUMNS)
    good = ~raw.index.isin(issue_frame["row"]) if len(issue_frame) else np.ones(len(raw), dtype=bool)
    return MappedChunk(frame=out[good], issues=issue_frame.reset_index(drop=True))


def keep_mask(raw: pd.DataFrame, tm: TableMapping) -> np.ndarray:
    """Rows that belong to this table under the mapping's ``keep`` filter (all rows without one)."""
    mask = np.ones(len(raw), dtype=bool)
    for column, values in tm.keep.items():
        mask &= _as_text(raw[column]).isin(values).fillna(False).to_numpy(dtype=bool)
    return mask


def _check_history(out: pd.DataFrame, tm: TableMapping, ctx: MapContext, flag: Callable) -> None:
    """History rows must name a declared attribute; a numeric one's value must be a number (stored as such)."""
    attribute_src = tm.source_column("attribute") or "(constant attribute)"
    value_src = tm.source_column("value") or "(constant value)"
    attribute = out["attribute"]
    known = ", ".join(sorted(ctx.attributes)) or "none"
    flag(~attribute.isin(list(ctx.attributes)) & attribute.notna(), attribute_src,
         lambda v: "unknown attribute '" + v + f"' (declared: {known}; declare it under a leads mapping's "
         "attributes, or map the source name under values.attribute)", attribute)
    numeric = (attribute.map(ctx.attributes) == "numeric").fillna(False).to_numpy(dtype=bool)
    if numeric.any():
        value = out["value"]
        numbers = pd.to_numeric(value.where(numeric), errors="coerce")
        flag(pd.Series(numeric, index=out.index) & numbers.isna() & value.notna(), value_src,
             lambda v: "not a number (attribute " + attribute[v.index] + " is numeric): '" + v + "'", value)
        out["value"] = value.mask(numeric & numbers.notna().to_numpy(), numbers.astype("string"))
