"""DynamoDB items for the resolutions-by-day index (RESOLVED#{day}) and the day markers of daily jobs (JOB#…)."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute

from ...services.resolutions import Resolution
from .models import KefuItem, put_if_absent


class ResolutionItem(KefuItem, discriminator="resolution"):
    """One resolution of one ticket (pk RESOLVED#{YYYYMMDD in KEFU_TIMEZONE}, sk {ticket}#{resolution key})."""

    ticket_id = UnicodeAttribute()
    resolution = UnicodeAttribute()
    at = UnicodeAttribute()


class JobDayItem(KefuItem, discriminator="job_day"):
    """A daily job's day, done (pk JOB#{job}#{YYYYMMDD}, sk DONE): a rerun of that day does nothing."""

    at = UnicodeAttribute()


class DynamoResolutionStore:
    """ResolutionStore: conditional PutItems and one Query per day partition."""

    def record(self, day: str, resolution: Resolution) -> bool:
        return put_if_absent(
            ResolutionItem(
                pk=f"RESOLVED#{day}",
                sk=f"{resolution.ticket_id}#{resolution.key}",
                ticket_id=resolution.ticket_id,
                resolution=resolution.key,
                at=resolution.at,
            )
        )

    def of_day(self, day: str) -> list[Resolution]:
        return [
            Resolution(item.ticket_id, item.resolution, item.at)
            for item in ResolutionItem.query(f"RESOLVED#{day}", consistent_read=True)
        ]

    def mark_day_done(self, job: str, day: str, at: str) -> bool:
        return put_if_absent(JobDayItem(pk=f"JOB#{job}#{day}", sk="DONE", at=at))

    def day_done(self, job: str, day: str) -> bool:
        return JobDayItem.count(f"JOB#{job}#{day}", JobDayItem.sk == "DONE") > 0
