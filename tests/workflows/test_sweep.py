"""The reconciliation sweep: a clock whose execution never started fires once, a warning is sent once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain import clock_rules
from chalicelib.domain.sla import SlaPolicy
from chalicelib.domain.ticket import Clock, Ticket, iso
from chalicelib.services.tickets import Actor
from tests.workflows.conftest import STAFF

SUPERVISOR = Actor("supervisor1", ("supervisor",))


class StartFails:
    """Timers whose StartExecution never happens (the Lambda dies, the API is down)."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def start(self, ticket_id: str, clock: Clock) -> None:
        self.attempts.append(f"{ticket_id}-{clock.name}-{clock.version}")
        raise RuntimeError("StartExecution failed")

    def stop(self, ticket_id: str, clock_name: str, version: int, level: int = 0) -> None:
        return None


@pytest.fixture
def broken(moto_stack: Any) -> Any:
    moto_stack.container.__dict__["timers"] = StartFails()  # before effects is built
    for member in STAFF:
        moto_stack.container.staff.put(member)
    return moto_stack


def _ticket(stack: Any, change: Any = None) -> Ticket:
    now = stack.clock.now()
    ticket = Ticket(
        id="APP-20261123-000001",
        channel="APP",
        source="app",
        customer_id="c1",
        created_at=iso(now),
        status="in_progress",
        priority="P1",
        assignee="agent1",
        team="agents",
    )
    if change:
        change(ticket, now)
    stack.container.tickets.create(ticket)
    return ticket


def _executions(stack: Any) -> list[str]:
    sfn = stack.aws.client("stepfunctions")
    return [
        e["name"]
        for arn in stack.stack.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=arn)["executions"]
    ]


def _sweep() -> dict[str, Any]:
    import app
    from local.pump import schedule_event

    return dict(app.reconcile_clocks(schedule_event("reconcile_clocks", "us-east-1"), None))


def test_a_clock_whose_execution_never_started_is_fired_by_the_sweep_once(broken: Any) -> None:
    ticket = _ticket(broken, lambda t, now: t.__dict__.update(status="new", assignee=""))
    broken.container.actions.assign(ticket.id, SUPERVISOR, "agent1")
    pump = broken.pump()
    for _ in range(3):  # the stream batch fails every time and is finally given up, as Lambda would
        pump.step()
    assert broken.container.timers.attempts and not _executions(broken)
    due = broken.container.tickets.get(ticket.id).clocks["ack"].due_at

    broken.clock.advance(minutes=30, seconds=10)  # due, but within the grace the execution is given
    assert _sweep()["fired"] == []
    broken.clock.advance(seconds=30)
    assert _sweep()["fired"] == [f"{ticket.id}-ack-1"]
    pump.poll_queues()
    escalated = [e for e in broken.container.tickets.get(ticket.id).to_json()["timeline"] if e["action"] == "escalated"]
    assert [(e["clock"], e["to"], e["due_at"]) for e in escalated] == [("ack", "supervisor1", due)]

    assert _sweep()["fired"] == []  # the second sweep finds nothing
    pump.poll_queues()
    timeline = broken.container.tickets.get(ticket.id).to_json()["timeline"]
    assert len([e for e in timeline if e["action"] == "escalated"]) == 1


@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"first_response": {"P1": "PT72H"}}))
def test_a_missed_warning_is_sent_by_the_sweep_once(broken: Any) -> None:
    policy = broken.container.settings.sla_policy
    ticket = _ticket(broken, lambda t, now: clock_rules.on_triaged(t, now, policy))
    pump = broken.pump()
    for _ in range(3):
        pump.step()
    broken.clock.advance(hours=48 * 0.8 - 0.1)
    assert _sweep()["warned"] == []
    broken.clock.advance(hours=0.2)
    assert _sweep()["warned"] == [f"{ticket.id}-resolution-1"]
    assert _sweep()["warned"] == []
    pump.poll_queues()
    pump.poll_stream()
    timeline = broken.container.tickets.get(ticket.id).to_json()["timeline"]
    assert [(e["action"], e["clock"], e["to"]) for e in timeline if e["action"] == "clock_warning"] == [
        ("clock_warning", "resolution", "agent1")
    ]
    assert [n.kind for n in broken.container.notifications.list("agent1").items] == ["clock_warning"]
    broken.clock.advance(hours=48 * 0.2 + 0.2)
    assert _sweep()["fired"] == [f"{ticket.id}-resolution-1"]


def test_the_sweep_leaves_paused_and_satisfied_clocks_alone(broken: Any) -> None:
    policy = broken.container.settings.sla_policy
    ticket = _ticket(broken, lambda t, now: clock_rules.on_triaged(t, now, policy))
    broken.container.actions.reply(ticket.id, Actor("agent1", ("agent",)), "在处理")
    broken.container.actions.set_status(ticket.id, Actor("agent1", ("agent",)), "waiting_on_customer")
    broken.clock.advance(days=5)
    assert _sweep() == {"fired": [], "warned": []}
    clocks = broken.container.tickets.get(ticket.id).clocks
    assert {n: c.state for n, c in clocks.items()} == {
        "first_response": "satisfied",
        "resolution": "paused",
        "progress": "paused",
    }
    assert broken.clock.now() - timedelta(days=5) < broken.clock.now()
