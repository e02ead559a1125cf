"""The acknowledgement clock end to end: the state machine runs in moto, the pump plays Lambda's event sources."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.aws import execution_name
from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.sla import SlaPolicy
from chalicelib.ports import StaffRecord
from chalicelib.services.tickets import Actor

SUPERVISOR = Actor("supervisor1", ("supervisor",))


def subscribe_test_queue(stack: Any, topic: str) -> str:
    """A test SQS queue subscribed (raw delivery) to an SNS topic, to see what was published."""
    sqs, sns = stack.aws.client("sqs"), stack.aws.client("sns")
    url = sqs.create_queue(QueueName="test-staff-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.stack.topics[topic], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return str(url)


def drain(stack: Any, url: str) -> list[dict[str, Any]]:
    sqs = stack.aws.client("sqs")
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    for m in answer.get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def execution_status(stack: Any, name: str) -> str:
    arn = stack.stack.state_machines["kefu-clock"].replace(":stateMachine:", ":execution:") + ":" + name
    return str(stack.aws.client("stepfunctions").describe_execution(executionArn=arn)["status"])


def escalations(ticket: Any) -> list[Any]:
    return [e for e in ticket.timeline if e.action == "escalated"]


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"ack": "PT2S"}))
def test_an_unacknowledged_ticket_escalates_to_a_supervisor(moto_stack: Any) -> None:
    container = moto_stack.container
    moto_stack.clock.current = datetime.now(UTC)  # moto's Wait is real time
    container.staff.put(StaffRecord("agent1", "李娜", ["agent"], team="agents", online=True))
    container.staff.put(StaffRecord("supervisor1", "刘洋", ["supervisor"], team="agents", online=True))
    notifications = subscribe_test_queue(moto_stack, "kefu-staff-notifications")

    ids = []
    for n in range(2):
        result = container.intake.receive(
            InboundMessage(channel="APP", source="app", dedupe_key=f"app:ack-{n}",
                           customer=CustomerRef(external_id=f"c-{n}"), text=f"咨询一下会员积分怎么用 {n}",
                           received_at=moto_stack.clock.now())
        )
        ids.append(result.ticket_id)
        container.actions.assign(result.ticket_id, SUPERVISOR, "agent1")
    ignored, acknowledged = ids
    container.actions.ack(acknowledged, Actor("agent1", ("agent",)))

    pump = moto_stack.pump()
    published: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    done = False
    while time.monotonic() < deadline and not done:
        moto_stack.clock.current = datetime.now(UTC)
        pump.poll_stream()
        pump.poll_queues()
        published += drain(moto_stack, notifications)
        escalated = escalations(container.tickets.get(ignored))
        acked_run = execution_status(moto_stack, execution_name(acknowledged, "ack", 1))
        done = bool(escalated) and any(p.get("ticket_id") == ignored for p in published) and acked_run != "RUNNING"
        time.sleep(0.25)
    assert done, f"no escalation within 20 s: {published}"

    ticket = container.tickets.get(ignored)
    first = escalations(ticket)[0]
    assert first.actor == "system" and first.detail["clock"] == "ack"
    assert first.detail["to"] == "supervisor1" and first.detail["from"] == "agent1"
    assert ticket.assignee == "supervisor1"
    assert ticket.clocks["ack"].version >= 2  # re-armed for the supervisor
    reassign = [e for e in ticket.timeline if e.action == "assign" and e.actor == "system"]
    assert reassign and reassign[0].detail["assignee"] == "supervisor1"

    [notice] = [p for p in published if p.get("ticket_id") == ignored and p.get("to") == "supervisor1"][:1]
    assert notice["type"] == "escalated" and notice["clock"] == "ack"

    pump.poll_stream()
    pump.poll_queues()
    calm = container.tickets.get(acknowledged)
    assert escalations(calm) == []
    assert calm.assignee == "agent1" and calm.status == "acknowledged"
    assert calm.clocks["ack"].state == "satisfied"
    assert not any(p.get("ticket_id") == acknowledged for p in published + drain(moto_stack, notifications))
