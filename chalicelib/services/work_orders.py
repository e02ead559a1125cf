"""After-sales use cases: work orders from tickets, scheduling and dispatch, parts, completion, devices, stock."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..domain.errors import ConflictError, NotFound, PermissionDenied, ValidationError
from ..domain.routing import ENGINEER
from ..domain.routing import WORK_ORDER_MANAGERS as MANAGERS
from ..domain.ticket import Ticket, is_ticket_id, iso
from ..domain.work_orders import (
    DONE_STATUSES,
    STATUSES,
    TYPES,
    Appointment,
    Device,
    Engineer,
    HistoryEntry,
    PartStock,
    StockChange,
    WorkOrder,
    WorkOrderFilter,
    WorkOrderPage,
    device_from_body,
    format_work_order_id,
    history_entry,
    is_work_order_id,
    match_engineer,
    part_number,
    quantity,
    serial_number,
    stock_changes,
    text_field,
    token_field,
)
from ..ports import Clock, Publisher, StaffDirectory, StaffRecord, TicketRepository
from .tickets import Actor

if TYPE_CHECKING:
    from ..adapters.dynamodb.work_orders_store import DynamoWorkOrderStore

NOTIFY_TOPIC = "kefu-staff-notifications"
MAX_PAGE = 100


@dataclass(frozen=True)
class Outcome:
    """A changed work order and the parts whose stock crossed their low-stock threshold."""

    order: WorkOrder
    low_stock: list[PartStock]


def _used_parts(value: object) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > 20:
        raise ValidationError("'parts_used' must be a list of at most 20 {part_no, qty}")
    used: dict[str, int] = {}
    for line in value:
        if not isinstance(line, dict):
            raise ValidationError("each of 'parts_used' must be an object {part_no, qty}")
        part = part_number(line.get("part_no"))
        used[part] = used.get(part, 0) + quantity(line.get("qty"))
    return used


class WorkOrderService:
    """Each change loads the order, applies it through the domain, and saves it in one transaction; races retry."""

    def __init__(
        self,
        store: DynamoWorkOrderStore,
        tickets: TicketRepository,
        staff: StaffDirectory,
        publisher: Publisher,
        clock: Clock,
        zone: ZoneInfo,
        attempts: int = 3,
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.staff = staff
        self.publisher = publisher
        self.clock = clock
        self.zone = zone
        self.attempts = attempts

    # --- reading -------------------------------------------------------------------------------------------------
    def get(self, work_order_id: str, actor: Actor) -> WorkOrder:
        if not is_work_order_id(work_order_id):
            raise NotFound(f"no work order {work_order_id}")
        order = self.store.get(work_order_id)
        self._check_access(order, actor)
        return order

    def view(self, work_order_id: str, actor: Actor) -> dict[str, Any]:
        """GET /api/work-orders/{id}: the order with its device record and timeline."""
        return self.render(self.get(work_order_id, actor))

    def render(self, order: WorkOrder) -> dict[str, Any]:
        device = self.store.find_device(order.device_serial) if order.device_serial else None
        return order.to_json(self.clock.now(), self.zone, device)

    def summary(self, order: WorkOrder) -> dict[str, Any]:
        return order.summary(self.clock.now(), self.zone)

    def list_page(
        self,
        actor: Actor,
        *,
        status: str = "",
        engineer: str = "",
        ticket_id: str = "",
        limit: int = 50,
        cursor: str | None = None,
    ) -> WorkOrderPage:
        if status and status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        if engineer == "me":
            engineer = actor.id
        if not MANAGERS.intersection(actor.roles):
            if engineer and engineer != actor.id:
                raise PermissionDenied("engineers see their own work orders")
            engineer, ticket_id = actor.id, ""
        if ticket_id and not is_ticket_id(ticket_id):
            raise ValidationError("'ticket' must be a ticket id")
        flt = WorkOrderFilter(status=status, engineer=engineer, ticket_id=ticket_id)
        return self.store.list_page(flt, limit, cursor)

    @staticmethod
    def _check_access(order: WorkOrder, actor: Actor) -> None:
        if MANAGERS.intersection(actor.roles):
            return
        if ENGINEER in actor.roles and order.engineer == actor.id:
            return
        raise PermissionDenied("engineers may see and work only the orders assigned to them")

    # --- creating from a ticket ----------------------------------------------------------------------------------
    def create(self, ticket_id: str, actor: Actor, body: Mapping[str, object]) -> WorkOrder:
        kind = body.get("type")
        if kind not in TYPES:
            raise ValidationError(f"'type' must be one of {', '.join(TYPES)}")
        description = text_field(body.get("description"), "description", required=False)
        skill = token_field(body.get("skill"), "skill")
        device_body = body.get("device")
        if device_body is not None and not isinstance(device_body, dict):
            raise ValidationError("'device' must be an object {serial, model, purchase_date, warranty_until}")
        serial_value = body.get("serial") or (device_body or {}).get("serial")
        serial = serial_number(serial_value) if serial_value is not None else ""
        if not is_ticket_id(ticket_id):
            raise NotFound(f"no ticket {ticket_id}")
        ticket = self.tickets.get(ticket_id)
        if ticket.category != "after_sales":
            raise ConflictError(
                f"ticket {ticket_id} is a {ticket.category} ticket; only after-sales tickets get work orders",
                code="not_after_sales",
            )
        now = self.clock.now()
        device = self._device_for(serial, device_body, ticket, now) if serial else None
        day = now.astimezone(self.zone).strftime("%Y%m%d")
        order = WorkOrder(
            id=format_work_order_id(day, self.store.next_serial(day)),
            type=str(kind),
            ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            created_at=iso(now),
            created_by=actor.id,
            description=description or ticket.subject,
            skill=skill,
            region=ticket.region or (device.region if device else ""),
            device_serial=serial,
            in_warranty=device.in_warranty(now.astimezone(self.zone).date()) if device else None,
        )
        order.record(now, actor.id, "created", type=order.type, ticket_id=ticket.id, device_serial=serial or None)
        self.store.create(order)
        self._on_ticket(ticket.id, "work_order_created", actor, work_order_id=order.id, type=order.type, link=True)
        return order

    def _device_for(self, serial: str, body: dict[str, Any] | None, ticket: Ticket, now: datetime) -> Device:
        current = self.store.find_device(serial)
        if current is not None and not body:
            return current
        if current is None and not body:
            raise ValidationError(f"no device {serial}; register it with PUT /api/devices/{serial} or pass 'device'")
        fields = {k: v for k, v in (body or {}).items() if k != "serial"}
        fields.setdefault("customer_id", ticket.customer_id)
        device = device_from_body(serial, fields, current)
        device.updated_at = iso(now)
        self.store.put_device(device)
        return device

    def _on_ticket(self, ticket_id: str, action: str, actor: Actor, *, link: bool = False, **detail: Any) -> None:
        """Records the work order on its ticket (timeline, and `work_order_id` when linking); a lost race retries."""
        for _attempt in range(self.attempts):
            ticket = self.tickets.get(ticket_id)
            if link:
                ticket.work_order_id = str(detail["work_order_id"])
            ticket.record(self.clock.now(), actor.id, action, **detail)
            try:
                self.tickets.save(ticket)
                return
            except ConflictError:
                continue
        raise ConflictError(f"ticket {ticket_id} is changing too fast; the work order exists, try linking again")

    # --- changes -------------------------------------------------------------------------------------------------
    def _change(
        self,
        work_order_id: str,
        actor: Actor,
        change: Callable[[WorkOrder, datetime], tuple[list[StockChange], HistoryEntry | None]],
    ) -> Outcome:
        for _attempt in range(self.attempts):
            order = self.get(work_order_id, actor)
            stock, history = change(order, self.clock.now())
            # Stock first, each part by a conditional update (never negative), then the order; undone if it lost.
            applied = self.store.apply_stock(stock, order.updated_at)
            try:
                self.store.save(order, history=history)
            except ConflictError:
                self.store.revert_stock(applied, order.updated_at)
                continue
            return Outcome(order, self._low_stock_warnings([c.part_no for c in stock if c.available < 0]))
        raise ConflictError(f"work order {work_order_id} is changing too fast; try again")

    def _low_stock_warnings(self, part_nos: list[str]) -> list[PartStock]:
        """Parts whose free stock fell to their threshold: flagged once and announced to staff."""
        flagged = []
        for part_no in part_nos:
            part = self.store.flag_low_stock(part_no)
            if part is not None:
                flagged.append(part)
                self.publisher.publish(
                    NOTIFY_TOPIC,
                    {"type": "low_stock", **part.to_json()},
                    subject=f"备件库存不足 low stock: {part.part_no}",
                )
        return flagged

    def schedule(self, work_order_id: str, actor: Actor, body: Mapping[str, object]) -> WorkOrder:
        if not MANAGERS.intersection(actor.roles):
            raise PermissionDenied("only after-sales staff, supervisors, managers and admins schedule visits")
        appointment = Appointment.parse(body, self.zone, self.clock.now())
        chosen = body.get("engineer")
        explicit = self._engineer(chosen) if chosen is not None else None

        def change(order: WorkOrder, now: datetime) -> tuple[list[StockChange], HistoryEntry | None]:
            engineer = explicit.id if explicit else self._match(order, appointment.region)
            order.schedule(appointment, engineer, now, actor.id)
            return [], None

        return self._change(work_order_id, actor, change).order

    def _engineer(self, value: object) -> StaffRecord:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("'engineer' must be a staff id")
        member = self.staff.get(value.strip())
        if member is None or ENGINEER not in member.roles:
            raise ValidationError(f"{value!r} is not an engineer")
        return member

    def engineers(self) -> list[Engineer]:
        return [
            Engineer(s.id, tuple(s.regions), tuple(s.skills), self.store.open_count(s.id))
            for s in self.staff.all()
            if ENGINEER in s.roles
        ]

    def _match(self, order: WorkOrder, region: str) -> str:
        candidates = [
            # This order's own engineer does not count it against themselves when it is rescheduled.
            Engineer(e.id, e.regions, e.skills, e.open_orders - (1 if e.id == order.engineer else 0))
            for e in self.engineers()
        ]
        found = match_engineer(candidates, region, order.skill)
        if found is None:
            need = f" with skill {order.skill!r}" if order.skill else ""
            raise ConflictError(f"no engineer covers region {region!r}{need}; name one", code="no_engineer")
        return found.id

    def set_status(self, work_order_id: str, actor: Actor, body: Mapping[str, object]) -> WorkOrder:
        note = text_field(body.get("note"), "note", required=False)
        tracking = text_field(body.get("tracking_no"), "tracking_no", 60, required=False)
        carrier = text_field(body.get("carrier"), "carrier", 40, required=False)
        target = body.get("status")
        if not isinstance(target, str) or target not in STATUSES:
            raise ValidationError(f"'status' must be one of {', '.join(STATUSES)}")

        def change(order: WorkOrder, now: datetime) -> tuple[list[StockChange], HistoryEntry | None]:
            action = order.action_to(target)
            if action in ("approve", "reject", "refund", "exchange", "close", "reopen", "cancel") and not (
                MANAGERS.intersection(actor.roles)
            ):
                raise PermissionDenied(f"an engineer cannot {action} a work order")
            detail: dict[str, Any] = {"note": note} if note else {}
            if tracking:
                order.logistics = {**order.logistics, "tracking_no": tracking, "carrier": carrier}
                detail.update(tracking_no=tracking, carrier=carrier or None)
            order.apply(action, now, actor.id, **detail)
            released = order.release_held() if order.status in DONE_STATUSES else {}
            history = None
            if order.flow != "service" and order.status in ("refunded", "exchanged"):
                order.resolution = order.resolution or order.status
                history = history_entry(order, now)
            return stock_changes(released=released), history

        return self._change(work_order_id, actor, change).order

    def reserve(self, work_order_id: str, actor: Actor, body: Mapping[str, object]) -> Outcome:
        part_no = part_number(body.get("part_no"))
        qty = quantity(body.get("qty"))
        if self.store.find_part(part_no) is None:
            raise ValidationError(f"no part {part_no}")

        def change(order: WorkOrder, now: datetime) -> tuple[list[StockChange], HistoryEntry | None]:
            order.reserve(part_no, qty, now, actor.id)
            return stock_changes(reserve={part_no: qty}), None

        return self._change(work_order_id, actor, change)

    def complete(self, work_order_id: str, actor: Actor, body: Mapping[str, object]) -> Outcome:
        resolution = text_field(body.get("resolution"), "resolution")
        used = _used_parts(body.get("parts_used"))
        for part_no in used:
            if self.store.find_part(part_no) is None:
                raise ValidationError(f"no part {part_no}")

        def change(order: WorkOrder, now: datetime) -> tuple[list[StockChange], HistoryEntry | None]:
            from_held, from_stock, released = order.complete(resolution, used, now, actor.id)
            return stock_changes(from_held=from_held, from_stock=from_stock, released=released), history_entry(
                order, now
            )

        outcome = self._change(work_order_id, actor, change)
        self._on_ticket(outcome.order.ticket_id, "work_order_completed", actor, work_order_id=outcome.order.id)
        return outcome

    # --- devices and parts ---------------------------------------------------------------------------------------
    def device(self, serial: str) -> Device:
        found = self.store.find_device(serial_number(serial)) if isinstance(serial, str) else None
        if found is None:
            raise NotFound(f"no device {serial}")
        return found

    def put_device(self, serial: str, body: Mapping[str, object]) -> Device:
        serial = serial_number(serial)
        for _attempt in range(self.attempts):
            current = self.store.find_device(serial)
            device = device_from_body(serial, body, current)
            device.updated_at = iso(self.clock.now())
            try:
                self.store.put_device(device)
            except ConflictError:
                continue
            return device
        raise ConflictError(f"device {serial} is changing too fast; try again")

    def part(self, part_no: str) -> PartStock:
        found = self.store.find_part(part_number(part_no))
        if found is None:
            raise NotFound(f"no part {part_no}")
        return found

    def put_part(self, part_no: str, body: Mapping[str, object]) -> PartStock:
        """Creates or updates a part: `name`, `low_stock_threshold`, and either `available` (stocktake) or `adjust`."""
        part_no = part_number(part_no)
        current = self.store.find_part(part_no)
        name = text_field(body["name"], "name", 100) if "name" in body else (current.name if current else "")
        if not name:
            raise ValidationError("'name' is required for a new part")
        threshold = body.get("low_stock_threshold", current.threshold if current else 0)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 1_000_000:
            raise ValidationError("'low_stock_threshold' must be a whole number ≥ 0")
        available, adjust = body.get("available"), body.get("adjust")
        if available is not None and adjust is not None:
            raise ValidationError("give either 'available' (a stocktake) or 'adjust' (a change), not both")
        count: int | None = None if current else 0
        if available is not None:
            if isinstance(available, bool) or not isinstance(available, int) or not 0 <= available <= 10_000_000:
                raise ValidationError("'available' must be a whole number ≥ 0")
            count = available
        if adjust is not None and (isinstance(adjust, bool) or not isinstance(adjust, int) or adjust == 0):
            raise ValidationError("'adjust' must be a non-zero whole number")
        at = iso(self.clock.now())
        part = self.store.put_part(part_no, name, threshold, at, count)
        if isinstance(adjust, int):
            part = self.store.adjust_part(part_no, adjust, at)
        if part.is_low:
            self._low_stock_warnings([part_no])
        return self.store.find_part(part_no) or part

    def progress(self, ticket_id: str, token: str) -> dict[str, Any]:
        """The customer's view of their ticket's work order (工单进度), behind the ticket's status token."""
        ticket = self.tickets.find(ticket_id) if is_ticket_id(ticket_id) and token else None
        if ticket is None or not hmac.compare_digest(ticket.public_token.encode(), token.encode()):
            raise NotFound("no such ticket, or the link is not valid")
        order = self.store.find(ticket.work_order_id) if ticket.work_order_id else None
        return {"ticket_id": ticket.id, "work_order": order.public_view(self.zone) if order else None}


