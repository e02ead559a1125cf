"""Customer identity: one profile per person across channels; staff merge/un-merge customers and link tickets."""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..channels.email import normalize_email
from ..channels.twilio import normalize_phone
from ..domain.errors import ConflictError, NotFound, ValidationError
from ..domain.messages import CustomerRef
from ..domain.ticket import Ticket, is_ticket_id, iso
from ..ports import Clock, Customer, CustomerRepository, TicketFilter, TicketRepository
from .tickets import change_ticket

MAX_MERGE_HOPS = 5
MAX_CUSTOMER_TICKETS = 200
TICKET_ATTEMPTS = 3


def identities_of(ref: CustomerRef, source: str) -> list[str]:
    """The identities a reference carries, strongest first (member id, UnionID, channel id, phone, email).

    Phones are E.164 (`phone:+8613800138000`), emails lower-case (`email:a@b.cn`), a channel's own id is
    `{source}:{id}` (`wechat:<OpenID>`, `douyin:<uid>`), a WeChat UnionID `wechat_union:<id>`.
    """
    found = []
    if ref.member_id.strip():
        found.append(f"member:{ref.member_id.strip()}")
    if ref.union_id.strip():
        found.append(f"wechat_union:{ref.union_id.strip()}")
    if ref.external_id.strip():
        found.append(f"{source}:{ref.external_id.strip()}")
    phone = normalize_phone(ref.phone) if ref.phone.strip() else ""
    if phone:
        found.append(f"phone:{phone}")
    email = normalize_email(ref.email) if ref.email.strip() else ""
    if "@" in email:
        found.append(f"email:{email}")
    return list(dict.fromkeys(found))


def identity_value(identities: Sequence[str], kind: str) -> str:
    """The value of the first identity of `kind` (`wechat`, `phone`, `email`…), or ""."""
    prefix = f"{kind}:"
    return next((i[len(prefix) :] for i in identities if i.startswith(prefix)), "")


class CustomerService:
    """Finds or creates the customer behind a CustomerRef; new identities join the matched profile."""

    def __init__(self, customers: CustomerRepository) -> None:
        self.customers = customers

    def resolve(self, ref: CustomerRef, source: str, at: datetime) -> str:
        identities = identities_of(ref, source)
        existing = self.customers.find_by_identities(identities)
        if existing:
            existing = self.current(existing)
            self.customers.add_identities(existing, identities)
            return existing
        phone = normalize_phone(ref.phone) if ref.phone.strip() else ""
        customer = Customer(
            id="C" + secrets.token_hex(8),
            name=ref.name,
            phone=phone,
            email=normalize_email(ref.email) if ref.email.strip() else "",
            identities=identities,
            created_at=iso(at),
        )
        self.customers.create(customer)
        # Two first deliveries may race: the identity index decides who owns the person.
        winner = self.customers.find_by_identities(identities)
        return winner or customer.id

    def current(self, customer_id: str) -> str:
        """The customer a (possibly merged-away) id stands for now: `merged_into` is followed."""
        seen = [customer_id]
        for _hop in range(MAX_MERGE_HOPS):
            try:
                merged_into = self.customers.get(seen[-1]).merged_into
            except NotFound:
                break
            if not merged_into or merged_into in seen:
                break
            seen.append(merged_into)
        return seen[-1]

    def family(self, customer_id: str) -> list[str]:
        """The customer and every customer merged into it: whose tickets count as this person's."""
        try:
            merged_from = self.customers.get(customer_id).attributes.get("merged_from") or []
        except NotFound:
            merged_from = []
        return [customer_id, *(str(c) for c in merged_from if c != customer_id)]


