"""The single-process engine: partitions one after the other, so memory holds one partition at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): called as partitions finish."""


class LocalEngine:
    """Runs a per-partition function here, in partition order."""

    name = "local"

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress

    def map(self, fn: Callable[[T], R], items: Iterable[T], what: str = "partitions") -> list[R]:
        items = list(items)
        out = []
        for done, item in enumerate(items, start=1):
            out.append(fn(item))
            if self.progress:
                self.progress(what, done, len(items))
        return out
