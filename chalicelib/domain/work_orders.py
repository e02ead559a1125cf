"""After-sales work orders: types, status flows as data, devices, appointments, engineer matching, parts, SLA."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ConflictError, InvalidTransition, ValidationError
from .ticket import TimelineEntry, iso, parse_iso

TYPES = ("repair", "installation", "return", "exchange", "maintenance")

# Each type follows one flow; a flow is a table status -> action -> next status (an action missing is a 409).
FLOW_OF_TYPE = {
    "repair": "service",
    "installation": "service",
    "maintenance": "service",
    "return": "return",
    "exchange": "exchange",
}
_SERVICE: dict[str, dict[str, str]] = {
    "open": {"schedule": "scheduled", "wait_parts": "awaiting_parts", "cancel": "cancelled"},
    "scheduled": {
        "schedule": "scheduled",
        "start": "in_service",
        "complete": "completed",
        "wait_parts": "awaiting_parts",
        "cancel": "cancelled",
    },
    "in_service": {"schedule": "scheduled", "wait_parts": "awaiting_parts", "complete": "completed"},
    "awaiting_parts": {"schedule": "scheduled", "start": "in_service", "cancel": "cancelled"},
    "completed": {"close": "closed", "reopen": "open"},
    "closed": {},
    "cancelled": {},
}
_RETURN_FRONT: dict[str, dict[str, str]] = {
    "requested": {"approve": "approved", "reject": "rejected", "cancel": "cancelled"},
    "approved": {"ship": "in_transit", "receive": "received", "cancel": "cancelled"},
    "in_transit": {"receive": "received"},
    "rejected": {"close": "closed"},
    "closed": {},
    "cancelled": {},
}
TRANSITIONS: dict[str, dict[str, dict[str, str]]] = {
    "service": _SERVICE,
    "return": {**_RETURN_FRONT, "received": {"refund": "refunded"}, "refunded": {"close": "closed"}},
    "exchange": {**_RETURN_FRONT, "received": {"exchange": "exchanged"}, "exchanged": {"close": "closed"}},
}
INITIAL_STATUS = {"service": "open", "return": "requested", "exchange": "requested"}
STATUSES = tuple(dict.fromkeys(s for flow in TRANSITIONS.values() for s in flow))
# Statuses where nothing more is expected of staff: no SLA warning, no engineer load.
DONE_STATUSES = frozenset({"completed", "closed", "cancelled", "rejected", "refunded", "exchanged"})
# Statuses reached only through their own route (they need more than a status).
OWN_ROUTE = {"scheduled": "POST /api/work-orders/{id}/schedule", "completed": "POST /api/work-orders/{id}/complete"}
# Customer-facing wording of each status (工单进度).
STATUS_LABELS = {
    "open": "已受理,待安排",
    "scheduled": "已安排工程师上门",
    "in_service": "工程师服务中",
    "awaiting_parts": "等待备件",
    "completed": "服务已完成",
    "closed": "已关闭",
    "cancelled": "已取消",
    "requested": "申请已提交,待审核",
    "approved": "审核通过,待寄回",
    "rejected": "申请未通过",
    "in_transit": "商品寄回中",
    "received": "已收到退回商品",
    "refunded": "已退款",
    "exchanged": "已换货发出",
}

OVERDUE_AFTER = timedelta(hours=24)
MAX_PART_LINES = 20
MAX_QTY = 1_000
MAX_TEXT = 2_000
WORK_ORDER_ID = re.compile(r"^WO-[0-9]{8}-[0-9]{6}\Z")
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}\Z")
PART_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,39}\Z")
TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")


def format_work_order_id(day: str, serial: int) -> str:
    """`20261123`, 7 → `WO-20261123-000007`."""
    if not (len(day) == 8 and day.isascii() and day.isdigit()) or not 0 < serial <= 999_999:
        raise ValidationError(f"cannot format a work order id from day={day!r} serial={serial}")
    return f"WO-{day}-{serial:06d}"


def is_work_order_id(text: str) -> bool:
    return bool(WORK_ORDER_ID.fullmatch(text))


def text_field(value: object, name: str, limit: int = MAX_TEXT, *, required: bool = True) -> str:
    """A trimmed string of at most `limit` characters; '' when optional and absent."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(f"'{name}' is longer than {limit} characters")
    return value.strip()


