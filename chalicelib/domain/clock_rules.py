"""Which clocks a ticket change arms, satisfies, pauses, resumes or escalates — the one place clock policy lives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .calendar import BusinessCalendar
from .sla import SlaPolicy
from .ticket import (
    CLOCK_PAUSED,
    CLOCK_RUNNING,
    CLOCK_STOPPED,
    Clock,
    Ticket,
    iso,
    parse_iso,
)

ACK = "ack"
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
PROGRESS = "progress"
URGENT = "urgent"
CALLBACK = "callback"

# Escalation ladder of the acknowledgement clock: who must acknowledge at each level.
ACK_LADDER = ("assignee", "supervisor", "manager")
# Every clock's ladder: level 0 is who the clock first waits on; a breach at level n goes to rung n + 1.
LADDERS: dict[str, tuple[str, ...]] = {
    ACK: ACK_LADDER,
    FIRST_RESPONSE: ("assignee", "supervisor", "manager"),
    RESOLUTION: ("assignee", "supervisor", "manager"),
    PROGRESS: ("assignee", "supervisor"),
    URGENT: ("duty_manager", "manager"),
    CALLBACK: ("assignee", "manager"),
}
REASSIGNING = frozenset({ACK})  # a breach hands the ticket itself to the next rung
REPEATING = frozenset({PROGRESS})  # re-armed after every breach (reminding the last rung) until it stops
PAUSABLE = (FIRST_RESPONSE, RESOLUTION, PROGRESS)  # paused while the ticket waits on the customer
WARNED = frozenset({FIRST_RESPONSE, RESOLUTION})  # a warning at policy.warning_ratio of the time (level 0)
ANNOUNCED: dict[str, str] = {URGENT: "duty_manager"}  # role told the moment the clock starts
WAITING = "waiting_on_customer"
FINAL_STATES = frozenset({"satisfied", "breached", CLOCK_STOPPED})


@dataclass(frozen=True)
class Escalation:
    """What a breach at some level leads to: the next rung's role, and whether the ticket moves to them."""

    clock: str
    level: int
    role: str
    reassign: bool


def channel_of(ticket_id: str) -> str:
    """The channel code a ticket id starts with (`EMAIL-20261123-000001` → `EMAIL`)."""
    return ticket_id.rsplit("-", 2)[0]


def calendar_of(ticket: Ticket, name: str, policy: SlaPolicy) -> BusinessCalendar:
    """The calendar the named clock of this ticket counts in (SlaPolicy.calendar_for its channel)."""
    return policy.calendar_for(ticket.channel, name)


def base_duration(ticket: Ticket, name: str, policy: SlaPolicy) -> timedelta:
    """The policy's duration of a clock for this ticket (per priority where the policy has one)."""
    durations: dict[str, timedelta] = {
        ACK: policy.ack,
        PROGRESS: policy.progress,
        URGENT: policy.urgent_ack,
        CALLBACK: policy.callback,
    }
    if name == FIRST_RESPONSE:
        return policy.first_response[ticket.priority]
    if name == RESOLUTION:
        return policy.resolution[ticket.priority]
    return durations[name]


def _arm(
    ticket: Ticket,
    name: str,
    started: datetime,
    due: datetime,
    level: int,
    *,
    state: str = CLOCK_RUNNING,
    ended: str = "",
) -> Clock:
    """Writes the next version of a clock (a new run), keeping what was stored for the conditional write."""
    current = ticket.clocks.get(name)
    clock = Clock(
        name=name,
        version=(current.version + 1) if current else 1,
        state=state,
        due_at=iso(due),
        started_at=iso(started),
        ended_at=ended,
        level=level,
        stored_state=current.stored_state if current else "",
        stored_version=current.stored_version if current else 0,
    )
    ticket.clocks[name] = clock
    return clock


