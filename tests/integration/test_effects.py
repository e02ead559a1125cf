"""The EffectsDispatcher on the table's stream: clocks start and stop Step Functions timers, replies are queued."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.aws import execution_name
from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.ticket import iso, parse_iso
from chalicelib.ports import StaffRecord
from chalicelib.services.effects import OUTBOX_QUEUE, Change
from chalicelib.services.tickets import Actor

SUPERVISOR = Actor("supervisor1", ("supervisor",))
AGENT = Actor("agent1", ("agent",))


@pytest.fixture(autouse=True)
def real_time(moto_stack: Any) -> Iterator[None]:
    """Deadlines must lie in moto's real future, or the state machines fire (and finish) during the test."""
    moto_stack.clock.current = datetime.now(UTC)
    yield


def new_ticket(stack: Any, n: int = 1) -> str:
    result = stack.container.intake.receive(
        InboundMessage(
            channel="APP",
            source="app",
            dedupe_key=f"app:e{n}",
            customer=CustomerRef(external_id=f"u{n}"),
            text="你好",
            received_at=stack.clock.now(),
        )
    )
    return str(result.ticket_id)


def executions(stack: Any, clock: str = "") -> dict[str, dict[str, Any]]:
    """The clock state machine's executions (of one clock when named: others, e.g. triage's, may run too)."""
    sfn = stack.aws.client("stepfunctions")
    found = [
        e for arn in stack.stack.state_machines.values() for e in sfn.list_executions(stateMachineArn=arn)["executions"]
    ]
    runs = {
        e["name"]: {**e, "input": json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])}
        for e in found
    }
    return {name: run for name, run in runs.items() if not clock or run["input"]["clock"] == clock}


def waiting(stack: Any, name: str) -> None:
    """Until the execution sits in its Wait state: moto drops a StopExecution that lands while it is still
    starting its worker thread (an emulator race; in production a timer runs long before it is stopped)."""
    sfn = stack.aws.client("stepfunctions")
    (arn,) = [
        e["executionArn"]
        for machine in stack.stack.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        if e["name"] == name
    ]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        events = sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached its Wait state")


def clock_image(stack: Any, ticket_id: str, name: str, due_in: timedelta) -> dict[str, Any]:
    """A running clock's stream image (version 1, level 0), as the table stream delivers it."""
    now = stack.clock.now()
    return {
        "kind": "clock",
        "ticket_id": ticket_id,
        "name": name,
        "version": 1,
        "state": "running",
        "due_at": iso(now + due_in),
        "started_at": iso(now),
        "level": 0,
    }