def token_field(value: object, name: str, *, required: bool = False) -> str:
    """A lower-case code such as a region or skill (`east`, `air_purifier`)."""
    text = text_field(value, name, 40, required=required)
    if text and not TOKEN.fullmatch(text):
        raise ValidationError(f"'{name}' must be a lower-case code (letters, digits, _ and -)")
    return text


def quantity(value: object, name: str = "qty") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_QTY:
        raise ValidationError(f"'{name}' must be a whole number between 1 and {MAX_QTY}")
    return value


def part_number(value: object) -> str:
    if not isinstance(value, str) or not PART_NO.fullmatch(value):
        raise ValidationError("'part_no' must be 2-40 letters, digits, '.', '_' or '-'")
    return value


def serial_number(value: object) -> str:
    if not isinstance(value, str) or not SERIAL.fullmatch(value):
        raise ValidationError("a device serial number is 3-64 letters, digits, '.', '_' or '-'")
    return value


def parse_day(value: object, name: str) -> str:
    """An ISO calendar date (`2026-05-01`) or ''."""
    if value in (None, ""):
        return ""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ValidationError(f"'{name}' must be a date like 2026-05-01") from exc


def parse_local_time(value: object, name: str, zone: ZoneInfo) -> datetime:
    """ISO 8601; without an offset the time is read in the business time zone."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{name}' must be an ISO 8601 date-time")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"'{name}' must be an ISO 8601 date-time") from exc
    return at if at.tzinfo else at.replace(tzinfo=zone)


# --- values --------------------------------------------------------------------------------------------------


@dataclass
class HistoryEntry:
    """One line of a device's service history: an installation, repair, return… and its outcome."""

    at: str
    work_order_id: str
    kind: str
    summary: str
    engineer: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "work_order_id": self.work_order_id,
            "kind": self.kind,
            "summary": self.summary,
            "engineer": self.engineer or None,
            "parts": list(self.parts),
        }


@dataclass
class Device:
    """A device record (设备档案), keyed by serial number."""

    serial: str
    model: str
    customer_id: str = ""
    purchase_date: str = ""
    warranty_until: str = ""
    installed_at: str = ""
    address: str = ""
    region: str = ""
    updated_at: str = ""
    version: int | None = None
    history: list[HistoryEntry] = field(default_factory=list)

    def in_warranty(self, on: date) -> bool:
        return bool(self.warranty_until) and on <= date.fromisoformat(self.warranty_until)

    def to_json(self, on: date | None = None) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "model": self.model,
            "customer_id": self.customer_id or None,
            "purchase_date": self.purchase_date or None,
            "warranty_until": self.warranty_until or None,
            "in_warranty": self.in_warranty(on) if on else None,
            "installed_at": self.installed_at or None,
            "address": self.address or None,
            "region": self.region or None,
            "updated_at": self.updated_at or None,
            "history": [h.to_json() for h in sorted(self.history, key=lambda h: h.at)],
        }


def device_from_body(serial: str, body: Mapping[str, object], current: Device | None) -> Device:
    """A device record after a PUT: given fields replace, absent ones keep their current value."""
    base = current or Device(serial=serial, model="")
    model = text_field(body["model"], "model", 100) if "model" in body else base.model
    if not model:
        raise ValidationError("'model' is required for a new device")
    purchase = parse_day(body["purchase_date"], "purchase_date") if "purchase_date" in body else base.purchase_date
    warranty = parse_day(body["warranty_until"], "warranty_until") if "warranty_until" in body else base.warranty_until
    if purchase and warranty and warranty < purchase:
        raise ValidationError("'warranty_until' is before 'purchase_date'")
    return Device(
        serial=serial,
        model=model,
        customer_id=text_field(body.get("customer_id"), "customer_id", 100, required=False) or base.customer_id,
        purchase_date=purchase,
        warranty_until=warranty,
        installed_at=base.installed_at,
        address=text_field(body["address"], "address", 300, required=False) if "address" in body else base.address,
        region=token_field(body["region"], "region") if "region" in body else base.region,
        updated_at=base.updated_at,
        version=base.version,
        history=list(base.history),
    )


