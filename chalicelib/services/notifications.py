"""Staff notifications: timeline entries (escalations, warnings, urgent alerts) → in-app list + SNS, breach counts."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..domain.errors import NotFound, ValidationError
from ..domain.ticket import parse_iso
from ..ports import Clock, Publisher

STAFF_TOPIC = "kefu-staff-notifications"
MAX_PAGE = 100
# Timeline actions that notify staff; EffectsDispatcher routes their EVT# inserts here.
NOTIFYING_ACTIONS = ("escalated", "clock_warning", "urgent_alert", "callback_task")
NOTIFICATION_ID = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{12}$")
CLOCK_LABELS = {
    "ack": "确认接收",
    "first_response": "首次响应",
    "resolution": "解决时限",
    "progress": "进度更新",
    "urgent": "紧急响应",
    "callback": "回访",
}


@dataclass
class Notification:
    """One in-app notification of one member of staff."""

    id: str
    staff_id: str
    at: str
    kind: str  # the timeline action: escalated | clock_warning | urgent_alert | callback_task
    title: str
    ticket_id: str = ""
    clock: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    read_at: str = ""
    pushed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "kind": self.kind,
            "title": self.title,
            "ticket_id": self.ticket_id or None,
            "clock": self.clock or None,
            "detail": dict(self.detail),
            "read": bool(self.read_at),
            "read_at": self.read_at or None,
        }


@dataclass(frozen=True)
class NotificationPage:
    """One page of a member's notifications, newest first."""

    items: list[Notification]
    next_cursor: str | None


class NotificationStore(Protocol):
    """Where notifications and breach counts live (DynamoDB: adapters/dynamodb/notifications.py)."""

    def add(self, notification: Notification) -> bool:
        """Stores it unless it exists; True when it still has to be pushed (new, or stored but not pushed)."""
        ...

    def mark_pushed(self, staff_id: str, notification_id: str) -> None: ...

    def page(self, staff_id: str, limit: int, cursor: str | None) -> NotificationPage: ...

    def mark_read(self, staff_id: str, notification_id: str, at: datetime) -> Notification: ...

    def count_breach(self, day: str, ticket_id: str, clock: str, version: int, at: str) -> bool:
        """Counts one breach of `clock` on `day` once per (ticket, clock, version); True if counted now."""
        ...

    def breaches(self, day: str) -> dict[str, int]: ...


def stream_detail(image: dict[str, Any]) -> dict[str, Any]:
    """A timeline item's `detail` from a stream image (a JSON attribute arrives as a JSON string)."""
    raw = image.get("detail") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return dict(raw) if isinstance(raw, dict) else {}


def notification_id(at: str, *parts: object) -> str:
    """Sortable by time and deterministic: the same entry and recipient always give the same id."""
    stamp = parse_iso(at).strftime("%Y%m%dT%H%M%S%fZ")
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12]
    return f"{stamp}-{digest}"


def _title(action: str, ticket_id: str, detail: dict[str, Any]) -> str:
    label = CLOCK_LABELS.get(str(detail.get("clock", "")), str(detail.get("clock", "")))
    if action == "clock_warning":
        return f"{ticket_id}：{label}即将超时（截止 {detail.get('due_at', '')}）"
    if action == "urgent_alert":
        return f"{ticket_id}：紧急工单，请在 {detail.get('due_at', '')} 前确认"
    if action == "callback_task":
        return f"{ticket_id}：客户满意度 {detail.get('score', '')} 分，请在 {detail.get('due_at', '')} 前回访"
    return f"{ticket_id}：{label}已超时，升级至第 {detail.get('level', '')} 级"


class NotificationService:
    """Turns notifying timeline entries into in-app notifications and SNS pushes; lists and marks them read."""

    def __init__(self, store: NotificationStore, publisher: Publisher, clock: Clock, zone: ZoneInfo) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.zone = zone

    def on_timeline_entry(self, image: dict[str, Any]) -> None:
        """An inserted EVT# item (stream image). Idempotent: redelivery creates and counts nothing twice."""
        action = str(image.get("action", ""))
        if action not in NOTIFYING_ACTIONS:
            return
        ticket_id, at = str(image["ticket_id"]), str(image["at"])
        detail = stream_detail(image)
        entry_key = f"{at}#{int(image.get('seq', 0)):04d}"
        if action == "escalated" and detail.get("clock"):
            day = parse_iso(at).astimezone(self.zone).strftime("%Y%m%d")
            version = int(detail.get("version", 0))
            self.store.count_breach(day, ticket_id, str(detail["clock"]), version, at)
        recipients = [str(r) for r in detail.get("recipients") or ([detail["to"]] if detail.get("to") else [])]
        for staff_id in dict.fromkeys(recipients):
            notice = Notification(
                id=notification_id(at, ticket_id, entry_key, staff_id),
                staff_id=staff_id,
                at=at,
                kind=action,
                title=_title(action, ticket_id, detail),
                ticket_id=ticket_id,
                clock=str(detail.get("clock", "")),
                detail=detail,
            )
            if self.store.add(notice):
                message = {"type": action, "to": staff_id, "ticket_id": ticket_id, "title": notice.title, **detail}
                self.publisher.publish(STAFF_TOPIC, message, subject=notice.title)
                self.store.mark_pushed(staff_id, notice.id)

    def list(self, staff_id: str, *, limit: int = 20, cursor: str | None = None) -> NotificationPage:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        return self.store.page(staff_id, limit, cursor)

    def mark_read(self, staff_id: str, notification_id: str) -> Notification:
        if not NOTIFICATION_ID.match(notification_id):
            raise NotFound(f"no notification {notification_id}")
        return self.store.mark_read(staff_id, notification_id, self.clock.now())
