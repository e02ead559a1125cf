"""Business calendars: working-time arithmetic, China's holidays, DST and pausing."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.domain import holidays_cn
from chalicelib.domain.calendar import BusinessCalendar
from chalicelib.domain.errors import ValidationError

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)

OFFICE = BusinessCalendar(name="office")  # Mon-Fri 09:00-18:00 Asia/Shanghai, no holidays
CN = BusinessCalendar.china_office()
BERLIN_OFFICE = BusinessCalendar(name="berlin", tz="Europe/Berlin")
SPLIT = BusinessCalendar(
    name="split",
    tz="Europe/Berlin",
    hours={0: ((time(8), time(12)), (time(13), time(17))), 2: ((time(0), time(0)),), 5: ((time(10), time(14)),)},
    holidays={date(2026, 3, 30)},
)
ALWAYS = BusinessCalendar.always()
CALENDARS = [OFFICE, CN, BERLIN_OFFICE, SPLIT, ALWAYS]


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


# ---------------------------------------------------------------- examples


def test_friday_1755_plus_four_business_hours_is_monday_1255() -> None:
    start = sh(2026, 3, 13, 17, 55)  # a Friday
    assert start.weekday() == 4
    due = OFFICE.add(start, 4 * H)
    assert due == sh(2026, 3, 16, 12, 55)
    assert due.tzinfo is UTC
    assert OFFICE.working_time_between(start, due) == 4 * H


def test_result_at_end_of_interval_stays_there() -> None:
    assert OFFICE.add(sh(2026, 3, 13, 17, 0), H) == sh(2026, 3, 13, 18, 0)
    assert OFFICE.add(sh(2026, 3, 13, 9, 0), 9 * H) == sh(2026, 3, 13, 18, 0)


def test_zero_duration_goes_to_next_working_instant() -> None:
    assert OFFICE.add(sh(2026, 3, 14, 3, 0), timedelta(0)) == sh(2026, 3, 16, 9, 0)
    assert OFFICE.add(sh(2026, 3, 16, 10, 0), timedelta(0)) == sh(2026, 3, 16, 10, 0)


def test_seventy_two_hours_spans_eight_working_days() -> None:
    start = sh(2026, 3, 16, 9, 0)  # Monday opening
    # 72h = 8 working days of 9h: Mon..Fri, Mon..Wed → Wednesday 18:00 of the next week
    assert OFFICE.add(start, 72 * H) == sh(2026, 3, 25, 18, 0)


def test_is_working_and_next_working_instant() -> None:
    assert OFFICE.is_working(sh(2026, 3, 16, 9, 0))
    assert not OFFICE.is_working(sh(2026, 3, 16, 18, 0))  # end excluded
    assert not OFFICE.is_working(sh(2026, 3, 14, 12, 0))  # Saturday
    assert OFFICE.next_working_instant(sh(2026, 3, 16, 18, 0)) == sh(2026, 3, 17, 9, 0)
    at = sh(2026, 3, 16, 11, 11)
    assert OFFICE.next_working_instant(at) == at
    assert OFFICE.next_working_instant(at).tzinfo is UTC


def test_national_day_golden_week_2026_is_skipped() -> None:
    # Sep 30 2026 (Wed) 17:00 + 4h: 1h on Sep 30, then Oct 1-7 are off; Oct 8 (Thu) is a working day.
    start = sh(2026, 9, 30, 17, 0)
    assert CN.add(start, 4 * H) == sh(2026, 10, 8, 12, 0)
    # without the holidays the same SLA would be due on Thursday Oct 1
    assert OFFICE.add(start, 4 * H) == sh(2026, 10, 1, 12, 0)
    for day in range(1, 8):
        assert not CN.is_working(sh(2026, 10, day, 10, 0))


def test_make_up_saturday_after_golden_week_is_used() -> None:
    # Oct 10 2026 is a Saturday but a make-up working day (调休上班).
    assert date(2026, 10, 10).weekday() == 5
    assert CN.is_working(sh(2026, 10, 10, 10, 0))
    assert CN.add(sh(2026, 10, 9, 17, 0), 4 * H) == sh(2026, 10, 10, 12, 0)
    # the plain office calendar waits for Monday
    assert OFFICE.add(sh(2026, 10, 9, 17, 0), 4 * H) == sh(2026, 10, 12, 12, 0)
    # Sunday Sep 20 2026 is also a make-up working day
    assert CN.working_time_between(sh(2026, 9, 20, 0, 0), sh(2026, 9, 21, 0, 0)) == 9 * H


def test_spring_festival_2026_and_2025_schedules() -> None:
    assert date(2026, 2, 15) in holidays_cn.HOLIDAYS and date(2026, 2, 23) in holidays_cn.HOLIDAYS
    assert {date(2026, 2, 14), date(2026, 2, 28)} <= holidays_cn.MAKEUP_WORKDAYS
    assert date(2025, 1, 28) in holidays_cn.HOLIDAYS and date(2025, 2, 4) in holidays_cn.HOLIDAYS
    assert {date(2025, 1, 26), date(2025, 2, 8)} <= holidays_cn.MAKEUP_WORKDAYS
    # Friday Feb 13 2026 17:00 + 2h: 1h Friday, Saturday Feb 14 is a make-up day → 10:00
    assert CN.add(sh(2026, 2, 13, 17, 0), 2 * H) == sh(2026, 2, 14, 10, 0)
    # Saturday Feb 14 17:00 + 2h: the festival runs Feb 15-23 → Tuesday Feb 24 10:00
    assert CN.add(sh(2026, 2, 14, 17, 0), 2 * H) == sh(2026, 2, 24, 10, 0)


def test_holiday_data_is_consistent() -> None:
    assert not holidays_cn.HOLIDAYS & holidays_cn.MAKEUP_WORKDAYS
    assert all(d.weekday() >= 5 for d in holidays_cn.MAKEUP_WORKDAYS)  # make-up days are weekend days
    assert {d.year for d in holidays_cn.HOLIDAYS} == set(holidays_cn.COVERED_YEARS)
    assert len([d for d in holidays_cn.HOLIDAYS if d.year == 2025]) == 1 + 8 + 3 + 5 + 3 + 8
    assert len([d for d in holidays_cn.HOLIDAYS if d.year == 2026]) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert len([d for d in holidays_cn.MAKEUP_WORKDAYS if d.year == 2025]) == 5
    assert len([d for d in holidays_cn.MAKEUP_WORKDAYS if d.year == 2026]) == 6


def test_always_open_adds_plain_time() -> None:
    start = sh(2026, 10, 3, 23, 30)
    assert ALWAYS.add(start, 72 * H) == start + 72 * H
    assert ALWAYS.is_working(start)
    assert ALWAYS.working_time_between(start, start + 5 * H) == 5 * H
    assert ALWAYS.resume_deadline(start + 10 * H, start, start + 2 * H) == start + 12 * H


def test_dst_in_berlin_does_not_break() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # DST starts Sunday Mar 29 2026; Friday 17:00 CET + 2h → Monday 10:00 CEST
    due = BERLIN_OFFICE.add(datetime(2026, 3, 27, 17, 0, tzinfo=berlin), 2 * H)
    assert due == datetime(2026, 3, 30, 10, 0, tzinfo=berlin)
    assert due.utcoffset() == timedelta(0) and due.astimezone(berlin).utcoffset() == 2 * H
    # DST ends Sunday Oct 25 2026
    due = BERLIN_OFFICE.add(datetime(2026, 10, 23, 17, 0, tzinfo=berlin), 2 * H)
    assert due == datetime(2026, 10, 26, 10, 0, tzinfo=berlin)
    # a 24h Wednesday across no change is 24h; a full-day interval on the change days follows the clock
    full_day = BusinessCalendar(name="full", tz="Europe/Berlin", hours={6: ((time(0), time(0)),)})
    sunday_spring = datetime(2026, 3, 29, 0, 0, tzinfo=berlin)
    sunday_autumn = datetime(2026, 10, 25, 0, 0, tzinfo=berlin)
    assert full_day.working_time_between(sunday_spring, sunday_spring + 48 * H) == 23 * H
    assert full_day.working_time_between(sunday_autumn, sunday_autumn + 48 * H) == 25 * H


def test_inputs_in_other_zones_mean_the_same_instant() -> None:
    start_utc = datetime(2026, 3, 13, 9, 55, tzinfo=UTC)  # = Friday 17:55 Shanghai
    assert OFFICE.add(start_utc, 4 * H) == sh(2026, 3, 16, 12, 55)


def test_pausing_extends_by_working_time_of_the_pause() -> None:
    due = sh(2026, 3, 16, 15, 0)  # Monday
    # paused Monday 10:00, resumed Tuesday 10:00: the pause lasted 9 working hours
    new_due = OFFICE.resume_deadline(due, sh(2026, 3, 16, 10, 0), sh(2026, 3, 17, 10, 0))
    assert new_due == sh(2026, 3, 17, 15, 0)
    assert OFFICE.remaining(new_due, sh(2026, 3, 17, 10, 0)) == 5 * H
    # a pause entirely at night changes nothing
    assert OFFICE.resume_deadline(due, sh(2026, 3, 16, 19, 0), sh(2026, 3, 17, 8, 0)) == due
    # a pause starting after the deadline does not revive a breached clock
    assert OFFICE.resume_deadline(due, sh(2026, 3, 16, 16, 0), sh(2026, 3, 17, 16, 0)) == due
    # deadline at 18:00 sharp, one working hour of pause → next morning 10:00
    assert OFFICE.resume_deadline(sh(2026, 3, 16, 18, 0), sh(2026, 3, 16, 9, 0), sh(2026, 3, 16, 10, 0)) == sh(
        2026, 3, 17, 10, 0
    )
    with pytest.raises(ValidationError):
        OFFICE.resume_deadline(due, sh(2026, 3, 16, 10, 0), sh(2026, 3, 16, 9, 0))


def test_remaining_is_never_negative() -> None:
    due = sh(2026, 3, 16, 15, 0)
    assert OFFICE.remaining(due, sh(2026, 3, 16, 16, 0)) == timedelta(0)
    assert OFFICE.remaining(due, sh(2026, 3, 13, 17, 0)) == 7 * H


def test_validation_errors() -> None:
    with pytest.raises(ValidationError):
        OFFICE.add(datetime(2026, 3, 16, 9, 0), H)  # naive
    with pytest.raises(ValidationError):
        OFFICE.add(sh(2026, 3, 16, 9, 0), -H)
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", tz="Mars/Olympus")
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", hours={0: ((time(18), time(9)),)})
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", hours={0: ((time(9), time(12)), (time(11), time(14)))})
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", hours={7: ((time(9), time(12)),)})
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", holidays={date(2026, 1, 1)}, makeup_days={date(2026, 1, 1)})
    with pytest.raises(ValidationError):
        BusinessCalendar(name="x", hours={5: ((time(9), time(12)),)}, makeup_days={date(2026, 1, 4)})
    with pytest.raises(ValidationError):
        BusinessCalendar(name="  ")


def test_calendar_without_working_time_raises_instead_of_looping() -> None:
    closed = BusinessCalendar(name="closed", hours={})
    with pytest.raises(ValidationError):
        closed.add(sh(2026, 1, 1, 0, 0), H)
    with pytest.raises(ValidationError):
        closed.next_working_instant(sh(2026, 1, 1, 0, 0))
    assert closed.working_time_between(sh(2026, 1, 1, 0, 0), sh(2027, 1, 1, 0, 0)) == timedelta(0)
    assert not closed.is_working(sh(2026, 1, 1, 12, 0))
    # only holidays for years on end: every weekday of 2026-2029 off
    days = {date(2026, 1, 1) + timedelta(days=n) for n in range(4 * 366)}
    all_holidays = BusinessCalendar(name="h", holidays=days)
    with pytest.raises(ValidationError):
        all_holidays.add(sh(2026, 1, 1, 0, 0), H)


def test_json_round_trip_and_validation() -> None:
    for calendar in CALENDARS:
        assert BusinessCalendar.from_json(calendar.to_json()) == calendar
        assert hash(BusinessCalendar.from_json(calendar.to_json())) == hash(calendar)
    data = {"name": "cn", "tz": "Asia/Shanghai", "cn_holidays": True, "hours": {"mon": [["09:00", "24:00"]]}}
    parsed = BusinessCalendar.from_json(data)
    assert parsed.holidays == holidays_cn.HOLIDAYS
    assert parsed.hours == {0: ((time(9), time(0)),)}
    assert parsed.to_json()["hours"] == {"mon": [["09:00", "24:00"]]}
    assert BusinessCalendar.from_json({"name": "d"}).hours == OFFICE.hours
    bad: list[object] = [
        [],
        {"tz": "UTC"},
        {"name": "x", "colour": "red"},
        {"name": "x", "tz": 8},
        {"name": "x", "always_open": "yes"},
        {"name": "x", "hours": {"monday": [["09:00", "18:00"]]}},
        {"name": "x", "hours": {"mon": [["9", "18:00"]]}},
        {"name": "x", "hours": {"mon": [["25:00", "26:00"]]}},
        {"name": "x", "hours": {"mon": [["09:00"]]}},
        {"name": "x", "hours": {"mon": "09:00-18:00"}},
        {"name": "x", "hours": []},
        {"name": "x", "holidays": ["2026-13-01"]},
        {"name": "x", "holidays": "2026-01-01"},
        {"name": "x", "makeup_days": [20260101]},
    ]
    for item in bad:
        with pytest.raises(ValidationError):
            BusinessCalendar.from_json(item)


# ---------------------------------------------------------------- properties

ZONES = st.sampled_from([SH, BERLIN, UTC, ZoneInfo("America/New_York")])
instants = st.builds(
    lambda base, zone: base.replace(tzinfo=UTC).astimezone(zone),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 6, 30)),
    ZONES,
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))
calendars = st.sampled_from(CALENDARS)


@given(calendars, instants, durations, durations)
def test_add_is_monotone_in_duration(calendar: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta) -> None:
    d1, d2 = min(d1, d2), max(d1, d2)
    first, second = calendar.add(start, d1), calendar.add(start, d2)
    assert start <= first <= second


@settings(max_examples=200)
@given(calendars, instants, durations)
def test_working_time_between_inverts_add(calendar: BusinessCalendar, start: datetime, d: timedelta) -> None:
    due = calendar.add(start, d)
    assert due >= start
    assert due.tzinfo is UTC
    assert calendar.working_time_between(start, due) == d


@given(calendars, instants, durations)
def test_positive_result_is_working_or_end_of_interval(
    calendar: BusinessCalendar, start: datetime, d: timedelta
) -> None:
    assume(d > timedelta(0))
    due = calendar.add(start, d)
    tick = timedelta(microseconds=1)
    # inside working time, or the instant just before it was working (end of an interval)
    assert calendar.is_working(due) or calendar.is_working(due - tick)
    # and a microsecond less is never later
    assert calendar.add(start, d - tick) <= due


@given(calendars, instants)
def test_next_working_instant(calendar: BusinessCalendar, at: datetime) -> None:
    nxt = calendar.next_working_instant(at)
    assert nxt >= at
    assert calendar.is_working(nxt)
    assert calendar.working_time_between(at, nxt) == timedelta(0)
    assert (nxt == at) == calendar.is_working(at)


@given(calendars, instants, durations, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)))
def test_pausing_never_makes_a_deadline_earlier(
    calendar: BusinessCalendar, created: datetime, sla: timedelta, pause: timedelta
) -> None:
    created = created.astimezone(UTC)  # arithmetic on instants, not on Berlin wall-clock time
    due = calendar.add(created, sla)
    paused_at = created + (due - created) / 2
    resumed_at = paused_at + pause
    new_due = calendar.resume_deadline(due, paused_at, resumed_at)
    assert new_due >= due
    # the working time left when the pause started is what is left when it ends
    if calendar.working_time_between(paused_at, resumed_at) and resumed_at < new_due:
        assert calendar.remaining(new_due, resumed_at) >= calendar.remaining(due, paused_at)


@given(calendars, instants, durations, durations)
def test_zero_length_pause_is_identity(
    calendar: BusinessCalendar, created: datetime, sla: timedelta, at: timedelta
) -> None:
    due = calendar.add(created, sla)
    paused = created.astimezone(UTC) + at
    assert calendar.resume_deadline(due, paused, paused) == due


@given(calendars, instants, instants, instants)
def test_working_time_is_additive(calendar: BusinessCalendar, a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted(x.astimezone(UTC) for x in (a, b, c))  # same-tz subtraction would be wall-clock
    between = calendar.working_time_between
    assert between(a, c) == between(a, b) + between(b, c)
    assert between(a, c) <= c - a


def _length(start: time, end: time) -> timedelta:
    seconds = (end.hour * 3600 + end.minute * 60 + end.second) or 86400
    return timedelta(seconds=seconds - (start.hour * 3600 + start.minute * 60 + start.second))


@st.composite
def random_calendars(draw: st.DrawFn) -> BusinessCalendar:
    hours: dict[int, tuple[tuple[time, time], ...]] = {}
    for weekday in draw(st.sets(st.integers(0, 6), min_size=1)):
        cuts = sorted(draw(st.sets(st.integers(0, 24 * 4), min_size=2, max_size=6)))
        cuts = cuts[: len(cuts) // 2 * 2]
        pairs = []
        for s, e in zip(cuts[::2], cuts[1::2], strict=True):
            end = time(0) if e == 96 else time(e // 4, e % 4 * 15)
            pairs.append((time(s // 4, s % 4 * 15), end))
        hours[weekday] = tuple(pairs)
    holidays = draw(st.sets(st.dates(date(2025, 1, 1), date(2027, 12, 31)), max_size=30))
    tz = draw(st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe"]))
    return BusinessCalendar(name="random", tz=tz, hours=hours, holidays=holidays)


@settings(max_examples=150)
@given(random_calendars(), instants, durations)
def test_properties_hold_for_random_calendars(calendar: BusinessCalendar, start: datetime, d: timedelta) -> None:
    weekly = sum((_length(s, e) for spans in calendar.hours.values() for s, e in spans), timedelta(0))
    d = min(d, weekly * 100)  # ~2 years of this calendar: well inside the 30-year walk limit
    due = calendar.add(start, d)
    assert due >= start
    assert calendar.working_time_between(start, due) == d
    if d:
        tick = timedelta(microseconds=1)
        assert calendar.is_working(due) or calendar.is_working(due - tick)
    assert BusinessCalendar.from_json(calendar.to_json()) == calendar
