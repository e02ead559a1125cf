"""The SLA policy: how long each clock runs, with defaults from the requirements and JSON overrides."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .calendar import BusinessCalendar
from .durations import parse_duration
from .errors import ValidationError

PRIORITIES = ("P0", "P1", "P2")
ALWAYS = "24x7"
# Optional policy keys (never required; absent keys keep the defaults of the SlaPolicy fields).
OPTIONAL_KEYS = (
    "calendars",
    "business_calendar",
    "channel_calendars",
    "calendar_clocks",
    "escalation_period",
    "warning_ratio",
)

DEFAULT_POLICY: dict[str, Any] = {
    "ack": "PT30M",
    "progress": "PT4H",
    "urgent_ack": "PT30M",
    "callback": "PT24H",
    "first_response": {"P0": "PT2H", "P1": "PT4H", "P2": "PT24H"},
    "resolution": {"P0": "PT24H", "P1": "PT48H", "P2": "PT72H"},
}


@dataclass(frozen=True)
class SlaPolicy:
    """Durations of every clock; per-priority ones keyed by P0/P1/P2."""

    ack: timedelta
    progress: timedelta
    urgent_ack: timedelta
    callback: timedelta
    first_response: dict[str, timedelta] = field(default_factory=dict)
    resolution: dict[str, timedelta] = field(default_factory=dict)
    # Optional keys (docs/CLOCKS.md): business calendars and escalation periods; unset = every clock 24×7.
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)
    business_calendar: str = ALWAYS
    channel_calendars: dict[str, str] = field(default_factory=lambda: {"HOTLINE": ALWAYS})
    calendar_clocks: tuple[str, ...] = ("first_response", "resolution")
    escalation_period: dict[str, timedelta] = field(default_factory=dict)
    warning_ratio: float = 0.8

    def calendar_named(self, name: str) -> BusinessCalendar:
        """A calendar of the policy's `calendars`, or a built-in (`24x7`, `china_office`)."""
        if name in self.calendars:
            return self.calendars[name]
        if name == ALWAYS:
            return BusinessCalendar.always()
        if name == "china_office":
            return BusinessCalendar.china_office()
        raise ValidationError(f"unknown calendar {name!r}")

    def calendar_for(self, channel: str, clock: str) -> BusinessCalendar:
        """The calendar a clock of a ticket on `channel` counts in: 24×7 unless it is a calendar clock."""
        if clock not in self.calendar_clocks:
            return self.calendar_named(ALWAYS)
        return self.calendar_named(self.channel_calendars.get(channel.upper(), self.business_calendar))

    def escalation_period_for(self, clock: str) -> timedelta | None:
        """How long each escalation level of `clock` gets; None means the clock's own duration again."""
        return self.escalation_period.get(clock, self.escalation_period.get("*"))

    @classmethod
    def from_mapping(cls, overrides: dict[str, Any] | None = None) -> SlaPolicy:
        """Defaults, with any key of `overrides` replacing its default (per-priority maps merge)."""
        merged: dict[str, Any] = json.loads(json.dumps(DEFAULT_POLICY))
        overrides = dict(overrides or {})
        options = _clock_options({k: overrides.pop(k) for k in OPTIONAL_KEYS if k in overrides})
        for key, value in overrides.items():
            if key not in merged:
                raise ValidationError(f"unknown SLA policy key {key!r}")
            if isinstance(merged[key], dict):
                if not isinstance(value, dict) or not set(value) <= set(PRIORITIES):
                    raise ValidationError(f"SLA policy {key!r} must map P0/P1/P2 to durations")
                merged[key].update(value)
            else:
                merged[key] = value
        return cls(
            ack=parse_duration(merged["ack"]),
            progress=parse_duration(merged["progress"]),
            urgent_ack=parse_duration(merged["urgent_ack"]),
            callback=parse_duration(merged["callback"]),
            first_response={p: parse_duration(v) for p, v in merged["first_response"].items()},
            resolution={p: parse_duration(v) for p, v in merged["resolution"].items()},
            **options,
        )

    @classmethod
    def from_file(cls, path: str) -> SlaPolicy:
        """Reads a JSON overrides file (KEFU_SLA_POLICY_FILE)."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValidationError(f"cannot read SLA policy file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValidationError("SLA policy file must hold a JSON object")
        return cls.from_mapping(data)


def _clock_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Validates the optional calendar/escalation keys into SlaPolicy keyword arguments."""
    options: dict[str, Any] = {}
    calendars: dict[str, BusinessCalendar] = {}
    if "calendars" in raw:
        if not isinstance(raw["calendars"], dict):
            raise ValidationError("SLA policy 'calendars' must map names to calendars")
        for name, spec in raw["calendars"].items():
            data = dict(spec) if isinstance(spec, dict) else spec
            if isinstance(data, dict):
                data.setdefault("name", name)
            calendars[str(name)] = BusinessCalendar.from_json(data)
        options["calendars"] = calendars
    known = {ALWAYS, "china_office", *calendars}
    if "business_calendar" in raw:
        if raw["business_calendar"] not in known:
            raise ValidationError(f"SLA policy 'business_calendar' must name one of {', '.join(sorted(known))}")
        options["business_calendar"] = raw["business_calendar"]
    if "channel_calendars" in raw:
        value = raw["channel_calendars"]
        if not isinstance(value, dict) or not all(v in known for v in value.values()):
            names = ", ".join(sorted(known))
            raise ValidationError(f"SLA policy 'channel_calendars' must map channels to one of {names}")
        options["channel_calendars"] = {"HOTLINE": ALWAYS, **{str(k).upper(): v for k, v in value.items()}}
    if "calendar_clocks" in raw:
        value = raw["calendar_clocks"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("SLA policy 'calendar_clocks' must be a list of clock names")
        options["calendar_clocks"] = tuple(value)
    if "escalation_period" in raw:
        value = raw["escalation_period"]
        periods = {"*": value} if isinstance(value, str) else value
        if not isinstance(periods, dict) or not all(isinstance(v, str) for v in periods.values()):
            raise ValidationError("SLA policy 'escalation_period' must be a duration or map clock names to durations")
        options["escalation_period"] = {str(k): parse_duration(v) for k, v in periods.items()}
    if "warning_ratio" in raw:
        value = raw["warning_ratio"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValidationError("SLA policy 'warning_ratio' must be a number between 0 and 1")
        options["warning_ratio"] = float(value)
    return options
