"""DynamoDB repositories: the ticket aggregate in one partition, customers, identities and staff."""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import (
    DoesNotExist,
    PutError,
    TransactWriteError,
    UpdateError,
)
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from ... import resources
from ...domain.errors import ConflictError, NotFound, ValidationError
from ...domain.ticket import CLOCK_BREACHED, CLOCK_RUNNING, Clock, Message, Note, Ticket, TimelineEntry, iso
from ...ports import Customer, DedupeRecord, StaffRecord, TicketFilter, TicketPage
from .models import (
    ClockItem,
    CounterItem,
    CustomerItem,
    DedupeItem,
    EventItem,
    IdentityItem,
    KefuItem,
    MessageItem,
    NoteItem,
    StaffItem,
    TicketItem,
)

PRIORITY_RANK = {"P0": "0", "P1": "1", "P2": "2"}
DUE_PARTITION = "CLOCK"


def ticket_pk(ticket_id: str) -> str:
    return f"TICKET#{ticket_id}"


def _clock_item(ticket_id: str, clock: Clock) -> ClockItem:
    item = ClockItem(
        pk=ticket_pk(ticket_id),
        sk=f"CLOCK#{clock.name}",
        ticket_id=ticket_id,
        name=clock.name,
        version=clock.version,
        state=clock.state,
        due_at=clock.due_at,
        started_at=clock.started_at,
        ended_at=clock.ended_at or None,
        level=clock.level,
    )
    if clock.state == CLOCK_RUNNING:
        item.due_pk = DUE_PARTITION
        item.due_sk = f"{clock.due_at}#{ticket_id}#{clock.name}"
    return item


def _clock_from_item(item: ClockItem) -> Clock:
    return Clock(
        name=item.name,
        version=int(item.version),
        state=item.state,
        due_at=item.due_at,
        started_at=item.started_at,
        ended_at=item.ended_at or "",
        level=int(item.level or 0),
        stored_state=item.state,
        stored_version=int(item.version),
    )


def _encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValidationError("cursor is not one this API issued") from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValidationError("cursor is not one this API issued")
    return value


def listing_cursor(cursor: str | None, index: str | None, partition: str) -> dict[str, Any] | None:
    """A listing's cursor, refused (400) unless it is a start key of this index (None: the table) and partition."""
    last_key = _decode_cursor(cursor)
    if last_key is None:
        return None
    hash_key, range_key = resources.GSIS[index] if index else ("pk", "sk")
    if (
        set(last_key) != {"pk", "sk", hash_key, range_key}
        or not all(set(v) == {"S"} and isinstance(v["S"], str) for v in last_key.values())
        or last_key[hash_key]["S"] != partition
    ):
        raise ValidationError("cursor is not one this API issued")
    return last_key