@dataclass(frozen=True)
class Appointment:
    """An on-site visit slot (服务预约), stored in UTC, shown in the business time zone too."""

    start: str
    end: str
    address: str
    region: str

    @classmethod
    def parse(cls, body: Mapping[str, object], zone: ZoneInfo, now: datetime) -> Appointment:
        start = parse_local_time(body.get("start"), "start", zone)
        end = parse_local_time(body.get("end"), "end", zone)
        if end <= start:
            raise ValidationError("'end' must be after 'start'")
        if end - start > timedelta(hours=12):
            raise ValidationError("an appointment slot is at most 12 hours long")
        if start < now:
            raise ValidationError("'start' is in the past")
        return cls(
            start=iso(start),
            end=iso(end),
            address=text_field(body.get("address"), "address", 300),
            region=token_field(body.get("region"), "region", required=True),
        )

    def to_json(self, zone: ZoneInfo) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "local_start": parse_iso(self.start).astimezone(zone).isoformat(),
            "local_end": parse_iso(self.end).astimezone(zone).isoformat(),
            "time_zone": zone.key,
            "address": self.address,
            "region": self.region,
        }


@dataclass
class PartLine:
    """Spare parts a work order holds: reserved from stock, then consumed on completion (or released)."""

    part_no: str
    reserved: int = 0
    consumed: int = 0
    released: int = 0

    @property
    def held(self) -> int:
        return self.reserved - self.consumed - self.released

    def to_json(self) -> dict[str, Any]:
        return {
            "part_no": self.part_no,
            "reserved": self.reserved,
            "consumed": self.consumed,
            "released": self.released,
            "held": self.held,
        }


@dataclass(frozen=True)
class Engineer:
    """What matching needs of an engineer: regions, skills, and how many open work orders they hold."""

    id: str
    regions: tuple[str, ...]
    skills: tuple[str, ...]
    open_orders: int = 0


def eligible(engineer: Engineer, region: str, skill: str) -> bool:
    return (region in engineer.regions or "*" in engineer.regions) and (not skill or skill in engineer.skills)


def match_engineer(engineers: Iterable[Engineer], region: str, skill: str) -> Engineer | None:
    """The engineer who covers the region and has the skill, with the fewest open orders; ties → staff id."""
    fits = [e for e in engineers if eligible(e, region, skill)]
    # An engineer who names the region beats one who covers every region ("*"), at equal load.
    return min(fits, key=lambda e: (e.open_orders, region not in e.regions, e.id), default=None)


# One recorded change of a work order (who, what, when, details): the same entry a ticket's timeline holds.
WorkOrderEvent = TimelineEntry


