"""DynamoDB items and queries for after-sales: work orders with their timeline, devices with history, part stock."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pynamodb.attributes import BooleanAttribute, JSONAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from ...domain.errors import ConflictError, NotFound
from ...domain.work_orders import (
    DONE_STATUSES,
    Appointment,
    Device,
    HistoryEntry,
    InsufficientStock,
    PartLine,
    PartStock,
    StockChange,
    WorkOrder,
    WorkOrderEvent,
    WorkOrderFilter,
    WorkOrderPage,
)
from .models import AssigneeIndex, CounterItem, CustomerIndex, KefuItem, ListIndex, StatusIndex
from .repository import _encode_cursor, listing_cursor

LIST_PARTITION = "WO"
PART_PARTITION = "PART"


def wo_pk(work_order_id: str) -> str:
    return f"WO#{work_order_id}"


class WorkOrderItem(KefuItem, discriminator="work_order"):
    """A work order's META item (pk WO#{id}, sk META) with the keys of the listing GSIs."""

    work_order_id = UnicodeAttribute()
    type = UnicodeAttribute()
    ticket_id = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    created_by = UnicodeAttribute()
    status = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    skill = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    device_serial = UnicodeAttribute(null=True)
    in_warranty = BooleanAttribute(null=True)
    engineer = UnicodeAttribute(null=True)
    appointment = JSONAttribute(null=True)
    parts = JSONAttribute(null=True)
    resolution = UnicodeAttribute(null=True)
    logistics = JSONAttribute(null=True)
    status_changed_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    status_pk = UnicodeAttribute(null=True)
    status_sk = UnicodeAttribute(null=True)
    assignee_pk = UnicodeAttribute(null=True)
    assignee_sk = UnicodeAttribute(null=True)
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)
    by_list = ListIndex()
    by_status = StatusIndex()
    by_assignee = AssigneeIndex()
    by_customer = CustomerIndex()


class WorkOrderEventItem(KefuItem, discriminator="wo_event"):
    """A work order timeline entry (pk WO#{id}, sk EVT#{at}#{seq}); its own kind, so ticket effects ignore it."""

    work_order_id = UnicodeAttribute()
    at = UnicodeAttribute()
    seq = NumberAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    detail = JSONAttribute(null=True)


class DeviceItem(KefuItem, discriminator="device"):
    """A device record (pk DEVICE#{serial}, sk META); `version` = optimistic lock."""

    serial = UnicodeAttribute()
    model = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    purchase_date = UnicodeAttribute(null=True)
    warranty_until = UnicodeAttribute(null=True)
    installed_at = UnicodeAttribute(null=True)
    address = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


class DeviceHistoryItem(KefuItem, discriminator="device_history"):
    """One service-history line of a device (pk DEVICE#{serial}, sk HIST#{at}#{work order})."""

    serial = UnicodeAttribute()
    at = UnicodeAttribute()
    work_order_id = UnicodeAttribute()
    history_kind = UnicodeAttribute()
    summary = UnicodeAttribute()
    engineer = UnicodeAttribute(null=True)
    parts = JSONAttribute(null=True)


class PartItem(KefuItem, discriminator="part"):
    """A spare part's stock (pk PART#{part_no}, sk STOCK); counters change only by conditional ADD."""

    part_no = UnicodeAttribute()
    name = UnicodeAttribute()
    available = NumberAttribute(default=0)
    reserved = NumberAttribute(default=0)
    consumed = NumberAttribute(default=0)
    threshold = NumberAttribute(default=0)
    low_stock = BooleanAttribute(default=False)
    updated_at = UnicodeAttribute(null=True)
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    by_list = ListIndex()


def _assignee_sk(order: WorkOrder) -> str:
    return f"{'A' if order.is_open else 'Z'}#{order.status}#{order.created_at}#{order.id}"


