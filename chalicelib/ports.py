"""Protocols the services depend on; adapters implement them (DynamoDB, Step Functions, SNS, SQS…)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .domain.ticket import Clock as TicketClock
from .domain.ticket import Ticket
from .domain.tiers import SpendRecord


class Clock(Protocol):
    """The source of 'now' — injected everywhere so tests control time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class DedupeRecord:
    """What a first delivery answered, replayed for every duplicate delivery."""

    key: str
    ticket_id: str
    message_id: str


@dataclass
class Customer:
    """A unified customer profile; identities are `kind:value` strings (phone:+86…, email:…, wechat_openid:…)."""

    id: str
    name: str = ""
    phone: str = ""
    email: str = ""
    tier: str = "normal"
    identities: list[str] = field(default_factory=list)
    created_at: str = ""
    merged_into: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


@dataclass
class StaffRecord:
    """A member of staff as the directory stores them."""

    id: str
    name: str
    roles: list[str]
    team: str = ""
    regions: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    online: bool = False
    email: str = ""
    phone: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "roles": list(self.roles),
            "team": self.team,
            "regions": list(self.regions),
            "skills": list(self.skills),
            "online": self.online,
        }


@dataclass(frozen=True)
class TicketPage:
    """One page of a ticket listing."""

    items: list[Ticket]
    next_cursor: str | None


@dataclass(frozen=True)
class TicketFilter:
    """What GET /api/tickets may filter on; each maps to a key or GSI (see docs/DATA_MODEL.md)."""

    status: str = ""
    assignee: str = ""
    customer_id: str = ""


class TicketRepository(Protocol):
    """Persistence of the ticket aggregate and its satellites (dedupe records, counters)."""

    def next_serial(self, channel: str, day: str) -> int: ...

    def get(self, ticket_id: str) -> Ticket: ...

    def find(self, ticket_id: str) -> Ticket | None: ...

    def create(self, ticket: Ticket, *, dedupe: DedupeRecord | None = None, dedupe_ttl: int = 0) -> None: ...

    def save(self, ticket: Ticket, *, dedupe: DedupeRecord | None = None, dedupe_ttl: int = 0) -> None: ...

    def get_dedupe(self, key: str) -> DedupeRecord | None: ...

    def list_page(self, flt: TicketFilter, limit: int, cursor: str | None) -> TicketPage: ...

    def open_tickets_of(self, customer_id: str, limit: int = 20) -> list[Ticket]: ...

    def due_clocks(self, before: datetime, limit: int = 100) -> list[tuple[str, TicketClock]]: ...

    def breach_clock(self, ticket_id: str, name: str, version: int, at: datetime) -> bool: ...


class CustomerRepository(Protocol):
    """Customers and the identity index that resolves any identity to one customer."""

    def find_by_identities(self, identities: Sequence[str]) -> str | None: ...

    def create(self, customer: Customer) -> None: ...

    def get(self, customer_id: str) -> Customer: ...

    def add_identities(self, customer_id: str, identities: Sequence[str]) -> None: ...


class StaffDirectory(Protocol):
    """The staff members kefu routes to and authorises."""

    def get(self, staff_id: str) -> StaffRecord | None: ...

    def all(self) -> list[StaffRecord]: ...

    def put(self, staff: StaffRecord) -> None: ...


class Timers(Protocol):
    """Starts and stops the durable timer (a Step Functions execution) behind a ticket's clock."""

    def start(self, ticket_id: str, clock: TicketClock) -> None: ...

    def stop(self, ticket_id: str, clock_name: str, version: int, level: int = 0) -> None: ...


class Publisher(Protocol):
    """Publishes a JSON document to a named topic (SNS in production)."""

    def publish(self, topic: str, message: dict[str, Any], *, subject: str = "") -> None: ...


class Queue(Protocol):
    """Sends a JSON document to a named queue (SQS in production)."""

    def send(self, queue: str, message: dict[str, Any], *, delay_seconds: int = 0) -> None: ...


@dataclass(frozen=True)
class Label:
    """A staff-confirmed (text, category) pair: labelled data for QA and for retraining the classifier."""

    ticket_id: str
    text: str
    category: str
    previous: str
    at: str
    actor: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "text": self.text,
            "category": self.category,
            "previous": self.previous or None,
            "at": self.at,
            "by": self.actor,
        }


@dataclass(frozen=True)
class StoredConfig:
    """An admin-edited JSON document (routing rules, priority rules) and who last changed it."""

    data: Any
    updated_at: str
    updated_by: str


@dataclass(frozen=True)
class CustomerTierFacts:
    """What the tiers job needs of a customer: their current tier and whether they are a member."""

    customer_id: str
    tier: str
    member: bool


class TriageStore(Protocol):
    """Triage's own records: labels, config documents, spend, the VIP index, and load/history counts."""

    def add_label(self, label: Label) -> None: ...

    def labels(self, months: Sequence[str], limit: int = 5000) -> list[Label]: ...

    def get_config(self, name: str) -> StoredConfig | None: ...

    def put_config(self, name: str, data: Any, at: datetime, actor: str) -> StoredConfig: ...

    def import_spend(self, records: Sequence[SpendRecord], at: datetime, actor: str) -> bool: ...

    def spend_records(self, months: Sequence[str]) -> list[SpendRecord]: ...

    def customer_tier_facts(self, customer_ids: Sequence[str]) -> dict[str, CustomerTierFacts]: ...

    def tier_holders(self, tier: str) -> list[str]: ...

    def set_tier(self, customer_id: str, tier: str, at: datetime) -> None: ...

    def customer_tickets_since(self, customer_id: str, since: datetime) -> list[Ticket]: ...

    def open_ticket_count(self, assignee: str) -> int: ...
