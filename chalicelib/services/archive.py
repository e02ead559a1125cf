"""The archive job: tickets resolved `after_days` ago and still resolved, copied whole to the archive (≥ 3 years)."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..domain.ticket import Ticket, iso
from ..ports import Clock, TicketRepository
from .resolutions import Resolution, ResolutionStore, days_back

logger = logging.getLogger(__name__)

JOB = "archive"
PREFIX = "tickets"
DONE_STATUSES = frozenset({"resolved", "closed"})


class ArchiveObjects(Protocol):
    """Where archived documents go (S3: the Object Lock bucket KEFU_ARCHIVE_BUCKET)."""

    def put_json(self, key: str, document: dict[str, Any]) -> None: ...


def archive_key(day: str, ticket_id: str) -> str:
    """`20261024`, `APP-20261023-000001` → `tickets/2026/10/24/APP-20261023-000001.json`."""
    return f"{PREFIX}/{day[:4]}/{day[4:6]}/{day[6:8]}/{ticket_id}.json"


def last_resolution(ticket: Ticket) -> str:
    """The key (at#seq) of the ticket's latest `resolve` timeline entry; "" if it has none."""
    return max((e.key for e in ticket.timeline + ticket.new_timeline if e.action == "resolve"), default="")


class ArchiveService:
    """记录保存期限不少于3年：每日把 `after_days` 天前解决、至今仍已解决的工单整体写入归档桶。

    The days looked at are the `window_days` business days ending `after_days` before today, oldest first; a
    day is marked done (JOB#archive#{day}) once its resolutions are archived, so a rerun does nothing and a day
    a failed run missed is caught up by the next runs while it is still in the window. Reads: one Query per day
    (RESOLVED#{day}) and one per ticket; no Scan. Nothing is deleted from the table: the archive is a copy.
    """

    def __init__(
        self,
        tickets: TicketRepository,
        resolutions: ResolutionStore,
        objects: ArchiveObjects,
        clock: Clock,
        zone: ZoneInfo,
        after_days: int = 30,
        window_days: int = 7,
    ) -> None:
        if after_days < 0 or window_days < 1:
            raise ValueError(f"after_days must be ≥ 0 and window_days ≥ 1, not {after_days} and {window_days}")
        self.tickets = tickets
        self.resolutions = resolutions
        self.objects = objects
        self.clock = clock
        self.zone = zone
        self.after_days = after_days
        self.window_days = window_days

    def days(self) -> list[str]:
        """YYYYMMDD of the window, oldest first: today − after_days − window_days + 1 … today − after_days."""
        today = self.clock.now().astimezone(self.zone).date()
        return days_back(today, self.after_days, self.after_days + self.window_days - 1)

    def run(self) -> dict[str, int]:
        counts = {"days": 0, "archived": 0, "skipped_reopened": 0, "missing": 0}
        for day in self.days():
            if self.resolutions.day_done(JOB, day):
                continue
            self._archive_day(day, counts)
            self.resolutions.mark_day_done(JOB, day, iso(self.clock.now()))
            counts["days"] += 1
        if counts["days"]:
            logger.info("archive: %s", counts)
        return counts

    def _archive_day(self, day: str, counts: dict[str, int]) -> None:
        by_ticket: dict[str, list[Resolution]] = defaultdict(list)
        for resolution in self.resolutions.of_day(day):
            by_ticket[resolution.ticket_id].append(resolution)
        for ticket_id, resolutions in sorted(by_ticket.items()):
            ticket = self.tickets.find(ticket_id)
            if ticket is None:
                counts["missing"] += len(resolutions)
                logger.warning("archive: ticket %s resolved on %s no longer exists", ticket_id, day)
                continue
            latest = last_resolution(ticket)
            for resolution in resolutions:
                # Reopened since (now open, or resolved again later): the later resolution is filed under its own
                # day and archives the ticket then, so each ticket lands once, under the day of its last resolution.
                if ticket.status not in DONE_STATUSES or resolution.key != latest:
                    counts["skipped_reopened"] += 1
                    continue
                document = {
                    **ticket.to_json(),
                    "archived_at": iso(self.clock.now()),
                    "resolution": resolution.key,
                    "resolution_day": day,
                }
                self.objects.put_json(archive_key(day, ticket_id), document)
                counts["archived"] += 1
