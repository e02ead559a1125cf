"""Helpers of the clock workflow tests: staff, tickets built without triage, a real-time clock, and a pump loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.ticket import Ticket, iso, parse_iso
from chalicelib.ports import StaffRecord

STAFF = (
    StaffRecord("agent1", "李娜", ["agent"], team="agents", online=True),
    StaffRecord("supervisor1", "刘洋", ["supervisor"], team="agents", online=True),
    StaffRecord("manager1", "陈静", ["manager"], team="agents", online=True),
    StaffRecord("duty1", "赵磊", ["duty_manager"], team="agents", online=True),
)
_serial = iter(range(1, 999_999))


class Flow:
    """A moto stack running in real time: the state machines' Waits and our clock agree."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.container = stack.container
        self.pump = stack.pump()
        stack.clock.current = datetime.now(UTC)
        for member in STAFF:
            self.container.staff.put(member)

    def tick(self) -> None:
        """Moves the fixed clock to real time (Step Functions waits in real time)."""
        self.stack.clock.current = datetime.now(UTC)

    def ticket(
        self,
        *,
        channel: str = "APP",
        priority: str = "P1",
        urgent: bool = False,
        assignee: str = "agent1",
        status: str = "in_progress",
        change: Callable[[Ticket], None] | None = None,
    ) -> Ticket:
        """Creates a ticket directly (no `created` entry, so triage stays out), then applies `change`."""
        self.tick()
        now = self.stack.clock.now()
        ticket = Ticket(
            id=f"{channel}-{now.strftime('%Y%m%d')}-{next(_serial):06d}",
            channel=channel,
            source=channel.lower(),
            customer_id="c_test",
            created_at=iso(now),
            status=status,
            priority=priority,
            urgent=urgent,
            assignee=assignee,
            team="agents",
        )
        if change:
            change(ticket)
        self.container.tickets.create(ticket)
        return self.container.tickets.get(ticket.id)

    def change(self, ticket_id: str, change: Callable[[Ticket, datetime], None]) -> Ticket:
        self.tick()
        ticket = self.container.tickets.get(ticket_id)
        change(ticket, self.stack.clock.now())
        self.container.tickets.save(ticket)
        return ticket

    def get(self, ticket_id: str) -> Ticket:
        return self.container.tickets.get(ticket_id)

    def run_until(self, done: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Pumps (stream, queues) in real time until `done()` is truthy; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            self.pump.poll_stream()
            self.pump.poll_queues()
            result = done()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {timeout}s")
            time.sleep(0.2)

    def run_for(self, seconds: float) -> None:
        """Pumps for a while (to show that nothing happens)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            self.pump.poll_stream()
            self.pump.poll_queues()
            time.sleep(0.2)

    def run_past(self, due_at: str, margin: float = 1.5) -> None:
        """Pumps until `margin` seconds after a deadline (to show that nothing fired)."""
        left = (parse_iso(due_at) - datetime.now(UTC)) / timedelta(seconds=1) + margin
        self.run_for(max(left, margin))

    def timeline(self, ticket_id: str, action: str) -> list[dict[str, Any]]:
        return [e for e in self.get(ticket_id).to_json()["timeline"] if e["action"] == action]

    def executions(self, ticket_id: str, clock: str) -> dict[str, str]:
        """Execution name → status of the clock machine's runs of one ticket's clock."""
        sfn = self.stack.aws.client("stepfunctions")
        found = [
            e
            for arn in self.stack.stack.state_machines.values()
            for e in sfn.list_executions(stateMachineArn=arn)["executions"]
        ]
        prefix = f"{ticket_id}-{clock}-"
        return {e["name"]: e["status"] for e in found if e["name"].startswith(prefix)}

    def notifications(self, staff_id: str) -> list[dict[str, Any]]:
        page = self.container.notifications.list(staff_id, limit=100)
        return [n.to_json() for n in page.items]

    def day(self) -> str:
        return self.stack.clock.now().astimezone(self.container.settings.zone).strftime("%Y%m%d")


def seconds_between(a: str, b: str) -> float:
    return (parse_iso(b) - parse_iso(a)) / timedelta(seconds=1)


@pytest.fixture
def flow(moto_stack: Any) -> Flow:
    return Flow(moto_stack)
