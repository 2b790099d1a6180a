"""Profile and explicit criteria: the lead's own attributes, typed for LightGBM.

Categorical attributes stay categories (integer codes into categories learned at fit time, -1 for
missing or unseen), not one-hot columns; numeric attributes stay numbers.
"""

from __future__ import annotations

import numpy as np

from features.context import Context


def profile(ctx: Context, lead_values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each per-lead attribute array gathered for every snapshot's lead."""
    return {name: values[ctx.lead] for name, values in lead_values.items()}