def _arm_for(ticket: Ticket, name: str, at: datetime, policy: SlaPolicy, *, level: int = 0) -> Clock:
    duration = base_duration(ticket, name, policy)
    return _arm(ticket, name, at, calendar_of(ticket, name, policy).add(at, duration), level)


# --- acknowledgement -------------------------------------------------------------------------------


def on_assigned(ticket: Ticket, at: datetime, policy: SlaPolicy, *, level: int = 0) -> None:
    """Assignment (re)starts the acknowledgement clock for the new owner (a new version)."""
    _arm_for(ticket, ACK, at, policy, level=level)


def on_acknowledged(ticket: Ticket, at: datetime) -> None:
    """Acknowledging in time satisfies the acknowledgement clock, and the urgent clock with it."""
    ticket.end_clock(ACK, at)
    ticket.end_clock(URGENT, at)


# --- response, resolution, urgent --------------------------------------------------------------------


def _rearm_sla(ticket: Ticket, name: str, start: datetime, policy: SlaPolicy) -> None:
    """Arms an SLA clock due its duration after `start`; re-arms only when the deadline actually changed."""
    calendar = calendar_of(ticket, name, policy)
    duration = base_duration(ticket, name, policy)
    current = ticket.clocks.get(name)
    if current is None:
        _arm(ticket, name, start, calendar.add(start, duration), 0)
        return
    if current.state in FINAL_STATES or current.level > 0:
        return  # satisfied, breached or stopped runs are history; an escalated clock follows its ladder
    # started_at already carries the shift of earlier pauses, so the same arithmetic gives the deadline.
    started = parse_iso(current.started_at)
    due = calendar.add(started, duration)
    if iso(due) == current.due_at:
        return
    if current.state == CLOCK_PAUSED:
        _arm(ticket, name, started, due, 0, state=CLOCK_PAUSED, ended=current.ended_at)
    else:
        _arm(ticket, name, started, due, 0)


