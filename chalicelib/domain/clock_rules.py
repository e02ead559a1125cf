"""Which clocks a ticket change arms, satisfies or stops — the one place clock policy is decided."""
from __future__ import annotations

from datetime import datetime

from .sla import SlaPolicy
from .ticket import CLOCK_RUNNING, CLOCK_STOPPED, Ticket, parse_iso

ACK = "ack"
# Escalation ladder of the acknowledgement clock: who must acknowledge at each level.
ACK_LADDER = ("assignee", "supervisor", "manager")


def on_assigned(ticket: Ticket, at: datetime, policy: SlaPolicy, *, level: int = 0) -> None:
    """Assignment (re)starts the acknowledgement clock for the new owner."""
    ticket.arm_clock(ACK, at, policy.ack, level=level)


def on_acknowledged(ticket: Ticket, at: datetime) -> None:
    """Acknowledging in time satisfies the acknowledgement clock."""
    ticket.end_clock(ACK, at)


def on_closed(ticket: Ticket, at: datetime) -> None:
    """Resolving or closing stops every clock still running."""
    for name, clock in list(ticket.clocks.items()):
        if clock.state == CLOCK_RUNNING:
            ticket.end_clock(name, at, CLOCK_STOPPED)


FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
URGENT = "urgent"


def on_triaged(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """Once priority and urgency are known, the response and resolution clocks run from the ticket's creation."""
    created = parse_iso(ticket.created_at)
    if not ticket.first_response_at:
        ticket.arm_clock(FIRST_RESPONSE, created, policy.first_response[ticket.priority])
    if ticket.is_open:
        ticket.arm_clock(RESOLUTION, created, policy.resolution[ticket.priority])
    if ticket.urgent and not ticket.acknowledged_at and URGENT not in ticket.clocks:
        ticket.arm_clock(URGENT, at, policy.urgent_ack)