class DynamoWorkOrderStore:
    """Work orders, devices and part stock over the single table: GetItem, Query and TransactWrite only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # --- work orders ---------------------------------------------------------------------------------------------
    def next_serial(self, day: str) -> int:
        counter = CounterItem(pk=f"COUNTER#WO#{day}", sk="COUNTER")
        counter.update(actions=[CounterItem.value.add(1)])
        return int(counter.value)

    def find(self, work_order_id: str) -> WorkOrder | None:
        order: WorkOrder | None = None
        events: list[WorkOrderEvent] = []
        for item in KefuItem.query(wo_pk(work_order_id), consistent_read=True):
            if isinstance(item, WorkOrderItem):
                order = self._order(item)
            elif isinstance(item, WorkOrderEventItem):
                events.append(
                    WorkOrderEvent(
                        at=item.at, seq=int(item.seq), actor=item.actor, action=item.action, detail=item.detail or {}
                    )
                )
        if order is not None:
            order.timeline = sorted(events, key=lambda e: e.key)
        return order

    def get(self, work_order_id: str) -> WorkOrder:
        order = self.find(work_order_id)
        if order is None:
            raise NotFound(f"no work order {work_order_id}")
        return order

    def create(self, order: WorkOrder) -> None:
        self.save(order, creating=True)

    def save(
        self,
        order: WorkOrder,
        *,
        creating: bool = False,
        history: HistoryEntry | None = None,
    ) -> None:
        """One transaction: the META (new, or version-checked), new timeline entries and a device history line."""
        meta = self._item(order)
        try:
            with TransactWrite(connection=self._connection) as tx:
                if creating:
                    tx.save(meta, condition=WorkOrderItem.pk.does_not_exist())
                else:
                    tx.save(meta)  # VersionAttribute: `version = :loaded`
                for event in order.new_timeline:
                    tx.save(self._event_item(order.id, event), condition=WorkOrderEventItem.pk.does_not_exist())
                if history is not None and order.device_serial:
                    history_item = self._history_item(order.device_serial, history)
                    tx.save(history_item, condition=DeviceHistoryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in (getattr(exc, "cancellation_reasons", None) or [])]
            if any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in reasons) or (
                exc.cause_response_code == "TransactionCanceledException"
            ):
                raise ConflictError(f"work order {order.id} was changed by someone else; reload and retry") from exc
            raise
        order.version = int(meta.version) if meta.version is not None else None
        order.timeline += order.new_timeline
        order.new_timeline = []

    def apply_stock(self, changes: Sequence[StockChange], at: str) -> list[StockChange]:
        """Applies each part's change as one conditional UpdateItem (counters never go negative).

        All or nothing: when one part is short, the changes already made are undone and InsufficientStock raised."""
        applied: list[StockChange] = []
        for change in changes:
            actions, condition = self._stock_update(change, at)
            try:
                PartItem(pk=f"PART#{change.part_no}", sk="STOCK").update(actions=actions, condition=condition)
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                self.revert_stock(applied, at)
                raise InsufficientStock(f"not enough stock of part {change.part_no}") from exc
            applied.append(change)
        return applied

    def revert_stock(self, applied: Sequence[StockChange], at: str) -> None:
        """Undoes changes made by apply_stock (the work order save that should have followed them failed)."""
        for change in reversed(applied):
            inverse = StockChange(change.part_no, -change.available, -change.reserved, -change.consumed)
            actions, _condition = self._stock_update(inverse, at)
            PartItem(pk=f"PART#{change.part_no}", sk="STOCK").update(actions=actions)

    @staticmethod
    def _stock_update(change: StockChange, at: str) -> tuple[list[Action], Condition]:
        actions: list[Action] = [PartItem.updated_at.set(at)]
        condition: Condition = PartItem.pk.exists()
        for attribute, delta in (
            (PartItem.available, change.available),
            (PartItem.reserved, change.reserved),
            (PartItem.consumed, change.consumed),
        ):
            if delta:
                actions.append(attribute.add(delta))
            if delta < 0:
                condition &= attribute >= -delta
        return actions, condition

    def list_page(self, flt: WorkOrderFilter, limit: int, cursor: str | None) -> WorkOrderPage:
        if flt.engineer:
            group = "Z" if flt.status in DONE_STATUSES else "A"
            condition = WorkOrderItem.assignee_sk.startswith(f"{group}#{flt.status}#") if flt.status else None
            partition = f"WO_ENGINEER#{flt.engineer}"
            result = WorkOrderItem.by_assignee.query(
                partition,
                range_key_condition=condition,
                scan_index_forward=True,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_assignee", partition),
            )
        elif flt.ticket_id:
            partition = f"WO_TICKET#{flt.ticket_id}"
            result = WorkOrderItem.by_customer.query(
                partition,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_customer", partition),
            )
        elif flt.status:
            partition = f"WO_STATUS#{flt.status}"
            result = WorkOrderItem.by_status.query(
                partition,
                scan_index_forward=True,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_status", partition),
            )
        else:
            result = WorkOrderItem.by_list.query(
                LIST_PARTITION,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_list", LIST_PARTITION),
            )
        items = [self._order(item) for item in result]
        return WorkOrderPage(items=items, next_cursor=_encode_cursor(result.last_evaluated_key))

    def open_count(self, engineer: str) -> int:
        """How many open work orders an engineer holds (gsi_assignee, sort keys of open orders start with A#)."""
        return int(
            WorkOrderItem.by_assignee.count(
                f"WO_ENGINEER#{engineer}", range_key_condition=WorkOrderItem.assignee_sk.startswith("A#")
            )
        )

    # --- devices -------------------------------------------------------------------------------------------------
    def find_device(self, serial: str) -> Device | None:
        device: Device | None = None
        history: list[HistoryEntry] = []
        for item in KefuItem.query(f"DEVICE#{serial}", consistent_read=True):
            if isinstance(item, DeviceItem):
                device = Device(
                    serial=item.serial,
                    model=item.model,
                    customer_id=item.customer_id or "",
                    purchase_date=item.purchase_date or "",
                    warranty_until=item.warranty_until or "",
                    installed_at=item.installed_at or "",
                    address=item.address or "",
                    region=item.region or "",
                    updated_at=item.updated_at or "",
                    version=int(item.version) if item.version is not None else None,
                )
            elif isinstance(item, DeviceHistoryItem):
                history.append(
                    HistoryEntry(
                        at=item.at,
                        work_order_id=item.work_order_id,
                        kind=item.history_kind,
                        summary=item.summary,
                        engineer=item.engineer or "",
                        parts=list(item.parts or []),
                    )
                )
        if device is not None:
            device.history = history
            if not device.installed_at:
                device.installed_at = next((h.at for h in history if h.kind == "installation"), "")
        return device

    def put_device(self, device: Device) -> None:
        """Creates (when `version` is None) or replaces the device record, conditional on the version loaded."""
        item = DeviceItem(
            pk=f"DEVICE#{device.serial}",
            sk="META",
            serial=device.serial,
            model=device.model,
            customer_id=device.customer_id or None,
            purchase_date=device.purchase_date or None,
            warranty_until=device.warranty_until or None,
            installed_at=device.installed_at or None,
            address=device.address or None,
            region=device.region or None,
            updated_at=device.updated_at or None,
        )
        if device.version is not None:
            item.version = device.version
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConflictError(f"device {device.serial} was changed by someone else; reload and retry") from exc
            raise
        device.version = int(item.version) if item.version is not None else None

    # --- part stock ----------------------------------------------------------------------------------------------
    def find_part(self, part_no: str) -> PartStock | None:
        try:
            item = PartItem.get(f"PART#{part_no}", "STOCK", consistent_read=True)
        except DoesNotExist:
            return None
        return self._part(item)

    def list_parts(self, limit: int = 100) -> list[PartStock]:
        return [self._part(item) for item in PartItem.by_list.query(PART_PARTITION, limit=limit)]

    def put_part(self, part_no: str, name: str, threshold: int, at: str, available: int | None) -> PartStock:
        """Creates or updates a part: name and threshold; `available` sets the free count (a stocktake)."""
        item = PartItem(pk=f"PART#{part_no}", sk="STOCK")
        actions: list[Action] = [
            PartItem.kind.set(PartItem),  # type: ignore[arg-type]  # an upsert writes the discriminator itself
            PartItem.part_no.set(part_no),
            PartItem.name.set(name),
            PartItem.threshold.set(threshold),
            PartItem.updated_at.set(at),
            PartItem.list_pk.set(PART_PARTITION),
            PartItem.list_sk.set(part_no),
            PartItem.reserved.set(PartItem.reserved | 0),
            PartItem.consumed.set(PartItem.consumed | 0),
            PartItem.low_stock.set(PartItem.low_stock | False),
        ]
        actions.append(PartItem.available.set(available if available is not None else (PartItem.available | 0)))
        item.update(actions=actions)
        return self._settle_low_flag(self._part(item))

    def adjust_part(self, part_no: str, delta: int, at: str) -> PartStock:
        """Adds (restock) or removes (write-off) free stock; never below zero."""
        item = PartItem(pk=f"PART#{part_no}", sk="STOCK")
        condition: Condition = PartItem.pk.exists()
        if delta < 0:
            condition &= PartItem.available >= -delta
        try:
            item.update(actions=[PartItem.available.add(delta), PartItem.updated_at.set(at)], condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            if self.find_part(part_no) is None:
                raise NotFound(f"no part {part_no}") from exc
            raise InsufficientStock(f"part {part_no} has fewer than {-delta} free") from exc
        return self._settle_low_flag(self._part(item))

    def flag_low_stock(self, part_no: str) -> PartStock | None:
        """Raises the low-stock flag when stock is at or under its threshold; the part if the flag flipped now."""
        item = PartItem(pk=f"PART#{part_no}", sk="STOCK")
        try:
            item.update(
                actions=[PartItem.low_stock.set(True)],
                condition=(PartItem.available <= PartItem.threshold) & (PartItem.low_stock != True),  # noqa: E712
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return self._part(item)

    def _settle_low_flag(self, part: PartStock) -> PartStock:
        """After a restock: lowers the flag once stock is above the threshold again."""
        if part.low_stock and not part.is_low:
            item = PartItem(pk=f"PART#{part.part_no}", sk="STOCK")
            item.update(actions=[PartItem.low_stock.set(False)], condition=PartItem.available > PartItem.threshold)
            part.low_stock = False
        return part

    # --- mapping -------------------------------------------------------------------------------------------------
    @staticmethod
    def _part(item: PartItem) -> PartStock:
        return PartStock(
            part_no=item.part_no,
            name=item.name,
            available=int(item.available or 0),
            reserved=int(item.reserved or 0),
            consumed=int(item.consumed or 0),
            threshold=int(item.threshold or 0),
            low_stock=bool(item.low_stock),
            updated_at=item.updated_at or "",
        )

    @staticmethod
    def _history_item(serial: str, history: HistoryEntry) -> DeviceHistoryItem:
        return DeviceHistoryItem(
            pk=f"DEVICE#{serial}",
            sk=f"HIST#{history.at}#{history.work_order_id}",
            serial=serial,
            at=history.at,
            work_order_id=history.work_order_id,
            history_kind=history.kind,
            summary=history.summary,
            engineer=history.engineer or None,
            parts=history.parts or None,
        )

    @staticmethod
    def _event_item(work_order_id: str, event: WorkOrderEvent) -> WorkOrderEventItem:
        return WorkOrderEventItem(
            pk=wo_pk(work_order_id),
            sk=f"EVT#{event.key}",
            work_order_id=work_order_id,
            at=event.at,
            seq=event.seq,
            actor=event.actor,
            action=event.action,
            detail=event.detail or None,
        )

    @staticmethod
    def _item(o: WorkOrder) -> WorkOrderItem:
        appointment: dict[str, Any] | None = asdict(o.appointment) if o.appointment else None
        item = WorkOrderItem(
            pk=wo_pk(o.id),
            sk="META",
            work_order_id=o.id,
            type=o.type,
            ticket_id=o.ticket_id,
            customer_id=o.customer_id,
            created_at=o.created_at,
            created_by=o.created_by,
            status=o.status,
            description=o.description or None,
            skill=o.skill or None,
            region=o.region or None,
            device_serial=o.device_serial or None,
            in_warranty=o.in_warranty,
            engineer=o.engineer or None,
            appointment=appointment,
            parts=[asdict(p) for p in o.parts] or None,
            resolution=o.resolution or None,
            logistics=o.logistics or None,
            status_changed_at=o.status_changed_at,
            updated_at=o.updated_at,
            list_pk=LIST_PARTITION,
            list_sk=f"{o.created_at}#{o.id}",
            status_pk=f"WO_STATUS#{o.status}",
            status_sk=f"{o.created_at}#{o.id}",
            customer_pk=f"WO_TICKET#{o.ticket_id}",
            customer_sk=f"{o.created_at}#{o.id}",
        )
        if o.engineer:
            item.assignee_pk = f"WO_ENGINEER#{o.engineer}"
            item.assignee_sk = _assignee_sk(o)
        if o.version is not None:
            item.version = o.version
        return item

    @staticmethod
    def _order(item: WorkOrderItem) -> WorkOrder:
        return WorkOrder(
            id=item.work_order_id,
            type=item.type,
            ticket_id=item.ticket_id,
            customer_id=item.customer_id,
            created_at=item.created_at,
            created_by=item.created_by,
            status=item.status,
            description=item.description or "",
            skill=item.skill or "",
            region=item.region or "",
            device_serial=item.device_serial or "",
            in_warranty=item.in_warranty,
            engineer=item.engineer or "",
            appointment=Appointment(**item.appointment) if item.appointment else None,
            parts=[PartLine(**p) for p in (item.parts or [])],
            resolution=item.resolution or "",
            logistics=dict(item.logistics or {}),
            status_changed_at=item.status_changed_at,
            updated_at=item.updated_at,
            version=int(item.version) if item.version is not None else None,
        )