def outbox(stack: Any) -> list[dict[str, Any]]:
    sqs = stack.aws.client("sqs")
    answer = sqs.receive_message(QueueUrl=stack.stack.queues[OUTBOX_QUEUE], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def staff(stack: Any) -> None:
    stack.container.staff.put(StaffRecord("agent1", "A", ["agent"], team="agents"))
    stack.container.staff.put(StaffRecord("agent2", "B", ["agent"], team="agents"))


def test_an_armed_clock_starts_a_named_timer(moto_stack: Any) -> None:
    staff(moto_stack)
    tid = new_ticket(moto_stack)
    pump = moto_stack.pump()
    moto_stack.container.actions.assign(tid, SUPERVISOR, "agent1")
    assert pump.poll_stream() > 0
    runs = executions(moto_stack, "ack")
    name = execution_name(tid, "ack", 1)
    assert set(runs) == {name}
    assert runs[name]["status"] == "RUNNING"
    clock = moto_stack.container.tickets.get(tid).clocks["ack"]
    assert runs[name]["input"]["ticket_id"] == tid and runs[name]["input"]["clock"] == "ack"
    assert runs[name]["input"]["version"] == 1
    due = runs[name]["input"]["due_at"]  # whole seconds, rounded up, Z
    assert due.endswith("Z") and 0 <= (parse_iso(due) - parse_iso(clock.due_at)).total_seconds() < 1
    # Reading the same stream records again (a Lambda retry) starts nothing new.
    assert moto_stack.pump().poll_stream() > 0
    assert set(executions(moto_stack, "ack")) == {name}


def test_a_new_run_stops_the_old_and_satisfying_stops_the_current(moto_stack: Any) -> None:
    staff(moto_stack)
    tid = new_ticket(moto_stack)
    pump = moto_stack.pump()
    actions = moto_stack.container.actions
    actions.assign(tid, SUPERVISOR, "agent1")
    pump.poll_stream()
    first, second = execution_name(tid, "ack", 1), execution_name(tid, "ack", 2)
    waiting(moto_stack, first)
    moto_stack.clock.advance(minutes=2)
    actions.assign(tid, SUPERVISOR, "agent2")  # re-arms the ack clock: version 2
    pump.poll_stream()
    runs = executions(moto_stack, "ack")
    assert runs[first]["status"] == "ABORTED"
    assert runs[second]["status"] == "RUNNING"
    waiting(moto_stack, second)
    actions.ack(tid, Actor("agent2", ("agent",)))
    pump.poll_stream()
    assert executions(moto_stack, "ack")[second]["status"] == "ABORTED"
    assert len(executions(moto_stack, "ack")) == 2
    # Each run started in its Wait: a run stopped before its deadline entered one state (one billed transition).
    sfn = moto_stack.aws.client("stepfunctions")
    for run in executions(moto_stack, "ack").values():
        events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
        assert [e["type"] for e in events if e["type"].endswith("StateEntered")] == ["WaitStateEntered"]


def test_each_clock_run_starts_in_the_machine_that_begins_with_what_it_needs(moto_stack: Any) -> None:
    timers = moto_stack.container.timers
    machines = moto_stack.stack.state_machines
    assert timers.machine_arn("ack", 0) == machines["kefu-clock"]
    assert timers.machine_arn("first_response", 0) == machines["kefu-clock-warned"]
    assert timers.machine_arn("resolution", 0) == machines["kefu-clock-warned"]
    assert timers.machine_arn("resolution", 1) == machines["kefu-clock"]  # escalated runs do not warn
    assert timers.machine_arn("urgent", 0) == machines["kefu-clock-announced"]
    assert timers.machine_arn("urgent", 1) == machines["kefu-clock"]
    assert timers.machine_arn("progress", 0) == machines["kefu-clock"]


def test_a_reply_is_queued_on_the_outbox_and_an_inbound_message_is_not(moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    pump = moto_stack.pump()
    pump.poll_stream()
    assert outbox(moto_stack) == []  # the customer's message goes nowhere
    ticket = moto_stack.container.actions.reply(tid, AGENT, "您好,已为您查询")
    pump.poll_stream()
    [reply] = [m for m in ticket.messages if m.direction == "out"]
    [queued] = outbox(moto_stack)
    assert queued["ticket_id"] == tid and queued["message_id"] == reply.id
    assert queued["sk"] == f"MSG#{reply.at}#{reply.id}"


def test_dispatch_reads_plain_change_images(moto_stack: Any) -> None:
    """The dispatcher on hand-made images, as the stream handler hands them over (moto's real SFN and SQS)."""
    effects = moto_stack.container.effects
    now = moto_stack.clock.now()
    clock_v1 = clock_image(moto_stack, "APP-20261123-000009", "resolution", timedelta(days=3))
    assert effects.dispatch([Change("INSERT", new=clock_v1)]) == 1
    waiting(moto_stack, "APP-20261123-000009-resolution-1")
    assert effects.dispatch([Change("MODIFY", new={**clock_v1, "level": 1}, old=clock_v1)]) == 0  # same run
    due_v2 = (now + timedelta(days=4)).replace(microsecond=0)
    clock_v2 = {**clock_v1, "version": 2, "due_at": iso(due_v2)}
    assert effects.dispatch([Change("MODIFY", new=clock_v2, old=clock_v1)]) == 1
    waiting(moto_stack, "APP-20261123-000009-resolution-2")
    runs = executions(moto_stack)
    assert runs["APP-20261123-000009-resolution-1"]["status"] == "ABORTED"
    assert runs["APP-20261123-000009-resolution-2"]["status"] == "RUNNING"
    assert runs["APP-20261123-000009-resolution-2"]["input"]["due_at"] == due_v2.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert effects.dispatch([Change("REMOVE", old=clock_v2)]) == 0
    assert executions(moto_stack)["APP-20261123-000009-resolution-2"]["status"] == "ABORTED"
    message = {
        "kind": "message",
        "ticket_id": "T",
        "message_id": "m1",
        "sk": "MSG#x#m1",
        "direction": "out",
        "delivery": "queued",
    }
    assert effects.dispatch([Change("INSERT", new=message)]) == 1
    assert effects.dispatch([Change("MODIFY", new={**message, "delivery": "sent"}, old=message)]) == 0
    assert effects.dispatch([Change("INSERT", new={**message, "direction": "in", "delivery": None})]) == 0
    assert outbox(moto_stack) == [{"ticket_id": "T", "message_id": "m1", "sk": "MSG#x#m1"}]


def test_a_run_that_breached_its_clock_is_left_to_report_it(moto_stack: Any) -> None:
    """The breach the run itself wrote reaches the stream while the run still has to publish it: no stop."""
    effects = moto_stack.container.effects
    running = clock_image(moto_stack, "APP-20261123-000010", "ack", timedelta(days=1))
    assert effects.dispatch([Change("INSERT", new=running)]) == 1
    name = "APP-20261123-000010-ack-1"
    waiting(moto_stack, name)
    effects.dispatch([Change("MODIFY", new={**running, "state": "breached"}, old=running)])
    assert executions(moto_stack)[name]["status"] == "RUNNING"
    # Satisfied in time, it is stopped as before.
    effects.dispatch([Change("MODIFY", new={**running, "state": "satisfied"}, old=running)])
    assert executions(moto_stack)[name]["status"] == "ABORTED"
