"""The deploy-window calendar: DST, holidays with subdivisions, freezes over midnight and
year ends, several window sets at once, and the wait note a rollout shows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shiprail.plan.models import DeployWindows
from shiprail.plan.windows import OUTSIDE, calendar, closed_reason, next_open, wait_note


def windows(**fields: Any) -> DeployWindows:
    return DeployWindows.model_validate(fields)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


OFFICE = {"days": ["mon", "tue", "wed", "thu"], "start": "09:00", "end": "16:00"}


def test_spans_are_consecutive_and_cover_the_range() -> None:
    w = windows(timezone="Europe/Berlin", allow=[OFFICE], holidays={"country": "DE", "subdiv": "BE"})
    start, end = utc(2026, 12, 1), utc(2027, 2, 1)
    spans = calendar(w, start, end)
    assert spans[0].start == start and spans[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert all((a.open, a.reason) != (b.open, b.reason) for a, b in itertools.pairwise(spans))


def test_an_office_window_keeps_its_wall_clock_across_both_dst_changes() -> None:
    w = windows(timezone="Europe/Berlin", allow=[OFFICE])
    # Before spring-forward Berlin is UTC+1, after it UTC+2; in autumn back again.
    assert next_open(utc(2027, 3, 25, 20), w) == utc(2027, 3, 29, 7)  # Mon after the change: 09:00 CEST
    assert next_open(utc(2027, 3, 25, 7, 30), w) == utc(2027, 3, 25, 8)  # Thu before: 09:00 CET
    assert next_open(utc(2026, 10, 22, 20), w) == utc(2026, 10, 26, 8)  # Mon after autumn: 09:00 CET


def test_a_window_inside_the_skipped_hour_opens_when_the_clock_passes_it() -> None:
    night = windows(timezone="Europe/Berlin", allow=[{"days": ["sun"], "start": "02:30", "end": "04:00"}])
    # 2027-03-28 02:00 CET jumps to 03:00 CEST: 02:30 never shows; it opens at 03:30 CEST.
    opens = next_open(utc(2027, 3, 27, 12), night)
    assert opens == utc(2027, 3, 28, 1, 30)
    span = next(s for s in calendar(night, utc(2027, 3, 27), utc(2027, 3, 29)) if s.open)
    assert span.end - span.start == timedelta(minutes=30)


def test_an_overnight_allow_window_runs_past_midnight_into_the_next_day() -> None:
    w = windows(timezone="UTC", allow=[{"days": ["fri"], "start": "22:00", "end": "02:00"}])
    spans = [s for s in calendar(w, utc(2026, 12, 4), utc(2026, 12, 6)) if s.open]
    assert [(s.start, s.end) for s in spans] == [(utc(2026, 12, 4, 22), utc(2026, 12, 5, 2))]
    assert next_open(utc(2026, 12, 5, 1), w) == utc(2026, 12, 5, 1)  # Saturday 01:00 is Friday's night


def test_a_timed_freeze_over_midnight_and_the_year_end() -> None:
    w = windows(
        timezone="America/New_York",
        deny=[{"from": "2026-12-31T20:00", "to": "2027-01-01T06:00", "reason": "new year"}],
    )
    # 20:00 New York (UTC-5) is 01:00 UTC the next day.
    assert closed_reason(utc(2027, 1, 1, 1, 30), w) == "new year"
    assert next_open(utc(2027, 1, 1, 0, 59), w) == utc(2027, 1, 1, 0, 59)
    assert next_open(utc(2027, 1, 1, 1, 0), w) == utc(2027, 1, 1, 11)


def test_a_freeze_of_whole_days_includes_its_last_day_and_crosses_the_year() -> None:
    w = windows(
        timezone="Europe/Berlin", deny=[{"from": "2026-12-20", "to": "2027-01-04", "reason": "year-end"}]
    )
    assert next_open(utc(2026, 12, 19, 22, 59), w) == utc(2026, 12, 19, 22, 59)
    assert closed_reason(utc(2026, 12, 19, 23), w) == "year-end"  # 00:00 Berlin
    assert next_open(utc(2026, 12, 25), w) == utc(2027, 1, 4, 23)  # midnight after the 4th, Berlin


@pytest.mark.parametrize(
    ("calendar_spec", "day", "name"),
    [
        ({"country": "DE", "subdiv": "BY"}, (2026, 1, 6), "Epiphany"),  # Bavaria, not Berlin
        ({"country": "DE", "subdiv": "BE"}, (2026, 3, 8), "Women's Day"),  # Berlin, not Bavaria
        ({"country": "US", "subdiv": "CA"}, (2026, 3, 31), "Cesar Chavez Day"),
        ({"country": "US", "subdiv": "TX"}, (2026, 3, 2), "Texas Independence Day"),
    ],
)
def test_holidays_of_a_subdivision_close_the_whole_local_day(
    calendar_spec: dict[str, str], day: tuple[int, int, int], name: str
) -> None:
    zone = "Europe/Berlin" if calendar_spec["country"] == "DE" else "America/Los_Angeles"
    w = windows(timezone=zone, holidays={**calendar_spec, "categories": ["public"]})
    import zoneinfo

    midnight = datetime(*day, tzinfo=zoneinfo.ZoneInfo(zone))
    inside = closed_reason(midnight + timedelta(hours=12), w)
    assert name in inside and calendar_spec["country"] in inside
    assert next_open(midnight + timedelta(hours=1), w) == (midnight + timedelta(days=1)).astimezone(UTC)
    assert next_open(midnight - timedelta(minutes=1), w) == (midnight - timedelta(minutes=1))


def test_a_holiday_of_one_subdivision_is_not_a_holiday_of_another() -> None:
    berlin = windows(timezone="Europe/Berlin", holidays={"country": "DE", "subdiv": "BE"})
    epiphany_noon = utc(2026, 1, 6, 11)
    assert next_open(epiphany_noon, berlin) == epiphany_noon


def test_holiday_categories_and_language_are_honoured_and_checked() -> None:
    government = windows(timezone="UTC", holidays={"country": "US", "categories": ["government"]})
    assert closed_reason(utc(2025, 1, 9, 12), government) != OUTSIDE  # a day of mourning in 2025
    german = windows(timezone="Europe/Berlin", holidays={"country": "DE", "subdiv": "BE", "language": "de"})
    assert "Weihnachtstag" in closed_reason(utc(2026, 12, 25, 12), german)
    for bad, message in [
        ({"country": "XX"}, "no holiday calendar for country 'XX'"),
        ({"country": "de"}, "did you mean 'DE'"),
        ({"country": "DE", "subdiv": "ZZ"}, "DE has no subdivision 'ZZ'"),
        ({"country": "DE", "categories": ["nope"]}, "no holiday category 'nope'"),
        ({"country": "DE", "language": "xx_XX"}, "no language 'xx_XX'"),
    ]:
        with pytest.raises(ValidationError, match=message):
            windows(holidays=bad)


def test_deny_beats_allow_and_the_wait_note_names_the_freeze() -> None:
    w = windows(
        timezone="Europe/Berlin",
        allow=[OFFICE],
        deny=[{"from": "2026-12-19", "to": "2027-01-04", "reason": "year-end freeze"}],
    )
    now = utc(2026, 12, 22, 10)
    opens = next_open(now, w)
    assert opens == utc(2027, 1, 5, 8)
    assert opens is not None
    assert wait_note(now, opens, w) == "reopens Tue 2027-01-05 09:00 Europe/Berlin after year-end freeze"
    friday = utc(2026, 12, 4, 10)
    opens = next_open(friday, w)
    assert opens is not None
    assert wait_note(friday, opens, w) == f"reopens Mon 2026-12-07 09:00 Europe/Berlin ({OUTSIDE})"


def test_several_window_sets_must_all_be_open() -> None:
    plan = windows(timezone="UTC", allow=[{"days": ["mon", "tue"], "start": "08:00", "end": "12:00"}])
    train = windows(timezone="Asia/Tokyo", allow=[{"days": ["mon", "tue"], "start": "18:00", "end": "23:00"}])
    # Tokyo is UTC+9: 18:00-23:00 is 09:00-14:00 UTC, so both are open 09:00-12:00 UTC.
    assert next_open(utc(2026, 12, 7, 6), [plan, train]) == utc(2026, 12, 7, 9)
    spans = [s for s in calendar([plan, train], utc(2026, 12, 7), utc(2026, 12, 8)) if s.open]
    assert [(s.start, s.end) for s in spans] == [(utc(2026, 12, 7, 9), utc(2026, 12, 7, 12))]


def test_nothing_open_within_the_horizon_is_none() -> None:
    w = windows(deny=[{"from": "2026-01-01", "to": "2030-01-01", "reason": "forever"}])
    assert next_open(utc(2026, 6, 1), w) is None


def test_bad_deny_bounds_are_refused() -> None:
    with pytest.raises(ValidationError, match="is not after"):
        windows(deny=[{"from": "2026-12-10T10:00", "to": "2026-12-10T09:00"}])
    with pytest.raises(ValidationError, match="neither a date"):
        windows(deny=[{"from": "soon", "to": "2026-12-10"}])
    with pytest.raises(ValidationError, match="without an offset"):
        windows(deny=[{"from": datetime(2026, 12, 10, tzinfo=UTC), "to": "2026-12-11"}])
