"""The editable event taxonomy: event type -> channel, depth stage and direction.

Depth is what separates attention from intent, so every inbound type belongs to one ordered stage.
Outbound touches carry no stage; they exist so that features can time the lead's answers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import describe


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the file and the entry."""


class EventType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    stage: str | None = None
    direction: Literal["inbound", "outbound"] = "inbound"
    description: str
    answers: str | None = Field(None, description="Outbound type this event is an answer to.")


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: tuple[str, ...]
    types: dict[str, EventType]

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        if len(set(self.stages)) != len(self.stages) or not self.stages:
            raise ValueError("stages must be a non-empty list of distinct names")
        for name, t in self.types.items():
            if t.direction == "inbound" and t.stage not in self.stages:
                raise ValueError(f"type {name!r}: inbound types need a stage among {list(self.stages)}")
            if t.direction == "outbound" and t.stage is not None:
                raise ValueError(f"type {name!r}: outbound types have no stage")
            if t.answers is not None and self.types.get(t.answers, None) is None:
                raise ValueError(f"type {name!r}: answers unknown type {t.answers!r}")
        return self

    def stage_level(self, type_name: str) -> int:
        """Return 1 for the shallowest stage up to len(stages); 0 for outbound types."""
        stage = self.types[type_name].stage
        return 0 if stage is None else self.stages.index(stage) + 1

    @property
    def inbound_types(self) -> tuple[str, ...]:
        """Types the lead does itself: the ones that count as its behaviour."""
        return tuple(n for n, t in self.types.items() if t.direction == "inbound")

    @property
    def outbound_types(self) -> tuple[str, ...]:
        return tuple(n for n, t in self.types.items() if t.direction == "outbound")


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Load a taxonomy YAML file, or the packaged default when ``path`` is None."""
    if path is None:
        text = resources.files("contract").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
        where = "packaged taxonomy.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TaxonomyError(f"{path}: cannot read the taxonomy ({exc.strerror})") from exc
        where = str(path)
    try:
        return Taxonomy.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise TaxonomyError(f"{where}: invalid taxonomy: {describe(exc)}") from exc
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{where}: not valid YAML: {exc}") from exc
