"""Responsiveness: how often and how fast the lead answers our outbound touches.

An outbound touch (email sent, call attempt, LinkedIn message sent) is answered by the lead's next
inbound action at or after it. Only answers that happened before the as-of time count: a touch
still waiting at the as-of time is unanswered, whatever happened later.
"""

from __future__ import annotations

import numpy as np

from features.context import Context
from features.events import locate, prefix_sum

US_PER_HOUR = 3_600_000_000


def responsiveness(ctx: Context) -> dict[str, np.ndarray]:
    """Outbound touches, share answered, mean hours to answer, and touches since the last answer."""
    out_ev, inbound = ctx.outbound, ctx.inbound
    o_start = out_ev.start[ctx.lead]
    o_pos = locate(out_ev, ctx.lead, ctx.as_of)
    touches = (o_pos - o_start).astype(np.float64)
    if out_ev.size:
        # the inbound action answering each touch; the index is non-decreasing along the sorted touches
        answer = locate(inbound, out_ev.lead, out_ev.ts)
        exists = answer < inbound.start[out_ev.lead + 1]
        hours = np.where(exists, (inbound.ts[np.minimum(answer, max(inbound.size - 1, 0))] - out_ev.ts)
                         / US_PER_HOUR, 0.0) if inbound.size else np.zeros(out_ev.size)
        hours_prefix = prefix_sum(hours)
        # touches answered before as-of are those whose answer lies before the snapshot's position
        answered_end = np.clip(np.searchsorted(answer, ctx.pos, side="left"), o_start, o_pos)
    else:
        hours_prefix = np.zeros(1)
        answered_end = o_start
    answered = (answered_end - o_start).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "outbound_touches": touches,
            "answered_share": np.where(touches > 0, answered / touches, np.nan),
            "answer_hours_mean": np.where(answered > 0, (hours_prefix[answered_end] - hours_prefix[o_start])
                                          / answered, np.nan),
            "touches_since_last_answer": touches - answered,
        }
