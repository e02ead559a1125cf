"""The ticket aggregate: statuses and transitions as data, messages, timeline and clocks."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import InvalidTransition, ValidationError

STATUSES = (
    "new",
    "assigned",
    "acknowledged",
    "in_progress",
    "waiting_on_customer",
    "pending_approval",
    "resolved",
    "closed",
)
OPEN_STATUSES = frozenset(STATUSES) - {"resolved", "closed"}
CATEGORIES = ("consultation", "complaint", "suggestion", "after_sales")
PRIORITIES = ("P0", "P1", "P2")
TIERS = ("normal", "member", "vip")

_WORKING = ("assigned", "acknowledged", "in_progress", "waiting_on_customer", "pending_approval")

# status -> action -> next status. An action missing here is illegal in that status (409).
TRANSITIONS: dict[str, dict[str, str]] = {
    "new": {
        "assign": "assigned",
        "ack": "acknowledged",
        "start": "in_progress",
        "reply": "in_progress",
        "resolve": "resolved",
        "close": "closed",
    },
    "assigned": {
        "assign": "assigned",
        "ack": "acknowledged",
        "start": "in_progress",
        "reply": "in_progress",
        "resolve": "resolved",
    },
    "acknowledged": {
        "assign": "assigned",
        "start": "in_progress",
        "reply": "in_progress",
        "wait_on_customer": "waiting_on_customer",
        "request_approval": "pending_approval",
        "resolve": "resolved",
    },
    "in_progress": {
        "assign": "assigned",
        "reply": "in_progress",
        "wait_on_customer": "waiting_on_customer",
        "request_approval": "pending_approval",
        "resolve": "resolved",
    },
    "waiting_on_customer": {
        "assign": "assigned",
        "reply": "waiting_on_customer",
        "customer_reply": "in_progress",
        "start": "in_progress",
        "resolve": "resolved",
    },
    "pending_approval": {
        "assign": "assigned",
        "reply": "pending_approval",
        "approve": "in_progress",
        "start": "in_progress",
        "resolve": "resolved",
    },
    "resolved": {"reopen": "in_progress", "customer_reply": "in_progress", "close": "closed"},
    "closed": {"reopen": "in_progress"},
}
# A customer's message on an open ticket that is not waiting on them changes nothing.
for _status in ("new", "assigned", "acknowledged", "in_progress", "pending_approval"):
    TRANSITIONS[_status].setdefault("customer_reply", _status)

# Which action moves a ticket to a status when staff ask for the status directly (POST /status).
STATUS_ACTIONS = {
    "in_progress": "start",
    "waiting_on_customer": "wait_on_customer",
    "pending_approval": "request_approval",
    "resolved": "resolve",
    "closed": "close",
    "acknowledged": "ack",
}

CLOCK_RUNNING, CLOCK_SATISFIED, CLOCK_BREACHED, CLOCK_STOPPED, CLOCK_PAUSED = (
    "running",
    "satisfied",
    "breached",
    "stopped",
    "paused",
)

TICKET_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,19}-[0-9]{8}-[0-9]{6}\Z")
CHANNEL_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,19}\Z")


def format_ticket_id(channel: str, day: str, serial: int) -> str:
    """`WECHAT`, `20261123`, 42 → `WECHAT-20261123-000042`."""
    if not CHANNEL_CODE.fullmatch(channel):
        raise ValidationError(f"channel code {channel!r} must be upper-case letters and digits")
    if not (len(day) == 8 and day.isascii() and day.isdigit()) or not 0 < serial <= 999_999:
        raise ValidationError(f"cannot format a ticket id from day={day!r} serial={serial}")
    return f"{channel}-{day}-{serial:06d}"


def is_ticket_id(text: str) -> bool:
    """True for a string of the `CHANNEL-YYYYMMDD-NNNNNN` shape."""
    return bool(TICKET_ID.fullmatch(text))


def iso(at: datetime) -> str:
    """UTC ISO 8601 with microseconds and a `Z`: sortable as text, the format of every stored time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """Inverse of iso(); accepts any ISO 8601 with an offset or Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))



def new_message_id() -> str:
    """A random message id, unique across the system."""
    return "m_" + secrets.token_hex(8)


@dataclass
class Message:
    """One message on a ticket: `in` from the customer, `out` from staff (sent on the channel)."""

    id: str
    direction: str  # in | out
    text: str
    at: str
    author: str
    channel: str
    attachments: list[dict[str, str]] = field(default_factory=list)
    delivery: str = ""  # out only: queued | sent | failed
    delivery_detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "text": self.text,
            "at": self.at,
            "author": self.author,
            "channel": self.channel,
            "attachments": self.attachments,
            **({"delivery": self.delivery, "delivery_detail": self.delivery_detail} if self.direction == "out" else {}),
        }


@dataclass
class TimelineEntry:
    """One recorded change: who did what, when, with details."""

    at: str
    seq: int
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.at}#{self.seq:04d}"

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "action": self.action, **self.detail}


@dataclass
class Note:
    """An internal note: staff only, never shown to the customer."""

    id: str
    text: str
    at: str
    author: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "at": self.at, "author": self.author}


@dataclass
class Clock:
    """One SLA clock of a ticket. `version` counts its runs: each (re)arm is a new run."""

    name: str
    version: int
    state: str
    due_at: str
    started_at: str
    ended_at: str = ""
    level: int = 0
    stored_state: str = ""  # state as loaded, for the conditional write ("" = new item)
    stored_version: int = 0

    @property
    def changed(self) -> bool:
        return (self.state, self.version) != (self.stored_state, self.stored_version) or not self.stored_state

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "due_at": self.due_at,
            "state": self.state,
            "version": self.version,
            "started_at": self.started_at,
            "ended_at": self.ended_at or None,
            "level": self.level,
        }


@dataclass
class Ticket:
    """The ticket aggregate. Mutating methods record timeline entries and check the transitions."""

    id: str
    channel: str
    source: str
    customer_id: str
    created_at: str
    status: str = "new"
    category: str = "consultation"
    priority: str = "P2"
    urgent: bool = False
    tier: str = "normal"
    team: str = "agents"
    assignee: str = ""
    subject: str = ""
    region: str = ""
    order_id: str = ""
    public_token: str = ""
    linked_tickets: list[str] = field(default_factory=list)
    work_order_id: str = ""
    first_response_at: str = ""
    acknowledged_at: str = ""
    resolved_at: str = ""
    updated_at: str = ""
    last_customer_message_at: str = ""
    version: int | None = None  # optimistic lock, owned by the repository
    attributes: dict[str, Any] = field(default_factory=dict)  # free-form extras (tags, skills, …)
    messages: list[Message] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    clocks: dict[str, Clock] = field(default_factory=dict)
    new_messages: list[Message] = field(default_factory=list)
    new_notes: list[Note] = field(default_factory=list)
    new_timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def record(self, at: datetime, actor: str, action: str, **detail: Any) -> TimelineEntry:
        """Appends a timeline entry (persisted with the next save)."""
        seq = len(self.timeline) + len(self.new_timeline)
        entry = TimelineEntry(at=iso(at), seq=seq, actor=actor, action=action, detail=detail)
        self.new_timeline.append(entry)
        self.updated_at = entry.at
        return entry

    def apply(self, action: str, at: datetime, actor: str, **detail: Any) -> str:
        """Moves the status by `action` per TRANSITIONS and records it; returns the new status."""
        allowed = TRANSITIONS[self.status]
        if action not in allowed:
            raise InvalidTransition(
                f"cannot {action.replace('_', ' ')} a ticket that is {self.status.replace('_', ' ')}"
            )
        before, self.status = self.status, allowed[action]
        if before != self.status:
            detail = {"from": before, "to": self.status, **detail}
        self.record(at, actor, action, **detail)
        return self.status

    def can(self, action: str) -> bool:
        return action in TRANSITIONS[self.status]

    def add_message(
        self,
        direction: str,
        text: str,
        at: datetime,
        author: str,
        *,
        message_id: str = "",
        attachments: list[dict[str, str]] | None = None,
        channel: str = "",
    ) -> Message:
        message = Message(
            id=message_id or new_message_id(),
            direction=direction,
            text=text,
            at=iso(at),
            author=author,
            channel=channel or self.channel,
            attachments=list(attachments or []),
            delivery="queued" if direction == "out" else "",
        )
        self.new_messages.append(message)
        if direction == "in":
            self.last_customer_message_at = message.at
        return message

    def add_note(self, text: str, at: datetime, author: str) -> Note:
        note = Note(id="n_" + secrets.token_hex(6), text=text, at=iso(at), author=author)
        self.new_notes.append(note)
        return note

    def arm_clock(self, name: str, at: datetime, duration: timedelta, *, level: int = 0) -> Clock:
        """Starts (or restarts, as a new version) the named clock due `duration` from `at`."""
        current = self.clocks.get(name)
        version = (current.version + 1) if current else 1
        clock = Clock(
            name=name,
            version=version,
            state=CLOCK_RUNNING,
            due_at=iso(at + duration),
            started_at=iso(at),
            level=level,
            stored_state=current.stored_state if current else "",
            stored_version=current.stored_version if current else 0,
        )
        self.clocks[name] = clock
        return clock

    def end_clock(self, name: str, at: datetime, state: str = CLOCK_SATISFIED) -> Clock | None:
        """Marks a running clock satisfied (or stopped); a clock not running is left as it is."""
        clock = self.clocks.get(name)
        if clock is None or clock.state != CLOCK_RUNNING:
            return None
        self.clocks[name] = replace(clock, state=state, ended_at=iso(at))
        return self.clocks[name]

    def public_view(self) -> dict[str, Any]:
        """What the customer may see: no internal notes, no staff names, no internal timeline."""
        return {
            "id": self.id,
            "status": self.status,
            "category": self.category,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "messages": [
                {"direction": m.direction, "text": m.text, "at": m.at}
                for m in sorted(self.messages + self.new_messages, key=lambda m: m.at)
                if m.delivery != "failed"
            ],
        }

    def to_json(self) -> dict[str, Any]:
        """The staff view of the ticket (CONTRACT.md's ticket JSON)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "source": self.source,
            "status": self.status,
            "category": self.category,
            "priority": self.priority,
            "urgent": self.urgent,
            "tier": self.tier,
            "team": self.team,
            "assignee": self.assignee or None,
            "customer_id": self.customer_id,
            "subject": self.subject,
            "region": self.region,
            "order_id": self.order_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "acknowledged_at": self.acknowledged_at or None,
            "first_response_at": self.first_response_at or None,
            "resolved_at": self.resolved_at or None,
            "linked_tickets": list(self.linked_tickets),
            "work_order_id": self.work_order_id or None,
            "attributes": dict(self.attributes),
            "version": self.version,
            "messages": [m.to_json() for m in sorted(self.messages + self.new_messages, key=lambda m: m.at)],
            "notes": [n.to_json() for n in sorted(self.notes + self.new_notes, key=lambda n: n.at)],
            "timeline": [
                e.to_json() for e in sorted(self.timeline + self.new_timeline, key=lambda e: e.key)
            ],
            "clocks": [c.to_json() for c in sorted(self.clocks.values(), key=lambda c: c.name)],
        }

    def summary(self) -> dict[str, Any]:
        """The list view: the ticket fields without messages, notes and timeline."""
        full = self.to_json()
        for heavy in ("messages", "notes", "timeline"):
            full.pop(heavy)
        return full