class DynamoTicketRepository:
    """TicketRepository over the single table. Every method is a GetItem, Query or (Transact)Write."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # --- counters and dedupe -------------------------------------------------------------
    def next_serial(self, channel: str, day: str) -> int:
        counter = CounterItem(pk=f"COUNTER#{channel}#{day}", sk="COUNTER")
        counter.update(actions=[CounterItem.value.add(1)])
        return int(counter.value)

    def get_dedupe(self, key: str) -> DedupeRecord | None:
        try:
            item = DedupeItem.get(f"DEDUPE#{key}", "DEDUPE", consistent_read=True)
        except DoesNotExist:
            return None
        return DedupeRecord(key=key, ticket_id=item.ticket_id, message_id=item.message_id)

    # --- the aggregate --------------------------------------------------------------------
    def find(self, ticket_id: str) -> Ticket | None:
        ticket: Ticket | None = None
        messages: list[Message] = []
        notes: list[Note] = []
        timeline: list[TimelineEntry] = []
        clocks: dict[str, Clock] = {}
        for item in KefuItem.query(ticket_pk(ticket_id), consistent_read=True):
            if isinstance(item, TicketItem):
                ticket = self._ticket_from_item(item)
            elif isinstance(item, MessageItem):
                messages.append(
                    Message(
                        id=item.message_id,
                        direction=item.direction,
                        text=item.text or "",
                        at=item.at,
                        author=item.author or "",
                        channel=item.channel,
                        attachments=list(item.attachments or []),
                        delivery=item.delivery or "",
                        delivery_detail=item.delivery_detail or "",
                    )
                )
            elif isinstance(item, NoteItem):
                notes.append(Note(id=item.note_id, text=item.text, at=item.at, author=item.author))
            elif isinstance(item, EventItem):
                timeline.append(
                    TimelineEntry(
                        at=item.at, seq=int(item.seq), actor=item.actor, action=item.action, detail=item.detail or {}
                    )
                )
            elif isinstance(item, ClockItem):
                clocks[item.name] = _clock_from_item(item)
        if ticket is None:
            return None
        ticket.messages, ticket.notes, ticket.timeline, ticket.clocks = messages, notes, timeline, clocks
        return ticket

    def get(self, ticket_id: str) -> Ticket:
        ticket = self.find(ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}")
        return ticket

    def create(self, ticket: Ticket, *, dedupe: DedupeRecord | None = None, dedupe_ttl: int = 0) -> None:
        self._write(ticket, creating=True, dedupe=dedupe, dedupe_ttl=dedupe_ttl)

    def save(self, ticket: Ticket, *, dedupe: DedupeRecord | None = None, dedupe_ttl: int = 0) -> None:
        self._write(ticket, creating=False, dedupe=dedupe, dedupe_ttl=dedupe_ttl)

    def _write(self, ticket: Ticket, *, creating: bool, dedupe: DedupeRecord | None, dedupe_ttl: int) -> None:
        meta = self._item_from_ticket(ticket)
        try:
            with TransactWrite(connection=self._connection) as tx:
                if creating:
                    tx.save(meta, condition=TicketItem.pk.does_not_exist())
                else:
                    tx.save(meta)  # the VersionAttribute adds `version = :loaded`
                for message in ticket.new_messages:
                    tx.save(self._message_item(ticket.id, message), condition=MessageItem.pk.does_not_exist())
                for note in ticket.new_notes:
                    tx.save(
                        NoteItem(
                            pk=ticket_pk(ticket.id),
                            sk=f"NOTE#{note.at}#{note.id}",
                            ticket_id=ticket.id,
                            note_id=note.id,
                            text=note.text,
                            at=note.at,
                            author=note.author,
                        ),
                        condition=NoteItem.pk.does_not_exist(),
                    )
                for entry in ticket.new_timeline:
                    tx.save(
                        EventItem(
                            pk=ticket_pk(ticket.id),
                            sk=f"EVT#{entry.key}",
                            ticket_id=ticket.id,
                            at=entry.at,
                            seq=entry.seq,
                            actor=entry.actor,
                            action=entry.action,
                            detail=entry.detail or None,
                        ),
                        condition=EventItem.pk.does_not_exist(),
                    )
                for clock in ticket.clocks.values():
                    if not clock.changed:
                        continue
                    condition: Condition
                    if clock.stored_state:
                        condition = (ClockItem.state == clock.stored_state) & (
                            ClockItem.version == clock.stored_version
                        )
                    else:
                        condition = ClockItem.pk.does_not_exist()
                    tx.save(_clock_item(ticket.id, clock), condition=condition)
                if dedupe is not None:
                    tx.save(
                        DedupeItem(
                            pk=f"DEDUPE#{dedupe.key}",
                            sk="DEDUPE",
                            ticket_id=dedupe.ticket_id,
                            message_id=dedupe.message_id,
                            expires_at=datetime.fromtimestamp(dedupe_ttl, UTC) if dedupe_ttl else None,
                        ),
                        condition=DedupeItem.pk.does_not_exist(),
                    )
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in (getattr(exc, "cancellation_reasons", None) or [])]
            if dedupe is not None and reasons and reasons[-1] == "ConditionalCheckFailed":
                raise DuplicateDelivery(dedupe.key) from exc
            if any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in reasons) or (
                exc.cause_response_code == "TransactionCanceledException"
            ):
                raise ConflictError(f"ticket {ticket.id} was changed by someone else; reload and retry") from exc
            raise
        # Committed: what was new is now stored.
        ticket.version = meta.version
        ticket.messages += ticket.new_messages
        ticket.notes += ticket.new_notes
        ticket.timeline += ticket.new_timeline
        ticket.new_messages, ticket.new_notes, ticket.new_timeline = [], [], []
        for name, clock in ticket.clocks.items():
            ticket.clocks[name] = Clock(
                **{**clock.__dict__, "stored_state": clock.state, "stored_version": clock.version}
            )

    def update_delivery(self, ticket_id: str, message: Message, delivery: str, detail: str = "") -> None:
        """Records an outbound message's delivery state (queued → sent | failed)."""
        item = self._message_item(ticket_id, message)
        try:
            item.update(
                actions=[MessageItem.delivery.set(delivery), MessageItem.delivery_detail.set(detail[:500])],
                condition=MessageItem.pk.exists(),
            )
        except UpdateError as exc:
            raise NotFound(f"no message {message.id} on ticket {ticket_id}") from exc

    # --- listings -------------------------------------------------------------------------
    def list_page(self, flt: TicketFilter, limit: int, cursor: str | None) -> TicketPage:
        if flt.assignee:
            condition = TicketItem.assignee_sk.startswith(f"{flt.status}#") if flt.status else None
            result = TicketItem.by_assignee.query(
                f"ASSIGNEE#{flt.assignee}",
                range_key_condition=condition,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_assignee", f"ASSIGNEE#{flt.assignee}"),
            )
        elif flt.status:
            result = TicketItem.by_status.query(
                f"STATUS#{flt.status}",
                scan_index_forward=True,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_status", f"STATUS#{flt.status}"),
            )
        elif flt.customer_id:
            result = TicketItem.by_customer.query(
                f"CUSTOMER#{flt.customer_id}",
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_customer", f"CUSTOMER#{flt.customer_id}"),
            )
        else:
            result = TicketItem.by_list.query(
                "TICKET",
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=listing_cursor(cursor, "gsi_list", "TICKET"),
            )
        items = [self._ticket_from_item(item) for item in result]
        return TicketPage(items=items, next_cursor=_encode_cursor(result.last_evaluated_key))

    def open_tickets_of(self, customer_id: str, limit: int = 20) -> list[Ticket]:
        found = TicketItem.by_customer.query(f"CUSTOMER#{customer_id}", scan_index_forward=False, limit=limit)
        return [t for t in (self._ticket_from_item(item) for item in found) if t.is_open]

    # --- clocks ---------------------------------------------------------------------------
    def due_clocks(self, before: datetime, limit: int = 100) -> list[tuple[str, Clock]]:
        found = ClockItem.by_due.query(DUE_PARTITION, ClockItem.due_sk < iso(before), limit=limit)
        return [(item.ticket_id, _clock_from_item(item)) for item in found]

    def breach_clock(self, ticket_id: str, name: str, version: int, at: datetime) -> bool:
        """The same conditional update the state machine makes at the deadline; True if it won."""
        item = ClockItem(pk=ticket_pk(ticket_id), sk=f"CLOCK#{name}")
        try:
            item.update(
                actions=[
                    ClockItem.state.set(CLOCK_BREACHED),
                    ClockItem.ended_at.set(iso(at)),
                    ClockItem.due_pk.remove(),
                    ClockItem.due_sk.remove(),
                ],
                condition=(ClockItem.state == CLOCK_RUNNING) & (ClockItem.version == version),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- mapping --------------------------------------------------------------------------
    @staticmethod
    def _message_item(ticket_id: str, message: Message) -> MessageItem:
        return MessageItem(
            pk=ticket_pk(ticket_id),
            sk=f"MSG#{message.at}#{message.id}",
            ticket_id=ticket_id,
            message_id=message.id,
            direction=message.direction,
            text=message.text,
            at=message.at,
            author=message.author,
            channel=message.channel,
            attachments=message.attachments or None,
            delivery=message.delivery or None,
            delivery_detail=message.delivery_detail or None,
        )

    @staticmethod
    def _item_from_ticket(t: Ticket) -> TicketItem:
        item = TicketItem(
            pk=ticket_pk(t.id),
            sk="META",
            ticket_id=t.id,
            channel=t.channel,
            source=t.source,
            customer_id=t.customer_id,
            created_at=t.created_at,
            updated_at=t.updated_at or t.created_at,
            status=t.status,
            category=t.category,
            priority=t.priority,
            urgent=t.urgent,
            tier=t.tier,
            team=t.team,
            assignee=t.assignee or None,
            subject=t.subject or None,
            region=t.region or None,
            order_id=t.order_id or None,
            public_token=t.public_token or None,
            linked_tickets=list(t.linked_tickets) or None,
            work_order_id=t.work_order_id or None,
            first_response_at=t.first_response_at or None,
            acknowledged_at=t.acknowledged_at or None,
            resolved_at=t.resolved_at or None,
            last_customer_message_at=t.last_customer_message_at or None,
            attributes=t.attributes or None,
            list_pk="TICKET",
            list_sk=f"{t.created_at}#{t.id}",
            status_pk=f"STATUS#{t.status}",
            status_sk=f"{PRIORITY_RANK.get(t.priority, '9')}{'0' if t.tier == 'vip' else '1'}#{t.created_at}#{t.id}",
            customer_pk=f"CUSTOMER#{t.customer_id}",
            customer_sk=f"{t.created_at}#{t.id}",
        )
        if t.assignee:
            item.assignee_pk = f"ASSIGNEE#{t.assignee}"
            item.assignee_sk = f"{t.status}#{t.created_at}#{t.id}"
        if t.version is not None:
            item.version = t.version
        return item

    @staticmethod
    def _ticket_from_item(item: TicketItem) -> Ticket:
        return Ticket(
            id=item.ticket_id,
            channel=item.channel,
            source=item.source,
            customer_id=item.customer_id,
            created_at=item.created_at,
            updated_at=item.updated_at or item.created_at,
            status=item.status,
            category=item.category,
            priority=item.priority,
            urgent=bool(item.urgent),
            tier=item.tier or "normal",
            team=item.team or "agents",
            assignee=item.assignee or "",
            subject=item.subject or "",
            region=item.region or "",
            order_id=item.order_id or "",
            public_token=item.public_token or "",
            linked_tickets=[str(v) for v in (item.linked_tickets or [])],
            work_order_id=item.work_order_id or "",
            first_response_at=item.first_response_at or "",
            acknowledged_at=item.acknowledged_at or "",
            resolved_at=item.resolved_at or "",
            last_customer_message_at=item.last_customer_message_at or "",
            attributes=dict(item.attributes or {}),
            version=int(item.version) if item.version is not None else None,
        )


class DuplicateDelivery(ConflictError):
    """The dedupe record of this delivery already exists: another attempt got there first."""

    code = "duplicate"


class DynamoCustomerRepository:
    """CustomerRepository: profiles plus one identity item per identity for O(1) resolution."""

    def find_by_identities(self, identities: Sequence[str]) -> str | None:
        keys = [(f"IDENTITY#{identity}", "IDENTITY") for identity in dict.fromkeys(identities) if identity]
        if not keys:
            return None
        found = {item.pk: item.customer_id for item in IdentityItem.batch_get(keys)}
        for pk, _ in keys:  # the caller's order is the order of trust (strongest identity first)
            if pk in found:
                return found[pk]
        return None

    def create(self, customer: Customer) -> None:
        item = CustomerItem(
            pk=f"CUSTOMER#{customer.id}",
            sk="PROFILE",
            customer_id=customer.id,
            name=customer.name or None,
            phone=customer.phone or None,
            email=customer.email or None,
            tier=customer.tier,
            identities=list(customer.identities) or None,
            created_at=customer.created_at,
            attributes=customer.attributes or None,
        )
        try:
            item.save(condition=CustomerItem.pk.does_not_exist())
        except PutError as exc:
            raise ConflictError(f"customer {customer.id} exists") from exc
        customer.version = item.version
        self.add_identities(customer.id, customer.identities)

    def add_identities(self, customer_id: str, identities: Sequence[str]) -> None:
        """Claims each identity for the customer; one already claimed by another stays theirs."""
        claimed: list[str] = []
        for identity in identities:
            try:
                IdentityItem(pk=f"IDENTITY#{identity}", sk="IDENTITY", customer_id=customer_id).save(
                    condition=IdentityItem.pk.does_not_exist()
                )
                claimed.append(identity)
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        if claimed:
            self._list_on_profile(customer_id, claimed)

    def _list_on_profile(self, customer_id: str, claimed: Sequence[str], attempts: int = 3) -> None:
        """Newly claimed identities join the profile's list (and fill an empty phone/email)."""
        for _attempt in range(attempts):
            try:
                item = CustomerItem.get(f"CUSTOMER#{customer_id}", "PROFILE", consistent_read=True)
            except DoesNotExist:
                return
            missing = [i for i in claimed if i not in (item.identities or [])]
            if not missing:
                return
            item.identities = [*(item.identities or []), *missing]  # type: ignore[list-item]
            for identity in missing:
                kind, _, value = identity.partition(":")
                if kind == "phone" and not item.phone:
                    item.phone = value
                if kind == "email" and not item.email:
                    item.email = value
            try:
                item.save()  # conditional on the version read
                return
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise

    def get(self, customer_id: str) -> Customer:
        try:
            item = CustomerItem.get(f"CUSTOMER#{customer_id}", "PROFILE")
        except DoesNotExist as exc:
            raise NotFound(f"no customer {customer_id}") from exc
        return Customer(
            id=item.customer_id,
            name=item.name or "",
            phone=item.phone or "",
            email=item.email or "",
            tier=item.tier or "normal",
            identities=[str(v) for v in (item.identities or [])],
            created_at=item.created_at,
            merged_into=item.merged_into or "",
            attributes=dict(item.attributes or {}),
            version=int(item.version) if item.version is not None else None,
        )


class DynamoStaffDirectory:
    """StaffDirectory over STAFF items, listed by gsi_list (a Query, never a Scan)."""

    def get(self, staff_id: str) -> StaffRecord | None:
        try:
            return self._record(StaffItem.get(f"STAFF#{staff_id}", "PROFILE"))
        except DoesNotExist:
            return None

    def all(self) -> list[StaffRecord]:
        return [self._record(item) for item in StaffItem.by_list.query("STAFF")]

    def put(self, staff: StaffRecord) -> None:
        StaffItem(
            pk=f"STAFF#{staff.id}",
            sk="PROFILE",
            staff_id=staff.id,
            name=staff.name,
            roles=list(staff.roles),
            team=staff.team or None,
            regions=list(staff.regions) or None,
            skills=list(staff.skills) or None,
            online=staff.online,
            email=staff.email or None,
            phone=staff.phone or None,
            list_pk="STAFF",
            list_sk=staff.id,
        ).save()

    @staticmethod
    def _record(item: StaffItem) -> StaffRecord:
        return StaffRecord(
            id=item.staff_id,
            name=item.name,
            roles=[str(v) for v in (item.roles or [])],
            team=item.team or "",
            regions=[str(v) for v in (item.regions or [])],
            skills=[str(v) for v in (item.skills or [])],
            online=bool(item.online),
            email=item.email or "",
            phone=item.phone or "",
        )
