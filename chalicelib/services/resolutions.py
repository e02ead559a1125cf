"""The resolutions-by-day index: every resolution, filed under its business day, for the daily jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..domain.ticket import parse_iso


@dataclass(frozen=True)
class Resolution:
    """One resolution of one ticket: its timeline key (at#seq) and time."""

    ticket_id: str
    key: str
    at: str


class ResolutionStore(Protocol):
    """RESOLVED#{day} items, and the markers daily jobs leave on the days they finished."""

    def record(self, day: str, resolution: Resolution) -> bool: ...

    def of_day(self, day: str) -> list[Resolution]: ...

    def mark_day_done(self, job: str, day: str, at: str) -> bool: ...

    def day_done(self, job: str, day: str) -> bool: ...


def day_of(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y%m%d")


def days_back(today: date, first: int, last: int) -> list[str]:
    """YYYYMMDD of `today - first` … `today - last` days, oldest first."""
    return [(today - timedelta(days=n)).strftime("%Y%m%d") for n in range(last, first - 1, -1)]


class ResolutionIndex:
    """Files each committed `resolve` timeline entry under its business day (idempotent per resolution)."""

    def __init__(self, store: ResolutionStore, zone: ZoneInfo) -> None:
        self.store = store
        self.zone = zone

    def on_resolved(self, image: dict[str, Any]) -> bool:
        at = str(image["at"])
        resolution = Resolution(str(image["ticket_id"]), f"{at}#{int(image.get('seq', 0)):04d}", at)
        return self.store.record(day_of(parse_iso(at), self.zone), resolution)
