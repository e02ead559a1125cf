"""Intake: turns a verified InboundMessage into a ticket (or a message on one), exactly once."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from ..domain.errors import ConflictError, ValidationError
from ..domain.messages import InboundMessage
from ..domain.ticket import CATEGORIES, Ticket, format_ticket_id, iso
from ..ports import Clock, CustomerRepository, DedupeRecord, TicketRepository
from .customers import CustomerService

DEDUPE_RETENTION = timedelta(days=30)
MAX_TEXT = 20_000


@dataclass(frozen=True)
class IntakeResult:
    """What a webhook answers: the ticket the message landed on, and whether it was a repeat."""

    ticket_id: str
    message_id: str
    duplicate: bool
    created: bool = False
    public_token: str = ""
    ignored: bool = False  # an event that opens no ticket (e.g. WeChat subscribe)


class IntakeService:
    """Dedupe, identify the customer, then create a ticket or join the customer's open one."""

    def __init__(
        self,
        tickets: TicketRepository,
        customers: CustomerRepository,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self.tickets = tickets
        self.customer_service = CustomerService(customers)
        self.clock = clock
        self.zone = zone

    def receive(self, msg: InboundMessage) -> IntakeResult:
        if not msg.dedupe_key:
            raise ValidationError("message has no delivery id to deduplicate on")
        if msg.kind == "event":
            return IntakeResult(ticket_id="", message_id="", duplicate=False, ignored=True)
        if not msg.text.strip() and not msg.attachments:
            raise ValidationError("message has neither text nor attachments")
        if len(msg.text) > MAX_TEXT:
            raise ValidationError(f"message text is longer than {MAX_TEXT} characters")
        seen = self.tickets.get_dedupe(msg.dedupe_key)
        if seen:
            return IntakeResult(ticket_id=seen.ticket_id, message_id=seen.message_id, duplicate=True)
        now = self.clock.now()
        customer_id = self.customer_service.resolve(msg.customer, msg.source, now)
        for _attempt in range(3):
            try:
                return self._land(msg, customer_id)
            except ConflictError:
                seen = self.tickets.get_dedupe(msg.dedupe_key)
                if seen:
                    return IntakeResult(ticket_id=seen.ticket_id, message_id=seen.message_id, duplicate=True)
        raise ConflictError("the ticket kept changing while this message was added; the platform may retry")

    def _land(self, msg: InboundMessage, customer_id: str) -> IntakeResult:
        now = self.clock.now()
        expires = int((now + DEDUPE_RETENTION).timestamp())
        attachments = [{"url": a.url, "type": a.type, "name": a.name} for a in msg.attachments]
        open_tickets = self.tickets.open_tickets_of(customer_id)
        for merged in self.customer_service.family(customer_id)[1:]:  # customers staff merged into this one
            open_tickets += self.tickets.open_tickets_of(merged)
        threaded = self._threaded_ticket(msg)
        if threaded is not None and threaded.status != "closed":
            return self._join_thread(threaded, msg, attachments, expires)
        # A staff-logged request (walk-in, phone) is always a ticket of its own; linked if others are open.
        logged_by = str(msg.metadata.get("logged_by", ""))
        same_channel = [] if logged_by else [t for t in open_tickets if t.channel == msg.channel]
        if same_channel:
            ticket = self.tickets.get(same_channel[0].id)
            message = ticket.add_message("in", msg.text, now, "customer", attachments=attachments)
            ticket.apply("customer_reply", now, "customer", message_id=message.id, channel=msg.channel)
            self.tickets.save(
                ticket, dedupe=DedupeRecord(msg.dedupe_key, ticket.id, message.id), dedupe_ttl=expires
            )
            return IntakeResult(ticket_id=ticket.id, message_id=message.id, duplicate=False)

        day = now.astimezone(self.zone).strftime("%Y%m%d")
        ticket_id = format_ticket_id(msg.channel, day, self.tickets.next_serial(msg.channel, day))
        ticket = Ticket(
            id=ticket_id,
            channel=msg.channel,
            source=msg.source,
            customer_id=customer_id,
            created_at=iso(now),
            category=msg.category_hint if msg.category_hint in CATEGORIES else "consultation",
            urgent=msg.urgent,
            subject=msg.subject[:300],
            region=msg.region,
            order_id=msg.order_id,
            public_token=secrets.token_urlsafe(18),
        )
        if msg.category_hint in CATEGORIES:
            ticket.attributes["category_source"] = "hint"
        message = ticket.add_message("in", msg.text, now, "customer", attachments=attachments)
        ticket.record(
            now, logged_by or "customer", "created", channel=msg.channel, source=msg.source, message_id=message.id
        )
        if open_tickets:
            owner = open_tickets[0]
            ticket.linked_tickets.append(owner.id)
            ticket.attributes["linked_owner"] = owner.assignee
            ticket.record(now, "system", "linked", ticket=owner.id, reason="customer has an open ticket")
            if owner.assignee:  # one customer, one owner: the linked request goes to the open ticket's assignee
                ticket.assignee, ticket.team = owner.assignee, owner.team
                ticket.apply("assign", now, "system", assignee=owner.assignee, reason="owner of linked ticket")
        if threaded is not None and threaded.id not in ticket.linked_tickets:
            ticket.linked_tickets.append(threaded.id)
            ticket.record(now, "system", "linked", ticket=threaded.id, reason="reply to a closed ticket")
        self.tickets.create(ticket, dedupe=DedupeRecord(msg.dedupe_key, ticket.id, message.id), dedupe_ttl=expires)
        return IntakeResult(
            ticket_id=ticket.id, message_id=message.id, duplicate=False, created=True, public_token=ticket.public_token
        )

    def _threaded_ticket(self, msg: InboundMessage) -> Ticket | None:
        """The ticket an email reply threads onto (the email handler resolved its In-Reply-To/References)."""
        if not msg.ticket_hint or not msg.thread_refs:
            return None
        return self.tickets.find(msg.ticket_hint)

    def _join_thread(
        self, ticket: Ticket, msg: InboundMessage, attachments: list[dict[str, str]], expires: int
    ) -> IntakeResult:
        """A reply joins its thread's ticket; a resolved ticket is reopened by it (customer_reply)."""
        now = self.clock.now()
        message = ticket.add_message("in", msg.text, now, "customer", attachments=attachments, channel=msg.channel)
        ticket.apply("customer_reply", now, "customer", message_id=message.id, channel=msg.channel, threaded=True)
        ticket.resolved_at = ""  # a reply to a resolved ticket reopens it
        self.tickets.save(ticket, dedupe=DedupeRecord(msg.dedupe_key, ticket.id, message.id), dedupe_ttl=expires)
        return IntakeResult(ticket_id=ticket.id, message_id=message.id, duplicate=False)