@dataclass
class WorkOrder:
    """The work order aggregate; every change goes through a method that checks the flow and records it."""

    id: str
    type: str
    ticket_id: str
    customer_id: str
    created_at: str
    created_by: str
    status: str = ""
    description: str = ""
    skill: str = ""
    region: str = ""
    device_serial: str = ""
    in_warranty: bool | None = None
    engineer: str = ""
    appointment: Appointment | None = None
    parts: list[PartLine] = field(default_factory=list)
    resolution: str = ""
    logistics: dict[str, str] = field(default_factory=dict)
    status_changed_at: str = ""
    updated_at: str = ""
    version: int | None = None
    timeline: list[WorkOrderEvent] = field(default_factory=list)
    new_timeline: list[WorkOrderEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValidationError(f"'type' must be one of {', '.join(TYPES)}")
        self.status = self.status or INITIAL_STATUS[self.flow]
        self.status_changed_at = self.status_changed_at or self.created_at
        self.updated_at = self.updated_at or self.created_at

    @property
    def flow(self) -> str:
        return FLOW_OF_TYPE[self.type]

    @property
    def is_open(self) -> bool:
        return self.status not in DONE_STATUSES

    def record(self, at: datetime, actor: str, action: str, **detail: Any) -> WorkOrderEvent:
        event = WorkOrderEvent(
            at=iso(at), seq=len(self.timeline) + len(self.new_timeline), actor=actor, action=action, detail=detail
        )
        self.new_timeline.append(event)
        self.updated_at = event.at
        return event

    def allowed(self) -> dict[str, str]:
        return TRANSITIONS[self.flow][self.status]

    def apply(self, action: str, at: datetime, actor: str, **detail: Any) -> str:
        """Moves the status by `action` per TRANSITIONS and records it; returns the new status."""
        allowed = self.allowed()
        if action not in allowed:
            raise InvalidTransition(f"cannot {action.replace('_', ' ')} a {self.type} work order that is {self.status}")
        before, self.status = self.status, allowed[action]
        if before != self.status:
            self.status_changed_at = iso(at)
            detail = {"from": before, "to": self.status, **detail}
        self.record(at, actor, action, **detail)
        return self.status

    def action_to(self, status: str) -> str:
        """The action that moves this order to `status` from where it is now."""
        if status not in STATUSES:
            raise ValidationError(f"'status' must be one of {', '.join(STATUSES)}")
        if status in OWN_ROUTE and self.flow == "service":
            raise ValidationError(f"status {status!r} is reached through {OWN_ROUTE[status]}")
        for action, target in self.allowed().items():
            if target == status:
                return action
        raise InvalidTransition(f"a {self.type} work order that is {self.status} cannot become {status}")

    def schedule(self, appointment: Appointment, engineer: str, at: datetime, actor: str) -> None:
        if self.flow != "service":
            raise InvalidTransition(f"a {self.type} work order has no on-site visit")
        previous = self.engineer
        self.apply("schedule", at, actor, start=appointment.start, end=appointment.end, region=appointment.region)
        self.appointment = appointment
        self.region = appointment.region
        if engineer != previous:
            self.engineer = engineer
            self.record(at, actor, "engineer_assigned", engineer=engineer, previous=previous or None)

    def line(self, part_no: str) -> PartLine:
        for existing in self.parts:
            if existing.part_no == part_no:
                return existing
        if len(self.parts) >= MAX_PART_LINES:
            raise ValidationError(f"a work order holds at most {MAX_PART_LINES} different parts")
        created = PartLine(part_no)
        self.parts.append(created)
        return created

    def reserve(self, part_no: str, qty: int, at: datetime, actor: str) -> None:
        if not self.is_open:
            raise InvalidTransition(f"a work order that is {self.status} takes no parts")
        self.line(part_no).reserved += qty
        self.record(at, actor, "parts_reserved", part_no=part_no, qty=qty)

    def complete(
        self, resolution: str, used: Mapping[str, int], at: datetime, actor: str
    ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Completes the visit; answers per part (from the reservation, from free stock, released back)."""
        self.apply("complete", at, actor, resolution=resolution)
        self.resolution = resolution
        from_held: dict[str, int] = {}
        from_stock: dict[str, int] = {}
        for part_no, qty in used.items():
            line = self.line(part_no)
            take = min(line.held, qty)
            if take:
                from_held[part_no] = take
            if qty - take:
                from_stock[part_no] = qty - take
            line.consumed += take
            line.reserved += qty - take
            line.consumed += qty - take
        released = self.release_held()
        if used:
            self.record(at, actor, "parts_consumed", parts=dict(used))
        return from_held, from_stock, released

    def release_held(self) -> dict[str, int]:
        """Gives every part still held back to stock (on completion or cancellation)."""
        released: dict[str, int] = {}
        for line in self.parts:
            if line.held > 0:
                released[line.part_no] = line.held
                line.released += line.held
        return released

    def overdue_reasons(self, now: datetime) -> list[str]:
        """Why the order needs attention now (超期预警): no progress for 24 h, or its visit slot has passed."""
        if not self.is_open:
            return []
        reasons = []
        if now - parse_iso(self.status_changed_at) >= OVERDUE_AFTER:
            reasons.append("no_progress_24h")
        if self.status == "scheduled" and self.appointment and now > parse_iso(self.appointment.end):
            reasons.append("appointment_missed")
        return reasons

    def is_overdue(self, now: datetime) -> bool:
        return bool(self.overdue_reasons(now))

    def overdue_at(self) -> str | None:
        return iso(parse_iso(self.status_changed_at) + OVERDUE_AFTER) if self.is_open else None

    def to_json(self, now: datetime, zone: ZoneInfo, device: Device | None = None) -> dict[str, Any]:
        """The staff view (GET /api/work-orders/{id}); `device` is the device record when it was loaded."""
        reasons = self.overdue_reasons(now)
        return {
            **self.summary(now, zone, reasons),
            "description": self.description,
            "device": device.to_json(now.astimezone(zone).date()) if device else None,
            "resolution": self.resolution or None,
            "logistics": dict(self.logistics),
            "timeline": [e.to_json() for e in sorted(self.timeline + self.new_timeline, key=lambda e: e.key)],
        }

    def summary(self, now: datetime, zone: ZoneInfo, reasons: list[str] | None = None) -> dict[str, Any]:
        reasons = self.overdue_reasons(now) if reasons is None else reasons
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "status_label": STATUS_LABELS[self.status],
            "ticket_id": self.ticket_id,
            "customer_id": self.customer_id,
            "device_serial": self.device_serial or None,
            "in_warranty": self.in_warranty,
            "skill": self.skill or None,
            "region": self.region or None,
            "engineer": self.engineer or None,
            "appointment": self.appointment.to_json(zone) if self.appointment else None,
            "parts": [p.to_json() for p in self.parts],
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "status_changed_at": self.status_changed_at,
            "overdue": bool(reasons),
            "overdue_reasons": reasons,
            "overdue_at": self.overdue_at(),
            "version": self.version,
        }

    def public_view(self, zone: ZoneInfo) -> dict[str, Any]:
        """What the customer sees of the order's progress: no engineer, no parts, no internal timeline."""
        slot = self.appointment.to_json(zone) if self.appointment else None
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "status_label": STATUS_LABELS[self.status],
            "updated_at": self.updated_at,
            "appointment": {k: slot[k] for k in ("local_start", "local_end", "time_zone")} if slot else None,
        }


def history_entry(order: WorkOrder, at: datetime) -> HistoryEntry:
    """The device history line a completed (or closed-out) work order leaves behind."""
    return HistoryEntry(
        at=iso(at),
        work_order_id=order.id,
        kind=order.type,
        summary=order.resolution or order.status,
        engineer=order.engineer,
        parts=[{"part_no": p.part_no, "qty": p.consumed} for p in order.parts if p.consumed],
    )


class InsufficientStock(ConflictError):
    """A reservation or consumption asked for more of a part than is in stock (HTTP 409)."""

    code = "insufficient_stock"


@dataclass
class PartStock:
    """A spare part's stock (备件库存): free to reserve, held by work orders, consumed to date."""

    part_no: str
    name: str
    available: int = 0
    reserved: int = 0
    consumed: int = 0
    threshold: int = 0
    low_stock: bool = False
    updated_at: str = ""

    @property
    def is_low(self) -> bool:
        return self.available <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "part_no": self.part_no,
            "name": self.name,
            "available": self.available,
            "reserved": self.reserved,
            "consumed": self.consumed,
            "low_stock_threshold": self.threshold,
            "low_stock": self.is_low,
            "updated_at": self.updated_at or None,
        }