@dataclass(frozen=True)
class MergeRecord:
    """What one merge moved (kept so un-merge restores it exactly)."""

    source_id: str
    into_id: str
    state: str  # active | undone
    identities_moved: tuple[str, ...]
    identities_added: tuple[str, ...]  # the moved identities that were new on the target's profile
    tickets: tuple[str, ...]  # the source's tickets at merge time
    merged_at: str
    merged_by: str
    unmerged_at: str = ""
    unmerged_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "into": self.into_id,
            "state": self.state,
            "identities_moved": list(self.identities_moved),
            "tickets": list(self.tickets),
            "merged_at": self.merged_at,
            "merged_by": self.merged_by,
            "unmerged_at": self.unmerged_at or None,
            "unmerged_by": self.unmerged_by or None,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One audited change of a customer: who did what, when."""

    customer_id: str
    at: str
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "action": self.action, **self.detail}


class CustomerLedger(Protocol):
    """Profile changes, identity re-pointing, merge records and the customer audit log."""

    def update_profile(
        self,
        customer_id: str,
        *,
        add_identities: Sequence[str] = (),
        remove_identities: Sequence[str] = (),
        merged_into: str | None = None,
        add_merged_from: Sequence[str] = (),
        remove_merged_from: Sequence[str] = (),
        attributes: dict[str, Any] | None = None,
    ) -> None: ...

    def repoint_identity(self, identity: str, from_id: str, to_id: str) -> bool: ...

    def put_merge(self, record: MergeRecord) -> None: ...

    def merges_of(self, customer_id: str, limit: int = 20) -> list[MergeRecord]: ...

    def audit(self, entry: AuditEntry) -> None: ...

    def audit_log(self, customer_id: str, limit: int = 100) -> list[AuditEntry]: ...


class CustomerAdmin:
    """Staff operations on customers and ticket links; every step is audited and can be undone."""

    def __init__(
        self, customers: CustomerRepository, ledger: CustomerLedger, tickets: TicketRepository, clock: Clock
    ) -> None:
        self.customers = customers
        self.ledger = ledger
        self.tickets = tickets
        self.clock = clock
        self.identity = CustomerService(customers)

    # --- reading ----------------------------------------------------------------------------
    def get(self, customer_id: str) -> Customer:
        if not customer_id.startswith("C") or len(customer_id) > 40:
            raise NotFound(f"no customer {customer_id}")
        return self.customers.get(customer_id)

    def tickets_of(self, customer_id: str) -> list[Ticket]:
        found: list[Ticket] = []
        cursor: str | None = None
        while len(found) < MAX_CUSTOMER_TICKETS:
            page = self.tickets.list_page(TicketFilter(customer_id=customer_id), 100, cursor)
            found.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        return found

    def view(self, customer_id: str) -> dict[str, Any]:
        """Profile, identities, merges, audit log and the tickets of the customer and those merged into it."""
        customer = self.get(customer_id)
        family = self.identity.family(customer.id)
        tickets = [t for member in family for t in self.tickets_of(member)]
        tickets.sort(key=lambda t: t.created_at, reverse=True)
        attributes = dict(customer.attributes)
        merged_from = [str(c) for c in attributes.pop("merged_from", [])]
        return {
            "id": customer.id,
            "name": customer.name,
            "phone": customer.phone,
            "email": customer.email,
            "tier": customer.tier,
            "identities": list(customer.identities),
            "created_at": customer.created_at,
            "merged_into": customer.merged_into or None,
            "merged_from": merged_from,
            "attributes": attributes,
            "tickets": [t.summary() for t in tickets],
            "merges": [m.to_json() for m in self.ledger.merges_of(customer.id)],
            "audit": [a.to_json() for a in self.ledger.audit_log(customer.id)],
        }

    # --- merge and un-merge -----------------------------------------------------------------
    def merge(self, source_id: str, into: object, actor: str) -> dict[str, Any]:
        if not isinstance(into, str) or not into.strip():
            raise ValidationError("'into' must be a customer id")
        source, target = self.get(source_id), self.get(into.strip())
        if source.id == target.id:
            raise ValidationError("a customer cannot be merged into itself")
        if source.merged_into:
            raise ConflictError(f"customer {source.id} is already merged into {source.merged_into}")
        if target.merged_into:
            raise ConflictError(f"customer {target.id} is merged into {target.merged_into}; merge into that one")
        if target.attributes.get("merged_from") and source.id in target.attributes["merged_from"]:
            raise ConflictError(f"customer {source.id} is already merged into {target.id}")
        if source.attributes.get("merged_from"):
            raise ConflictError(f"customer {source.id} has customers merged into it; un-merge them first")
        now = self.clock.now()
        moved = [i for i in source.identities if self.ledger.repoint_identity(i, source.id, target.id)]
        added = [i for i in moved if i not in target.identities]
        ticket_ids = [t.id for t in self.tickets_of(source.id)]
        record = MergeRecord(
            source_id=source.id,
            into_id=target.id,
            state="active",
            identities_moved=tuple(moved),
            identities_added=tuple(added),
            tickets=tuple(ticket_ids),
            merged_at=iso(now),
            merged_by=actor,
        )
        self.ledger.put_merge(record)
        self.ledger.update_profile(target.id, add_identities=added, add_merged_from=[source.id])
        self.ledger.update_profile(source.id, merged_into=target.id)
        for ticket_id in ticket_ids:
            self._record_on_ticket(ticket_id, now, actor, "customer_merged", customer=source.id, into=target.id)
        detail = {"source": source.id, "into": target.id, "identities": moved, "tickets": ticket_ids}
        self.ledger.audit(AuditEntry(source.id, iso(now), actor, "merged", detail))
        self.ledger.audit(AuditEntry(target.id, iso(now), actor, "merged", detail))
        return self.view(source.id)

    def unmerge(self, source_id: str, actor: str) -> dict[str, Any]:
        source = self.get(source_id)
        record = next((m for m in self.ledger.merges_of(source.id) if m.state == "active"), None)
        if not source.merged_into or record is None:
            raise ConflictError(f"customer {source.id} is not merged into another customer")
        now = self.clock.now()
        restored = [i for i in record.identities_moved if self.ledger.repoint_identity(i, record.into_id, source.id)]
        self.ledger.update_profile(
            record.into_id, remove_identities=record.identities_added, remove_merged_from=[source.id]
        )
        self.ledger.update_profile(source.id, merged_into="")
        self.ledger.put_merge(
            MergeRecord(**{**record.__dict__, "state": "undone", "unmerged_at": iso(now), "unmerged_by": actor})
        )
        for ticket_id in record.tickets:
            self._record_on_ticket(
                ticket_id, now, actor, "customer_unmerged", customer=source.id, was_merged_into=record.into_id
            )
        detail = {"source": source.id, "from": record.into_id, "identities": restored, "tickets": list(record.tickets)}
        self.ledger.audit(AuditEntry(source.id, iso(now), actor, "unmerged", detail))
        self.ledger.audit(AuditEntry(record.into_id, iso(now), actor, "unmerged", detail))
        return self.view(source.id)

    # --- ticket links -----------------------------------------------------------------------
    def link(self, ticket_id: str, other: object, actor: str) -> Ticket:
        return self._link(ticket_id, other, actor, linking=True)

    def unlink(self, ticket_id: str, other: object, actor: str) -> Ticket:
        return self._link(ticket_id, other, actor, linking=False)

    def _link(self, ticket_id: str, other: object, actor: str, *, linking: bool) -> Ticket:
        if not isinstance(other, str) or not is_ticket_id(other.strip()):
            raise ValidationError("'ticket_id' must be a ticket id like WECHAT-20261123-000042")
        other_id = other.strip()
        if other_id == ticket_id:
            raise ValidationError("a ticket cannot be linked to itself")
        if not is_ticket_id(ticket_id):
            raise NotFound(f"no ticket {ticket_id}")
        first, second = self.tickets.get(ticket_id), self.tickets.get(other_id)
        if (other_id in first.linked_tickets) == linking and (ticket_id in second.linked_tickets) == linking:
            return first  # already as asked: nothing to change, nothing to audit
        now = self.clock.now()
        action = "linked" if linking else "unlinked"
        for this, that in ((ticket_id, other_id), (other_id, ticket_id)):

            def change(t: Ticket, that: str = that) -> bool:
                if (that in t.linked_tickets) == linking:
                    return False
                if linking:
                    t.linked_tickets.append(that)
                else:
                    t.linked_tickets.remove(that)
                t.record(now, actor, action, ticket=that)
                return True

            self._change_ticket(this, change)
        for customer_id in dict.fromkeys((first.customer_id, second.customer_id)):
            self.ledger.audit(
                AuditEntry(customer_id, iso(now), actor, f"ticket_{action}", {"tickets": [ticket_id, other_id]})
            )
        return self.tickets.get(ticket_id)

    def _record_on_ticket(self, ticket_id: str, at: datetime, actor: str, action: str, **detail: Any) -> None:
        def change(t: Ticket) -> bool:
            t.record(at, actor, action, **detail)
            return True

        self._change_ticket(ticket_id, change)

    def _change_ticket(self, ticket_id: str, change: Callable[[Ticket], bool]) -> Ticket:
        return change_ticket(self.tickets, ticket_id, change, TICKET_ATTEMPTS)
