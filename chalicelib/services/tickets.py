"""Staff actions on tickets: read, acknowledge, reply, note, assign, change status, resolve, reopen."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain import clock_rules
from ..domain.errors import ConflictError, NotFound, ValidationError
from ..domain.sla import SlaPolicy
from ..domain.ticket import STATUS_ACTIONS, STATUSES, Ticket, is_ticket_id, iso, parse_iso
from ..ports import Clock, StaffDirectory, TicketFilter, TicketPage, TicketRepository
from .notifications import stream_detail

MAX_REPLY = 5_000
MAX_PAGE = 100


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff id and their roles."""

    id: str
    roles: tuple[str, ...]


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{field}' must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(f"'{field}' is longer than {limit} characters")
    return value.strip()


def change_ticket(
    tickets: TicketRepository, ticket_id: str, change: Callable[[Ticket], bool | None], attempts: int = 3
) -> Ticket:
    """Loads the ticket, applies `change` and saves it with the version check, reloading and reapplying when
    another writer won the race; `change` returning False means there is nothing to save."""
    if not is_ticket_id(ticket_id):
        raise NotFound(f"no ticket {ticket_id}")
    for _attempt in range(attempts):
        ticket = tickets.get(ticket_id)
        if change(ticket) is False:
            return ticket
        try:
            tickets.save(ticket)
            return ticket
        except ConflictError:
            continue
    raise ConflictError(f"ticket {ticket_id} is changing too fast; try again")


class TicketActions:
    """Each action loads the aggregate, applies the change, and saves it; a lost race is retried."""

    def __init__(
        self, tickets: TicketRepository, staff: StaffDirectory, clock: Clock, policy: SlaPolicy, attempts: int = 3
    ) -> None:
        self.tickets = tickets
        self.staff = staff
        self.clock = clock
        self.policy = policy
        self.attempts = attempts

    def get(self, ticket_id: str) -> Ticket:
        if not is_ticket_id(ticket_id):
            raise NotFound(f"no ticket {ticket_id}")
        return self.tickets.get(ticket_id)

    def list(self, *, status: str = "", assignee: str = "", limit: int = 50, cursor: str | None = None) -> TicketPage:
        if status and status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        return self.tickets.list_page(TicketFilter(status=status, assignee=assignee), limit, cursor)

    def _change(self, ticket_id: str, change: Callable[[Ticket], bool | None]) -> Ticket:
        return change_ticket(self.tickets, ticket_id, change, self.attempts)

    def ack(self, ticket_id: str, actor: Actor) -> Ticket:
        def change(t: Ticket) -> None:
            now = self.clock.now()
            t.apply("ack", now, actor.id)
            if not t.assignee:
                t.assignee = actor.id
            t.acknowledged_at = iso(now)
            clock_rules.on_acknowledged(t, now)
            clock_rules.on_work_accepted(t, now, self.policy)

        return self._change(ticket_id, change)

    def reply(self, ticket_id: str, actor: Actor, text: object) -> Ticket:
        body = _text(text, "text", MAX_REPLY)

        def change(t: Ticket) -> None:
            now = self.clock.now()
            message = t.add_message("out", body, now, actor.id)
            t.apply("reply", now, actor.id, message_id=message.id)
            if not t.assignee:
                t.assignee = actor.id
            if not t.first_response_at:
                t.first_response_at = iso(now)
            clock_rules.on_acknowledged(t, now)
            clock_rules.on_replied(t, now, self.policy)

        return self._change(ticket_id, change)

    def note(self, ticket_id: str, actor: Actor, text: object) -> Ticket:
        body = _text(text, "text", MAX_REPLY)

        def change(t: Ticket) -> None:
            now = self.clock.now()
            note = t.add_note(body, now, actor.id)
            t.record(now, actor.id, "note", note_id=note.id)

        return self._change(ticket_id, change)

    def callback_done(self, ticket_id: str, actor: Actor, outcome: object) -> Ticket:
        """The supervisor called the dissatisfied customer back: what came of it, and the callback clock ends."""
        body = _text(outcome, "outcome", MAX_REPLY)

        def change(t: Ticket) -> None:
            clock = t.clocks.get(clock_rules.CALLBACK)
            done = [int(v) for v in t.attributes.get("callbacks_done", [])]
            if clock is None or clock.version in done:  # a missed (breached) callback is still owed
                raise ConflictError(f"no callback is owed on ticket {t.id}")
            now = self.clock.now()
            clock_rules.on_callback_done(t, now)
            t.attributes["callbacks_done"] = [*done, clock.version]
            t.record(now, actor.id, "callback_done", outcome=body, version=clock.version)

        return self._change(ticket_id, change)

    def assign(self, ticket_id: str, actor: Actor, assignee: object) -> Ticket:
        if not isinstance(assignee, str) or not assignee.strip():
            raise ValidationError("'assignee' must be a staff id")
        member = self.staff.get(assignee.strip())
        if member is None:
            raise ValidationError(f"no staff member {assignee!r}")

        def change(t: Ticket) -> bool:
            if t.assignee == member.id and t.is_open:
                return False  # already theirs: no timeline entry, and the acknowledgement clock keeps running
            now = self.clock.now()
            previous = t.assignee
            t.apply("assign", now, actor.id, assignee=member.id, previous=previous or None)
            t.assignee = member.id
            if member.team:
                t.team = member.team
            clock_rules.on_assigned(t, now, self.policy)
            clock_rules.on_status_changed(t, now, self.policy)
            return True

        return self._change(ticket_id, change)

    def set_status(self, ticket_id: str, actor: Actor, status: object) -> Ticket:
        if not isinstance(status, str) or status not in STATUSES:
            raise ValidationError(f"'status' must be one of {', '.join(STATUSES)}")
        if status == "resolved":
            return self.resolve(ticket_id, actor)
        if status == "acknowledged":
            return self.ack(ticket_id, actor)
        action = STATUS_ACTIONS.get(status)
        if action is None:
            raise ValidationError(f"status {status!r} is reached by its own action (assign, reopen), not set directly")

        def change(t: Ticket) -> None:
            now = self.clock.now()
            t.apply(action, now, actor.id)
            clock_rules.on_status_changed(t, now, self.policy)
            if status == "closed":
                clock_rules.on_closed(t, now)

        return self._change(ticket_id, change)

    def resolve(self, ticket_id: str, actor: Actor) -> Ticket:
        def change(t: Ticket) -> None:
            now = self.clock.now()
            t.apply("resolve", now, actor.id)
            t.resolved_at = iso(now)
            clock_rules.on_closed(t, now)

        return self._change(ticket_id, change)

    def reopen(self, ticket_id: str, actor: Actor) -> Ticket:
        def change(t: Ticket) -> None:
            now = self.clock.now()
            t.apply("reopen", now, actor.id)
            t.resolved_at = ""
            clock_rules.on_work_accepted(t, now, self.policy)

        return self._change(ticket_id, change)

    def on_customer_reply(self, image: dict[str, Any]) -> None:
        """A customer's reply took the ticket out of waiting_on_customer (EVT# insert): resume its clocks then."""
        if stream_detail(image).get("from") != clock_rules.WAITING:
            return
        resumed_at = parse_iso(str(image["at"]))

        def change(t: Ticket) -> None:
            if t.status != clock_rules.WAITING:
                clock_rules.on_resumed(t, resumed_at, self.policy)

        self._change(str(image["ticket_id"]), change)
