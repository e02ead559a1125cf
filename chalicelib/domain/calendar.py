"""Business calendars: working hours, holidays and make-up days; SLA deadlines in working time."""

# Conventions (every function here):
#
# * Inputs must be timezone-aware datetimes (any zone); a naive datetime is a ValidationError.
# * Every returned datetime is timezone-aware **UTC** (ready for `ticket.iso`).
# * Working intervals are half-open `[start, end)`: at 18:00 on a 09:00–18:00 day the office is closed.
# * `add(start, d)` lands exactly on the end of a working interval when the budget runs out there
#   (Friday 17:00 + 1h → Friday 18:00, not Monday 09:00). A zero duration returns the next working
#   instant (the start itself when it is working time), so a clock armed at night is due at opening.
# * A holiday has no working hours whatever its weekday; a make-up working day (调休上班) uses
#   the hours of the calendar's first Monday–Friday weekday that has hours (normally Monday's).
#   A date cannot be both.
# * Loops jump interval by interval (a day at a time), never minute by minute. A run of more than
#   `MAX_IDLE_DAYS` days without any working time raises ValidationError (a calendar that never opens).
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import holidays_cn
from .errors import ValidationError

DAY_SECONDS = 86_400
MAX_IDLE_DAYS = 3 * 366  # consecutive days without working time before we give up
MAX_SPAN_DAYS = 30 * 366  # no single computation walks further than this
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZERO = timedelta(0)

Interval = tuple[time, time]
_HHMM = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")


def _default_hours() -> dict[int, tuple[Interval, ...]]:
    return {day: ((time(9), time(18)),) for day in range(5)}


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def _aware(at: datetime, what: str = "datetime") -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime, got {at!r}")
    return at.astimezone(UTC)


def _normalise_day(weekday: int, intervals: Sequence[Interval]) -> tuple[tuple[int, int], ...]:
    """Intervals as sorted (start, end) seconds of the day; an end of 00:00 means 24:00."""
    spans: list[tuple[int, int]] = []
    for interval in intervals:
        if not (isinstance(interval, tuple | list) and len(interval) == 2):
            raise ValidationError(f"working hours of {WEEKDAYS[weekday]} must be (start, end) pairs")
        start, end = interval
        if not isinstance(start, time) or not isinstance(end, time):
            raise ValidationError(f"working hours of {WEEKDAYS[weekday]} must be times")
        if start.tzinfo is not None or end.tzinfo is not None or start.microsecond or end.microsecond:
            raise ValidationError("working hours are naive wall-clock times in whole seconds")
        s, e = _seconds(start), _seconds(end) or DAY_SECONDS
        if not s < e:
            raise ValidationError(f"working hours of {WEEKDAYS[weekday]}: {start} is not before {end}")
        spans.append((s, e))
    spans.sort()
    for (_, first_end), (second_start, _) in pairwise(spans):
        if second_start < first_end:
            raise ValidationError(f"working hours of {WEEKDAYS[weekday]} overlap")
    return tuple(spans)


