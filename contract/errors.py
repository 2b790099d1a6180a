"""Turning pydantic validation errors into one readable line for users editing YAML files."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError) -> str:
    """Return 'path.to.key: problem; ...' without pydantic's URLs and echoed input."""
    parts = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