@dataclass(frozen=True)
class StockChange:
    """The net change one transaction makes to a part's counters; negative deltas are conditional."""

    part_no: str
    available: int = 0
    reserved: int = 0
    consumed: int = 0


def stock_changes(
    reserve: Mapping[str, int] | None = None,
    from_held: Mapping[str, int] | None = None,
    from_stock: Mapping[str, int] | None = None,
    released: Mapping[str, int] | None = None,
) -> list[StockChange]:
    """Merges every movement per part (a transaction may touch each item only once)."""
    parts = sorted({*(reserve or {}), *(from_held or {}), *(from_stock or {}), *(released or {})})
    changes = []
    for p in parts:
        r, h, s, rel = (m.get(p, 0) if m else 0 for m in (reserve, from_held, from_stock, released))
        changes.append(StockChange(p, available=-r - s + rel, reserved=r - h - rel, consumed=h + s))
    return [c for c in changes if (c.available, c.reserved, c.consumed) != (0, 0, 0)]


@dataclass(frozen=True)
class WorkOrderFilter:
    """GET /api/work-orders filters; each maps to one GSI (docs/WORK_ORDERS.md)."""

    status: str = ""
    engineer: str = ""
    ticket_id: str = ""


@dataclass(frozen=True)
class WorkOrderPage:
    """One page of a work order listing."""

    items: list[WorkOrder]
    next_cursor: str | None
