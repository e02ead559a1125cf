"""What happens when a clock's deadline passes: escalation up the ladder, and the reconciliation sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..domain import clock_rules
from ..domain.errors import ConflictError, NotFound
from ..domain.sla import SlaPolicy
from ..domain.ticket import CLOCK_BREACHED, Ticket
from ..ports import Clock, Publisher, StaffDirectory, StaffRecord, TicketRepository

CLOCK_TOPIC = "kefu-clock-events"
STAFF_TOPIC = "kefu-staff-notifications"
SWEEP_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Breach:
    """A clock that passed its deadline, as the state machine (or the sweep) reports it."""

    ticket_id: str
    clock: str
    version: int
    level: int = 0

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Breach:
        return cls(
            ticket_id=str(message["ticket_id"]),
            clock=str(message["clock"]),
            version=int(message["version"]),
            level=int(message.get("level", 0)),
        )

    def to_message(self, due_at: str) -> dict[str, Any]:
        return {
            "type": "clock.breached",
            "ticket_id": self.ticket_id,
            "clock": self.clock,
            "version": self.version,
            "level": self.level,
            "due_at": due_at,
        }


def _least_loaded(candidates: list[StaffRecord], load: dict[str, int]) -> StaffRecord | None:
    ranked = sorted(candidates, key=lambda s: (not s.online, load.get(s.id, 0), s.id))
    return ranked[0] if ranked else None


class EscalationService:
    """Turns a breached clock into an escalation: timeline entry, new owner, next level's clock, notice."""

    def __init__(
        self,
        tickets: TicketRepository,
        staff: StaffDirectory,
        publisher: Publisher,
        clock: Clock,
        policy: SlaPolicy,
    ) -> None:
        self.tickets = tickets
        self.staff = staff
        self.publisher = publisher
        self.clock = clock
        self.policy = policy

    def on_breach(self, breach: Breach) -> bool:
        """Escalates once per clock run; a stale or repeated report changes nothing. True if it escalated."""
        for _attempt in range(3):
            try:
                ticket = self.tickets.get(breach.ticket_id)
            except NotFound:
                return False
            escalated = self._escalate(ticket, breach)
            if escalated is None:
                return False
            try:
                self.tickets.save(ticket)
            except ConflictError:
                continue
            self.publisher.publish(STAFF_TOPIC, escalated, subject=f"kefu escalation {ticket.id}")
            return True
        raise ConflictError(f"could not record the escalation of {breach.ticket_id}")

    def _escalate(self, ticket: Ticket, breach: Breach) -> dict[str, Any] | None:
        clock = ticket.clocks.get(breach.clock)
        if clock is None or clock.version != breach.version or clock.state != CLOCK_BREACHED:
            return None
        done: list[str] = list(ticket.attributes.get("escalations", []))
        marker = f"{breach.clock}:{breach.version}"
        if marker in done:
            return None
        now = self.clock.now()
        level = clock.level + 1
        role = clock_rules.ACK_LADDER[min(level, len(clock_rules.ACK_LADDER) - 1)]
        target = self._pick(role, ticket)
        previous = ticket.assignee
        detail: dict[str, Any] = {"clock": breach.clock, "level": level, "role": role, "due_at": clock.due_at}
        if target:
            detail["to"] = target.id
        if previous:
            detail["from"] = previous
        ticket.record(now, "system", "escalated", **detail)
        done.append(marker)
        ticket.attributes["escalations"] = done
        ticket.attributes["breaches"] = int(ticket.attributes.get("breaches", 0)) + 1
        if breach.clock == clock_rules.ACK and target and ticket.is_open:
            if ticket.can("assign"):
                ticket.apply(
                    "assign", now, "system", assignee=target.id, previous=previous or None, reason="escalation"
                )
                ticket.assignee = target.id
            if level < len(clock_rules.ACK_LADDER) - 1:
                clock_rules.on_assigned(ticket, now, self.policy, level=level)
        return {"type": "escalation", "ticket_id": ticket.id, "to": target.id if target else None, **detail}

    def _pick(self, role: str, ticket: Ticket) -> StaffRecord | None:
        staff = [s for s in self.staff.all() if role in s.roles]
        same_team = [s for s in staff if ticket.team and s.team == ticket.team]
        return _least_loaded(same_team or staff, {})


class ClockSweep:
    """Reconciliation: fires every running clock whose deadline passed without its execution, once."""

    def __init__(self, tickets: TicketRepository, publisher: Publisher, clock: Clock) -> None:
        self.tickets = tickets
        self.publisher = publisher
        self.clock = clock

    def run(self, limit: int = 100) -> list[Breach]:
        now = self.clock.now()
        fired = []
        for ticket_id, clock in self.tickets.due_clocks(now - SWEEP_GRACE, limit=limit):
            if self.tickets.breach_clock(ticket_id, clock.name, clock.version, now):
                breach = Breach(ticket_id, clock.name, clock.version, clock.level)
                self.publisher.publish(CLOCK_TOPIC, breach.to_message(clock.due_at))
                fired.append(breach)
        return fired
