"""Events in (lead, time) order, the layout the feature scan walks: sorted once, then split by direction."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.event_order import EventArrays, sort_order

# few leads and close times, so that the same lead often has events in the same millisecond and microsecond
event = st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 999, 1_000, 1_001, 2_500, 86_400_000_000]),
                  st.integers(1, 4), st.integers(-1, 5), st.integers(0, 6), st.booleans())


def arrays(events: list) -> tuple[np.ndarray, ...]:
    cols = list(zip(*events, strict=True)) if events else [()] * 6
    return (np.array(cols[0], np.int64), 1_735_689_600_000_000 + np.array(cols[1], np.int64),
            np.array(cols[2], np.int8), np.array(cols[3], np.int16), np.array(cols[4], np.int32),
            np.array(cols[5], bool))


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=40), st.booleans())
def test_the_order_is_by_lead_then_exact_time_and_sorted_input_stays(events: list, presort: bool) -> None:
    lead, ts, *_ = arrays(events)
    if presort:
        keep = np.lexsort((ts, lead))
        lead, ts = lead[keep], ts[keep]
    order = sort_order(lead, ts)
    assert sorted(order.tolist()) == list(range(lead.size))
    want = np.lexsort((ts, lead))
    assert np.array_equal(lead[order], lead[want]) and np.array_equal(ts[order], ts[want])
    if presort:  # what the store hands over: kept as it is, simultaneous events too
        assert np.array_equal(order, np.arange(lead.size))


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=40), st.booleans())
def test_split_gives_each_direction_sorted_with_its_segments(events: list, presort: bool) -> None:
    lead, ts, level, channel, any_channel, inbound = arrays(events)
    if presort:
        keep = np.lexsort((ts, lead))
        lead, ts, level, channel, any_channel, inbound = (a[keep] for a in (lead, ts, level, channel, any_channel,
                                                                            inbound))
    n_leads = 5
    parts = EventArrays.split(lead, ts, level, channel, any_channel, inbound, n_leads)
    for part, mine in zip(parts, (inbound, ~inbound), strict=True):
        owner = np.repeat(np.arange(n_leads), np.diff(part.start))
        assert part.start[0] == 0 and part.start[-1] == mine.sum() and (np.diff(part.start) >= 0).all()
        key = np.lexsort((part.ts, owner))
        assert np.array_equal(key, np.arange(key.size)) or (  # sorted; ties may come in any order
            np.array_equal(owner[key], owner) and np.array_equal(part.ts[key], part.ts))
        got = sorted(zip(owner.tolist(), part.ts.tolist(), part.level.tolist(), part.channel.tolist(),
                         part.any_channel.tolist()))
        want = sorted(zip(lead[mine].tolist(), ts[mine].tolist(), level[mine].tolist(), channel[mine].tolist(),
                          any_channel[mine].tolist()))
        assert got == want  # exactly this direction's events, each once
        assert part.ts.dtype == np.int64 and part.level.dtype == np.int8 and part.channel.dtype == np.int16 \
            and part.any_channel.dtype == np.int32
