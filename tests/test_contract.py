"""The data contract: taxonomy defaults, user taxonomies, timestamp parsing."""

from __future__ import annotations

import pandas as pd
import pytest

from contract.mapping import TimestampFormat, parse_timestamps
from contract.taxonomy import TaxonomyError, load_taxonomy
from tests.conftest import write_yaml

ISSUE_TYPES = {
    "newsletter_signup", "whitepaper_download", "email_open", "email_click", "email_reply", "page_view",
    "return_visit", "webinar_registration", "webinar_attendance", "linkedin_connection",
    "linkedin_message_reply", "content_reaction", "chat", "pricing_page_view", "trial_signup", "demo_request",
    "quote_request", "intake_call", "email_sent", "call_attempt", "linkedin_message_sent",
}


def test_default_taxonomy_covers_the_funnel_and_orders_depth(taxonomy) -> None:  # noqa: ANN001
    assert ISSUE_TYPES <= set(taxonomy.types)
    assert set(taxonomy.outbound_types) == {"email_sent", "call_attempt", "linkedin_message_sent"}
    level = taxonomy.stage_level
    assert level("newsletter_signup") < level("webinar_registration") < level("webinar_attendance") \
        < level("demo_request")
    assert level("pricing_page_view") == level("quote_request") == len(taxonomy.stages)
    assert level("email_sent") == 0
    assert taxonomy.types["email_reply"].answers == "email_sent"
    assert all(t.description for t in taxonomy.types.values())


def test_user_taxonomy_is_validated_with_a_clear_message(tmp_path) -> None:  # noqa: ANN001
    good = write_yaml(tmp_path / "t.yaml", {"stages": ["cold", "hot"], "types": {
        "visit": {"channel": "web", "stage": "cold", "description": "Visited"},
        "call": {"channel": "phone", "stage": "hot", "description": "Called us"}}})
    assert load_taxonomy(good).stage_level("call") == 2
    bad = write_yaml(tmp_path / "bad.yaml", {"stages": ["cold"], "types": {
        "visit": {"channel": "web", "stage": "warm", "description": "Visited"}}})
    with pytest.raises(TaxonomyError, match=r"bad.yaml: invalid taxonomy: type 'visit': inbound types need a stage"):
        load_taxonomy(bad)


@pytest.mark.parametrize("raw, fmt, expected", [
    ("2025-03-01T12:00:00+01:00", TimestampFormat(), "2025-03-01T11:00:00Z"),
    ("2025-03-01 12:00", TimestampFormat(), "2025-03-01T12:00:00Z"),
    ("01-03-2025", TimestampFormat(format="%d-%m-%Y"), "2025-03-01T00:00:00Z"),
    ("2025-03-30 02:30", TimestampFormat(format="%Y-%m-%d %H:%M", timezone="Europe/Amsterdam"), None),
    ("2025-03-30 03:30", TimestampFormat(format="%Y-%m-%d %H:%M", timezone="Europe/Amsterdam"),
     "2025-03-30T01:30:00Z"),
    ("1740830400", TimestampFormat(unit="s"), "2025-03-01T12:00:00Z"),
])
def test_timestamps_parse_to_utc(raw: str, fmt: TimestampFormat, expected: str | None) -> None:
    parsed = parse_timestamps(pd.Series([raw]), fmt)
    assert str(parsed.dt.tz) == "UTC"
    if expected is None:
        assert pd.isna(parsed.iloc[0]), "a local time that does not exist (DST gap) is refused, not guessed"
    else:
        assert parsed.iloc[0] == pd.Timestamp(expected)