def on_triaged(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """Priority and urgency are known (or changed): response and resolution run from the ticket's creation.

    Safe to call again: a clock whose deadline is unchanged is left as it is; a new priority re-arms it
    as a new version (the old run's execution is stopped); satisfied and escalated clocks are left alone.
    """
    created = parse_iso(ticket.created_at)
    if not ticket.first_response_at:
        _rearm_sla(ticket, FIRST_RESPONSE, created, policy)
    if ticket.is_open:
        _rearm_sla(ticket, RESOLUTION, created, policy)
    if ticket.urgent and not ticket.acknowledged_at and URGENT not in ticket.clocks and ticket.is_open:
        _arm_for(ticket, URGENT, at, policy)


# --- progress updates ---------------------------------------------------------------------------------


def on_work_accepted(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """Once someone owns the work, the customer must hear from us every `policy.progress`."""
    current = ticket.clocks.get(PROGRESS)
    if ticket.is_open and (current is None or current.state in FINAL_STATES):
        _start_progress(ticket, at, policy)


def _start_progress(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    if ticket.status == WAITING:
        calendar = calendar_of(ticket, PROGRESS, policy)
        _arm(ticket, PROGRESS, at, calendar.add(at, policy.progress), 0, state=CLOCK_PAUSED, ended=iso(at))
    else:
        _arm_for(ticket, PROGRESS, at, policy)


def on_replied(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """An outbound reply answers the first-response clock and restarts the progress clock from now."""
    ticket.end_clock(FIRST_RESPONSE, at)
    if ticket.is_open:
        _start_progress(ticket, at, policy)


# --- pause and resume --------------------------------------------------------------------------------


def on_waiting(ticket: Ticket, at: datetime) -> None:
    """Waiting on the customer pauses the pausable clocks; the deadline and start are kept for the resume."""
    for name in PAUSABLE:
        clock = ticket.clocks.get(name)
        if clock is not None and clock.state == CLOCK_RUNNING:
            ticket.clocks[name] = replace(clock, state=CLOCK_PAUSED, ended_at=iso(at))


def on_resumed(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """Leaving waiting_on_customer resumes paused clocks as new runs, due later by the paused working time."""
    for name in PAUSABLE:
        clock = ticket.clocks.get(name)
        if clock is None or clock.state != CLOCK_PAUSED:
            continue
        calendar = calendar_of(ticket, name, policy)
        paused_at = parse_iso(clock.ended_at) if clock.ended_at else at
        resumed = max(at, paused_at)
        paused = calendar.working_time_between(paused_at, resumed)
        due = calendar.resume_deadline(parse_iso(clock.due_at), paused_at, resumed)
        started = parse_iso(clock.started_at)
        if paused and due != parse_iso(clock.due_at):
            started = calendar.add(started, paused)
        _arm(ticket, name, started, due, clock.level)


def on_status_changed(ticket: Ticket, at: datetime, policy: SlaPolicy) -> None:
    """Pauses or resumes clocks to match the ticket's status (call after any status change)."""
    if ticket.status == WAITING:
        on_waiting(ticket, at)
    elif ticket.is_open:
        on_resumed(ticket, at, policy)


def on_closed(ticket: Ticket, at: datetime) -> None:
    """Resolving or closing stops every clock still running or paused."""
    for name, clock in list(ticket.clocks.items()):
        if clock.state == CLOCK_RUNNING:
            ticket.end_clock(name, at, CLOCK_STOPPED)
        elif clock.state == CLOCK_PAUSED:
            ticket.clocks[name] = replace(clock, state=CLOCK_STOPPED, ended_at=iso(at))


# --- callback (survey follow-up) ---------------------------------------------------------------------


def on_callback_task(ticket: Ticket, at: datetime, policy: SlaPolicy) -> Clock:
    """A callback is owed to the customer: due `policy.callback` from now, escalating to the manager."""
    return _arm_for(ticket, CALLBACK, at, policy)


def on_callback_done(ticket: Ticket, at: datetime) -> None:
    """The callback was made: its clock is satisfied."""
    ticket.end_clock(CALLBACK, at)


# --- deadlines: warning, breach, escalation ----------------------------------------------------------


def warning_at(channel: str, clock: Clock, policy: SlaPolicy) -> datetime | None:
    """When a level-0 first_response/resolution run warns: `warning_ratio` of its working time elapsed."""
    if clock.name not in WARNED or clock.level != 0 or clock.state != CLOCK_RUNNING:
        return None
    calendar = policy.calendar_for(channel, clock.name)
    started, due = parse_iso(clock.started_at), parse_iso(clock.due_at)
    budget = calendar.working_time_between(started, due)
    return calendar.add(started, budget * policy.warning_ratio)


def escalation_for(name: str, level: int) -> Escalation:
    """A breach of `name` at `level`: the next rung (a repeating clock stays on its last rung)."""
    ladder = LADDERS.get(name, ACK_LADDER)
    nxt = level + 1
    return Escalation(clock=name, level=nxt, role=ladder[min(nxt, len(ladder) - 1)], reassign=name in REASSIGNING)


def rearm_after_breach(ticket: Ticket, name: str, at: datetime, policy: SlaPolicy, level: int) -> Clock | None:
    """Arms the next level's run after a breach, while a rung above remains (or forever, for progress).

    The next level gets `escalation_period` (per clock or "*") when configured, else the clock's own
    duration again; progress always repeats every `policy.progress`.
    """
    ladder = LADDERS.get(name, ACK_LADDER)
    if not ticket.is_open or (name not in REPEATING and level >= len(ladder) - 1):
        return None
    period = policy.escalation_period_for(name)
    if period is None or name in REPEATING:
        period = base_duration(ticket, name, policy)
    calendar = calendar_of(ticket, name, policy)
    clock = _arm(ticket, name, at, calendar.add(at, period), level)
    if name in PAUSABLE and ticket.status == WAITING:
        ticket.clocks[name] = replace(clock, state=CLOCK_PAUSED, ended_at=iso(at))
    return ticket.clocks[name]