DEMO_PARTS = (
    ("FLT-HEPA-01", "HEPA 滤网 HEPA filter", 12, 3),
    ("MTR-FAN-02", "风机电机 fan motor", 2, 2),
    ("PCB-CTL-03", "主控板 control board", 5, 1),
)
DEMO_DEVICES = (
    ("AP-2024-000123", "空气净化器 KF-AP500", "2025-03-01", "2027-03-01", "east"),
    ("WH-2023-004567", "热水器 KF-WH60", "2023-06-15", "2025-06-15", "north"),
)
DEMO_ENGINEERS = (
    StaffRecord(
        "engineer2", "马超 Ma Chao", ["engineer"], team="field", regions=["north"], skills=["water_heater"], online=True
    ),
    StaffRecord(
        "engineer3",
        "郭静 Guo Jing",
        ["engineer"],
        team="field",
        regions=["east", "north"],
        skills=["air_purifier", "water_heater"],
        online=True,
    ),
)


def seed_demo(service: WorkOrderService) -> None:
    """Idempotent demo data: engineer skills and regions, spare parts with stock, and two devices."""
    engineer1 = service.staff.get("engineer1")
    if engineer1 is not None and not engineer1.skills:
        engineer1.skills = ["air_purifier"]
        engineer1.regions = engineer1.regions or ["east"]
        service.staff.put(engineer1)
    for member in DEMO_ENGINEERS:
        if service.staff.get(member.id) is None:
            service.staff.put(member)
    for part_no, name, available, threshold in DEMO_PARTS:
        if service.store.find_part(part_no) is None:
            service.put_part(part_no, {"name": name, "available": available, "low_stock_threshold": threshold})
    for serial, model, bought, warranty, region in DEMO_DEVICES:
        if service.store.find_device(serial) is None:
            service.put_device(
                serial, {"model": model, "purchase_date": bought, "warranty_until": warranty, "region": region}
            )
