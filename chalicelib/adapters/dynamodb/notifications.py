"""DynamoDB items and store for staff notifications (STAFF#{id}/NOTIFY#…) and daily breach counts (METRIC#…)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pynamodb.attributes import BooleanAttribute, JSONAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from ...domain.errors import NotFound
from ...domain.ticket import iso, parse_iso
from ...services.notifications import Notification, NotificationPage
from .models import KefuItem
from .repository import _encode_cursor, listing_cursor, ticket_pk

NOTIFICATION_TTL = timedelta(days=90)


class NotificationItem(KefuItem, discriminator="notification"):
    """An in-app notification (pk STAFF#{staff}, sk NOTIFY#{id}; ids sort by time, so a Query is newest-first)."""

    notification_id = UnicodeAttribute()
    staff_id = UnicodeAttribute()
    at = UnicodeAttribute()
    notice_kind = UnicodeAttribute()
    title = UnicodeAttribute()
    ticket_id = UnicodeAttribute(null=True)
    clock = UnicodeAttribute(null=True)
    detail = JSONAttribute(null=True)
    read_at = UnicodeAttribute(null=True)
    pushed = BooleanAttribute(default=False)
    expires_at = TTLAttribute(null=True)


class BreachCountItem(KefuItem, discriminator="breach_count"):
    """Breaches of one clock on one day (pk METRIC#breaches#{YYYYMMDD}, sk COUNT#{clock})."""

    clock = UnicodeAttribute()
    value = NumberAttribute(default=0)


class BreachItem(KefuItem, discriminator="breach"):
    """One counted breach (pk METRIC#breaches#{YYYYMMDD}, sk BREACH#{ticket}#{clock}#{version}): counts once."""

    ticket_id = UnicodeAttribute()
    clock = UnicodeAttribute()
    version = NumberAttribute()
    at = UnicodeAttribute()


def metric_pk(day: str) -> str:
    return f"METRIC#breaches#{day}"


def _notification(item: NotificationItem) -> Notification:
    return Notification(
        id=item.notification_id,
        staff_id=item.staff_id,
        at=item.at,
        kind=item.notice_kind,
        title=item.title,
        ticket_id=item.ticket_id or "",
        clock=item.clock or "",
        detail=dict(item.detail or {}),
        read_at=item.read_at or "",
        pushed=bool(item.pushed),
    )


class DynamoNotificationStore:
    """NotificationStore over the single table: GetItem, Query, conditional Put/Update and TransactWrite only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, notification: Notification) -> bool:
        item = NotificationItem(
            pk=f"STAFF#{notification.staff_id}",
            sk=f"NOTIFY#{notification.id}",
            notification_id=notification.id,
            staff_id=notification.staff_id,
            at=notification.at,
            notice_kind=notification.kind,
            title=notification.title,
            ticket_id=notification.ticket_id or None,
            clock=notification.clock or None,
            detail=notification.detail or None,
            pushed=False,
            expires_at=parse_iso(notification.at) + NOTIFICATION_TTL,
        )
        try:
            item.save(condition=NotificationItem.pk.does_not_exist())
            return True
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        stored = NotificationItem.get(item.pk, item.sk, consistent_read=True)
        return not stored.pushed

    def mark_pushed(self, staff_id: str, notification_id: str) -> None:
        item = NotificationItem(pk=f"STAFF#{staff_id}", sk=f"NOTIFY#{notification_id}")
        item.update(actions=[NotificationItem.pushed.set(True)], condition=NotificationItem.pk.exists())

    def page(self, staff_id: str, limit: int, cursor: str | None) -> NotificationPage:
        result = NotificationItem.query(
            f"STAFF#{staff_id}",
            NotificationItem.sk.startswith("NOTIFY#"),
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=listing_cursor(cursor, None, f"STAFF#{staff_id}"),
        )
        items = [_notification(item) for item in result]
        return NotificationPage(items=items, next_cursor=_encode_cursor(result.last_evaluated_key))

    def mark_read(self, staff_id: str, notification_id: str, at: datetime) -> Notification:
        key = (f"STAFF#{staff_id}", f"NOTIFY#{notification_id}")
        try:
            item = NotificationItem.get(*key, consistent_read=True)
        except DoesNotExist as exc:
            raise NotFound(f"no notification {notification_id}") from exc
        if not item.read_at:
            try:
                item.update(
                    actions=[NotificationItem.read_at.set(iso(at))], condition=NotificationItem.read_at.does_not_exist()
                )
            except UpdateError as exc:  # read meanwhile by another tab: keep the first time
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                item = NotificationItem.get(*key, consistent_read=True)
        return _notification(item)

    def count_breach(self, day: str, ticket_id: str, clock: str, version: int, at: str) -> bool:
        marker = BreachItem(
            pk=metric_pk(day),
            sk=f"BREACH#{ticket_id}#{clock}#{version}",
            ticket_id=ticket_id,
            clock=clock,
            version=version,
            at=at,
        )
        counter = BreachCountItem(pk=metric_pk(day), sk=f"COUNT#{clock}")
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.save(marker, condition=BreachItem.pk.does_not_exist())
                tx.update(
                    counter,
                    actions=[
                        BreachCountItem.value.add(1),
                        BreachCountItem.clock.set(clock),
                        BreachCountItem.kind.set(BreachCountItem),  # the discriminator (class → "breach_count")
                    ],
                )
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in (getattr(exc, "cancellation_reasons", None) or [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def breaches(self, day: str) -> dict[str, int]:
        """Breach counts of one day by clock name (one Query of the day's partition)."""
        found = BreachCountItem.query(metric_pk(day), BreachCountItem.sk.startswith("COUNT#"))
        return {item.clock: int(item.value) for item in found}


class DynamoClockMarks:
    """The conditional write the state machine makes at a warning, for the sweep (warned_at on the CLOCK item)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def warn_clock(self, ticket_id: str, name: str, version: int, at: datetime) -> bool:
        """Marks `warned_at` only if this run is still running and not yet warned; True if it won."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": ticket_pk(ticket_id)}, "sk": {"S": f"CLOCK#{name}"}},
                UpdateExpression="SET warned_at = :now",
                ConditionExpression="#state = :running AND #version = :version AND attribute_not_exists(warned_at)",
                ExpressionAttributeNames={"#state": "state", "#version": "version"},
                ExpressionAttributeValues={
                    ":running": {"S": "running"},
                    ":version": {"N": str(version)},
                    ":now": {"S": iso(at)},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