@dataclass(frozen=True)
class BusinessCalendar:
    """When a team works: weekly hours in a time zone, minus holidays, plus make-up working days.

    `hours` maps a weekday (0 = Monday … 6 = Sunday) to its (start, end) wall-clock intervals; a
    weekday missing from it is a day off. An end of `time(0)` means midnight at the end of the day.
    """

    name: str
    tz: str = "Asia/Shanghai"
    hours: Mapping[int, Sequence[Interval]] = field(default_factory=_default_hours)
    holidays: AbstractSet[date] = frozenset()
    makeup_days: AbstractSet[date] = frozenset()
    always_open: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("a calendar needs a name")
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValidationError(f"unknown time zone {self.tz!r}") from exc
        if not isinstance(self.hours, Mapping):
            raise ValidationError("hours must map weekdays 0-6 to intervals")
        weekly: dict[int, tuple[tuple[int, int], ...]] = {}
        for weekday, intervals in self.hours.items():
            if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
                raise ValidationError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday!r}")
            weekly[weekday] = _normalise_day(weekday, intervals)
        holidays = frozenset(self.holidays)
        makeup = frozenset(self.makeup_days)
        for day in holidays | makeup:
            if not isinstance(day, date) or isinstance(day, datetime):
                raise ValidationError(f"holidays and make-up days must be dates, got {day!r}")
        if holidays & makeup:
            clash = min(holidays & makeup)
            raise ValidationError(f"{clash.isoformat()} cannot be both a holiday and a make-up working day")
        makeup_spans = next((weekly[d] for d in range(5) if weekly.get(d)), ())
        if makeup and not makeup_spans:
            raise ValidationError("make-up working days need hours on at least one weekday (Mon-Fri)")
        # Canonical, immutable forms (eq/repr see the normalised values).
        canonical = {
            d: tuple((_time_of(s), _time_of(e)) for s, e in spans) for d, spans in sorted(weekly.items()) if spans
        }
        object.__setattr__(self, "hours", canonical)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "makeup_days", makeup)
        object.__setattr__(self, "always_open", bool(self.always_open))
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_weekly", {d: s for d, s in weekly.items() if s})
        object.__setattr__(self, "_makeup_spans", makeup_spans)

    def __hash__(self) -> int:
        hours = tuple(sorted((day, tuple(spans)) for day, spans in self.hours.items()))
        return hash((self.name, self.tz, hours, self.holidays, self.makeup_days, self.always_open))

    # ----------------------------------------------------------------- constructors

    @classmethod
    def always(cls, name: str = "24x7") -> BusinessCalendar:
        """Open every instant (the hotline): working time is plain elapsed time."""
        return cls(name=name, tz="UTC", hours={}, always_open=True)

    @classmethod
    def china_office(
        cls,
        tz: str = "Asia/Shanghai",
        hours: Interval = (time(9), time(18)),
        *,
        name: str = "china_office",
    ) -> BusinessCalendar:
        """Mon–Fri office hours with China's public holidays and make-up working days (holidays_cn)."""
        return cls(
            name=name,
            tz=tz,
            hours={day: (hours,) for day in range(5)},
            holidays=holidays_cn.HOLIDAYS,
            makeup_days=holidays_cn.MAKEUP_WORKDAYS,
        )

    @classmethod
    def from_json(cls, data: Any) -> BusinessCalendar:
        """Builds a calendar from its JSON form (see to_json); raises ValidationError when malformed.

        `{"name", "tz", "always_open", "hours": {"mon": [["09:00", "18:00"]], …}, "holidays": [ISO dates],
        "makeup_days": [ISO dates], "cn_holidays": bool}`. Without `hours` the default Mon–Fri 09:00–18:00
        applies; `cn_holidays: true` adds China's official holidays and make-up days to the lists given.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("a calendar must be a JSON object")
        known = {"name", "tz", "always_open", "hours", "holidays", "makeup_days", "cn_holidays"}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(f"unknown calendar keys: {', '.join(sorted(map(str, unknown)))}")
        name = data.get("name")
        if not isinstance(name, str):
            raise ValidationError("calendar name must be a string")
        tz = data.get("tz", "Asia/Shanghai")
        if not isinstance(tz, str):
            raise ValidationError("calendar tz must be a string such as 'Asia/Shanghai'")
        always_open = data.get("always_open", False)
        cn_holidays = data.get("cn_holidays", False)
        if not isinstance(always_open, bool) or not isinstance(cn_holidays, bool):
            raise ValidationError("always_open and cn_holidays must be booleans")
        hours: dict[int, tuple[Interval, ...]] = _default_hours()
        if "hours" in data:
            hours = _hours_from_json(data["hours"])
        holidays = set(_dates_from_json(data.get("holidays", []), "holidays"))
        makeup = set(_dates_from_json(data.get("makeup_days", []), "makeup_days"))
        if cn_holidays:
            holidays |= holidays_cn.HOLIDAYS - makeup
            makeup |= holidays_cn.MAKEUP_WORKDAYS - holidays
        return cls(
            name=name, tz=tz, hours=hours, holidays=holidays, makeup_days=makeup, always_open=always_open
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form read by from_json (holidays listed explicitly, sorted)."""
        return {
            "name": self.name,
            "tz": self.tz,
            "always_open": self.always_open,
            "hours": {
                WEEKDAYS[d]: [[_hhmm(s), _hhmm(e, end=True)] for s, e in intervals]
                for d, intervals in sorted(self.hours.items())
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "makeup_days": sorted(d.isoformat() for d in self.makeup_days),
        }

    # ----------------------------------------------------------------- queries

    def is_working(self, at: datetime) -> bool:
        """True when `at` lies inside a working interval (start included, end excluded)."""
        at = _aware(at)
        if self.always_open:
            return True
        local_day = at.astimezone(self._zone_info).date()
        return any(start <= at < end for start, end in self._day_intervals(local_day))

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself (in UTC) when working, else the start of the next working interval."""
        at = _aware(at)
        if self.always_open:
            return at
        for start, _ in self._intervals_from(at):
            return start
        raise AssertionError("unreachable: _intervals_from raises rather than ending")  # pragma: no cover

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of working time has elapsed since `start` (UTC)."""
        start = _aware(start, "start")
        if not isinstance(duration, timedelta) or duration < ZERO:
            raise ValidationError(f"duration must be a non-negative timedelta, got {duration!r}")
        if self.always_open:
            return start + duration
        left = duration
        for begin, end in self._intervals_from(start):
            span = end - begin
            if left <= span:
                return begin + left
            left -= span
        raise AssertionError("unreachable: _intervals_from raises rather than ending")  # pragma: no cover

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time within [a, b); zero when b is not after a."""
        a, b = _aware(a, "a"), _aware(b, "b")
        if b <= a:
            return ZERO
        if self.always_open:
            return b - a
        total = ZERO
        for begin, end in self._intervals_from(a, until=b):
            if begin >= b:
                break
            total += min(end, b) - begin
        return total

    def remaining(self, due_at: datetime, at: datetime) -> timedelta:
        """Working time left at `at` until `due_at`; zero once due (never negative)."""
        return self.working_time_between(at, due_at)

    def resume_deadline(self, due_at: datetime, paused_at: datetime, resumed_at: datetime) -> datetime:
        """The deadline after a pause: `due_at` extended by the working time the pause lasted (UTC).

        A clock pauses while a ticket waits on the customer. Rules: a pause of no working time (zero
        length, or entirely at night / on a holiday) leaves the deadline as it was; a pause that began
        at or after the deadline does not revive a breached clock (returns `due_at`); the deadline
        never moves earlier.
        """
        due_at = _aware(due_at, "due_at")
        paused_at, resumed_at = _aware(paused_at, "paused_at"), _aware(resumed_at, "resumed_at")
        if resumed_at < paused_at:
            raise ValidationError("a pause cannot end before it began")
        if paused_at >= due_at:
            return due_at
        paused = self.working_time_between(paused_at, resumed_at)
        if paused == ZERO:
            return due_at
        return self.add(due_at, paused)

    # ----------------------------------------------------------------- internals

    @property
    def _zone_info(self) -> ZoneInfo:
        zone: ZoneInfo = self.__dict__["_zone"]
        return zone

    def _local(self, day: date, seconds: int) -> datetime:
        """Wall-clock `seconds` after local midnight of `day`, as UTC (24:00 = next midnight)."""
        if seconds >= DAY_SECONDS:
            day, seconds = day + timedelta(days=1), seconds - DAY_SECONDS
        hour, rest = divmod(seconds, 3600)
        wall = datetime.combine(day, time(hour, rest // 60, rest % 60), tzinfo=self._zone_info)
        return wall.astimezone(UTC)

    def _spans_of(self, day: date) -> tuple[tuple[int, int], ...]:
        if day in self.holidays:
            return ()
        if day in self.makeup_days:
            spans: tuple[tuple[int, int], ...] = self.__dict__["_makeup_spans"]
            return spans
        weekly: dict[int, tuple[tuple[int, int], ...]] = self.__dict__["_weekly"]
        return weekly.get(day.weekday(), ())

    def _day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The UTC working intervals of a local date, ordered and non-overlapping even across DST."""
        result: list[tuple[datetime, datetime]] = []
        for s, e in self._spans_of(day):
            begin, end = self._local(day, s), self._local(day, e)
            if result and begin < result[-1][1]:
                begin = result[-1][1]
            if end > begin:
                result.append((begin, end))
        return result

    def _intervals_from(self, at: datetime, until: datetime | None = None) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals ending after `at`, clipped to start no earlier than `at`, in order.

        Without `until` it raises ValidationError after MAX_IDLE_DAYS days in a row without working
        time; with `until` it stops at the first day starting at or after it.
        """
        day = at.astimezone(self._zone_info).date() - timedelta(days=1)
        idle = 0
        previous_end: datetime | None = None
        for _ in range(MAX_SPAN_DAYS):
            if until is not None and self._local(day, 0) >= until:
                return
            intervals = self._day_intervals(day)
            idle = 0 if intervals else idle + 1
            if until is None and idle > MAX_IDLE_DAYS:
                raise ValidationError(
                    f"calendar {self.name!r} has no working time for {MAX_IDLE_DAYS} days after {at.isoformat()}"
                )
            for begin, end in intervals:
                if previous_end is not None and begin < previous_end:
                    begin = previous_end
                if end <= at or end <= begin:
                    continue
                previous_end = end
                yield max(begin, at), end
            day += timedelta(days=1)
        raise ValidationError(f"calendar {self.name!r}: computation spans more than {MAX_SPAN_DAYS} days")


def _time_of(seconds: int) -> time:
    if seconds >= DAY_SECONDS:
        return time(0)
    hour, rest = divmod(seconds, 3600)
    return time(hour, rest // 60, rest % 60)


def _hhmm(value: time, *, end: bool = False) -> str:
    if end and value == time(0):
        return "24:00"
    text = f"{value.hour:02d}:{value.minute:02d}"
    return text + (f":{value.second:02d}" if value.second else "")


def _parse_hhmm(text: Any, *, end: bool) -> time:
    match = _HHMM.match(text) if isinstance(text, str) else None
    if not match:
        raise ValidationError(f"working hours must be 'HH:MM' strings, got {text!r}")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if end and (hour, minute, second) == (24, 0, 0):
        return time(0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValidationError(f"not a time of day: {text!r}")
    return time(hour, minute, second)


def _hours_from_json(data: Any) -> dict[int, tuple[Interval, ...]]:
    if not isinstance(data, Mapping):
        raise ValidationError("hours must be an object like {'mon': [['09:00', '18:00']]}")
    hours: dict[int, tuple[Interval, ...]] = {}
    for key, intervals in data.items():
        if key not in WEEKDAYS:
            raise ValidationError(f"hours keys must be one of {', '.join(WEEKDAYS)}, got {key!r}")
        if not isinstance(intervals, list):
            raise ValidationError(f"hours of {key} must be a list of [start, end] pairs")
        pairs: list[Interval] = []
        for pair in intervals:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValidationError(f"hours of {key} must be a list of [start, end] pairs")
            pairs.append((_parse_hhmm(pair[0], end=False), _parse_hhmm(pair[1], end=True)))
        hours[WEEKDAYS.index(key)] = tuple(pairs)
    return hours


def _dates_from_json(data: Any, what: str) -> Iterable[date]:
    if not isinstance(data, list):
        raise ValidationError(f"{what} must be a list of ISO dates")
    days: list[date] = []
    for item in data:
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError(item)
            days.append(date.fromisoformat(item))
        except ValueError as exc:
            raise ValidationError(f"{what}: not an ISO date (YYYY-MM-DD): {item!r}") from exc
    return days
