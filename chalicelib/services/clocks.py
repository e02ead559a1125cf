"""What happens at a clock's milestones: start (urgent alert), warning, breach → escalation; and the sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..domain import clock_rules
from ..domain.errors import ConflictError, NotFound
from ..domain.sla import SlaPolicy
from ..domain.ticket import CLOCK_BREACHED, CLOCK_RUNNING, Ticket, iso
from ..ports import Clock, Publisher, StaffDirectory, StaffRecord, TicketRepository

CLOCK_TOPIC = "kefu-clock-events"
STAFF_TOPIC = "kefu-staff-notifications"
SWEEP_GRACE = timedelta(seconds=30)
WARNING_CANDIDATES = 500  # running clocks the sweep inspects for a missed warning per run


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
    """Turns clock reports into timeline entries: escalations (with reassignment and the next level's
    clock), warnings and urgent alerts. Notifications follow from those entries (NotificationService)."""

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
        return self._change(breach.ticket_id, lambda ticket: self._escalate(ticket, breach))

    def on_notice(self, message: dict[str, Any]) -> bool:
        """`clock.warning` or `clock.started` from the state machine (or the sweep): once per clock run."""
        kind = str(message.get("type", ""))
        name, version = str(message["clock"]), int(message["version"])
        if kind == "clock.warning":
            return self._change(str(message["ticket_id"]), lambda t: self._warn(t, name, version))
        if kind == "clock.started":
            return self._change(str(message["ticket_id"]), lambda t: self._announce(t, name, version))
        return False

    def _change(self, ticket_id: str, change: Any) -> bool:
        for _attempt in range(3):
            try:
                ticket = self.tickets.get(ticket_id)
            except NotFound:
                return False
            if not change(ticket):
                return False
            try:
                self.tickets.save(ticket)
            except ConflictError:
                continue
            return True
        raise ConflictError(f"could not record the clock event of {ticket_id}")

    @staticmethod
    def _first_time(ticket: Ticket, key: str, marker: str) -> bool:
        done: list[str] = list(ticket.attributes.get(key, []))
        if marker in done:
            return False
        ticket.attributes[key] = [*done, marker]
        return True

    def _escalate(self, ticket: Ticket, breach: Breach) -> bool:
        clock = ticket.clocks.get(breach.clock)
        if clock is None or clock.version != breach.version or clock.state != CLOCK_BREACHED:
            return False
        if not self._first_time(ticket, "escalations", f"{breach.clock}:{breach.version}"):
            return False
        now = self.clock.now()
        step = clock_rules.escalation_for(breach.clock, clock.level)
        target = self._pick(step.role, ticket)
        previous = ticket.assignee
        detail: dict[str, Any] = {
            "clock": breach.clock,
            "version": breach.version,
            "level": step.level,
            "role": step.role,
            "due_at": clock.due_at,
        }
        if target:
            detail["to"] = target.id
        if previous:
            detail["from"] = previous
        ticket.record(now, "system", "escalated", **detail)
        ticket.attributes["breaches"] = int(ticket.attributes.get("breaches", 0)) + 1
        if not ticket.is_open:
            return True
        if step.reassign:
            if not target:
                return True
            if ticket.can("assign"):
                ticket.apply(
                    "assign", now, "system", assignee=target.id, previous=previous or None, reason="escalation"
                )
                ticket.assignee = target.id
        clock_rules.rearm_after_breach(ticket, breach.clock, now, self.policy, step.level)
        return True

    def _warn(self, ticket: Ticket, name: str, version: int) -> bool:
        clock = ticket.clocks.get(name)
        if clock is None or clock.version != version or clock.state != CLOCK_RUNNING or not ticket.is_open:
            return False
        if not self._first_time(ticket, "clock_notices", f"warning:{name}:{version}"):
            return False
        target = ticket.assignee or (self._pick("supervisor", ticket) or StaffRecord("", "", [])).id
        detail: dict[str, Any] = {"clock": name, "version": version, "level": clock.level, "due_at": clock.due_at}
        if target:
            detail["to"] = target
        ticket.record(self.clock.now(), "system", "clock_warning", **detail)
        return True

    def _announce(self, ticket: Ticket, name: str, version: int) -> bool:
        clock = ticket.clocks.get(name)
        role = clock_rules.ANNOUNCED.get(name)
        if clock is None or clock.version != version or role is None or not ticket.is_open:
            return False
        if not self._first_time(ticket, "clock_notices", f"announce:{name}:{version}"):
            return False
        recipients = sorted(s.id for s in self.staff.all() if role in s.roles)
        ticket.record(
            self.clock.now(),
            "system",
            "urgent_alert",
            clock=name,
            version=version,
            role=role,
            due_at=clock.due_at,
            recipients=recipients,
        )
        return True

    def _pick(self, role: str, ticket: Ticket) -> StaffRecord | None:
        staff = [s for s in self.staff.all() if role in s.roles]
        same_team = [s for s in staff if ticket.team and s.team == ticket.team]
        return _least_loaded(same_team or staff, {})


class ClockMarks(Protocol):
    """The warning mark on a clock item (the same conditional write the state machine makes)."""

    def warn_clock(self, ticket_id: str, name: str, version: int, at: datetime) -> bool: ...


class ClockSweep:
    """Reconciliation: fires every running clock whose deadline (or warning) passed without its execution, once."""

    def __init__(
        self,
        tickets: TicketRepository,
        publisher: Publisher,
        clock: Clock,
        policy: SlaPolicy | None = None,
        marks: ClockMarks | None = None,
    ) -> None:
        self.tickets = tickets
        self.publisher = publisher
        self.clock = clock
        self.policy = policy
        self.marks = marks
        self.last_warned: list[str] = []

    def run(self, limit: int = 100) -> list[Breach]:
        now = self.clock.now()
        fired = []
        for ticket_id, clock in self.tickets.due_clocks(now - SWEEP_GRACE, limit=limit):
            if self.tickets.breach_clock(ticket_id, clock.name, clock.version, now):
                breach = Breach(ticket_id, clock.name, clock.version, clock.level)
                self.publisher.publish(CLOCK_TOPIC, breach.to_message(clock.due_at))
                fired.append(breach)
        self.last_warned = self.warn(now)
        return fired

    def warn(self, now: datetime) -> list[str]:
        """Publishes `clock.warning` for running clocks past their warning time that were never warned."""
        if self.policy is None or self.marks is None:
            return []
        policy, warned = self.policy, []
        horizon = now + self._lookahead(now, policy)
        for ticket_id, clock in self.tickets.due_clocks(horizon, limit=WARNING_CANDIDATES):
            if clock.name not in clock_rules.WARNED or clock.due_at < iso(now - SWEEP_GRACE):
                continue
            warn_at = clock_rules.warning_at(clock_rules.channel_of(ticket_id), clock, policy)
            if warn_at is None or warn_at > now - SWEEP_GRACE:
                continue
            if self.marks.warn_clock(ticket_id, clock.name, clock.version, now):
                message = {
                    "type": "clock.warning",
                    "ticket_id": ticket_id,
                    "clock": clock.name,
                    "version": clock.version,
                    "level": clock.level,
                    "due_at": clock.due_at,
                    "warn_at": iso(warn_at),
                }
                self.publisher.publish(CLOCK_TOPIC, message)
                warned.append(f"{ticket_id}-{clock.name}-{clock.version}")
        return warned

    @staticmethod
    def _lookahead(now: datetime, policy: SlaPolicy) -> timedelta:
        """How far ahead a due time can lie for its warning to have passed: the longest warning tail, in wall time."""
        longest = max([*policy.first_response.values(), *policy.resolution.values()], default=timedelta(0))
        tail = longest * (1 - policy.warning_ratio)
        names = {policy.business_calendar, *policy.channel_calendars.values()}
        return max(policy.calendar_named(name).add(now, tail) - now for name in names)
