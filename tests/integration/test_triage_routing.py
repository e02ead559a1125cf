"""Triage and routing after intake: driven by the table stream through the event pump, as in Lambda."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.ticket import Ticket, iso, parse_iso
from chalicelib.ports import Customer, StaffRecord
from chalicelib.services.effects import Change
from chalicelib.services.tickets import Actor
from tests.conftest import FixedClock

STAFF = (
    StaffRecord("senior1", "张敏", ["senior_agent"], team="vip", online=True),
    StaffRecord("senior2", "钱多", ["senior_agent"], team="vip", online=False),
    StaffRecord("agentA", "甲", ["agent"], team="agents", online=True),
    StaffRecord("agentB", "乙", ["agent"], team="agents", online=True),
    StaffRecord("supervisor1", "刘洋", ["supervisor"], team="agents", online=True),
    StaffRecord("duty1", "杨帆", ["duty_manager"], team="management", online=True),
    StaffRecord("am1", "客户经理", ["manager"], team="management", online=False),
)


@pytest.fixture
def clock() -> FixedClock:
    # Real "now": the clocks' Step Functions executions wait in real time, so deadlines must lie ahead.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def _setup(stack: Any) -> Any:
    for member in STAFF:
        stack.container.staff.put(member)
    return _subscribe(stack)


def _subscribe(stack: Any) -> str:
    """A test queue subscribed (raw delivery) to kefu-staff-notifications, to see what staff are told."""
    sqs, sns = stack.aws.client("sqs"), stack.aws.client("sns")
    url = sqs.create_queue(QueueName="test-staff-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.stack.topics["kefu-staff-notifications"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return str(url)


def _notifications(stack: Any, url: str) -> list[dict[str, Any]]:
    sqs = stack.aws.client("sqs")
    found = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _routed_notes(stack: Any, url: str) -> set[tuple[str, str, str]]:
    return {(n["ticket_id"], n["to"], n["reason"]) for n in _notifications(stack, url) if n["type"] == "ticket.routed"}


def _drain(stack: Any) -> None:
    pump = stack.pump()
    quiet = 0
    for _ in range(30):
        quiet = quiet + 1 if pump.step() == 0 else 0
        if quiet == 2:
            return
    raise AssertionError("the event pump never went quiet")


def _receive(stack: Any, channel: str, source: str, external_id: str, text: str, **extra: Any) -> str:
    result = stack.container.intake.receive(
        InboundMessage(
            channel=channel,
            source=source,
            dedupe_key=f"{source}:{external_id}:{text}",
            customer=CustomerRef(external_id=external_id),
            text=text,
            received_at=stack.clock.now(),
            **extra,
        )
    )
    return str(result.ticket_id)


def _entries(ticket: Ticket, action: str) -> list[dict[str, Any]]:
    return [e.to_json() for e in ticket.timeline if e.action == action]


def _expected_due(stack: Any, ticket: Ticket, clock_name: str, duration: timedelta) -> datetime:
    """created + duration, counted in the clock's calendar when the policy has calendars."""
    policy = stack.container.settings.sla_policy
    created = parse_iso(ticket.created_at)
    calendar_for = getattr(policy, "calendar_for", None)
    if calendar_for is None:
        return created + duration
    return calendar_for(ticket.channel, clock_name).add(created, duration)  # type: ignore[no-any-return]


def _vip(stack: Any, customer_id: str, external_id: str, source: str = "wechat") -> None:
    stack.container.customers.create(
        Customer(
            id=customer_id,
            name="钱七",
            tier="vip",
            identities=[f"{source}:{external_id}"],
            created_at=iso(stack.clock.now()),
            attributes={"account_manager": "am1"},
        )
    )


def test_vip_wechat_complaint_threatening_exposure_is_p0_urgent_for_a_senior_agent_and_the_account_manager(
    moto_stack: Any,
) -> None:
    inbox = _setup(moto_stack)
    _vip(moto_stack, "CVIP000000000001", "o-vip-1")
    text = "你们的产品质量太差了,三天没人管,再不处理我就找媒体曝光!"
    ticket_id = _receive(moto_stack, "WECHAT", "wechat", "o-vip-1", text)
    untriaged = moto_stack.container.tickets.get(ticket_id)
    assert not _entries(untriaged, "triaged") and untriaged.assignee == ""  # nothing happens on the webhook path

    _drain(moto_stack)

    ticket = moto_stack.container.tickets.get(ticket_id)
    assert (ticket.category, ticket.priority, ticket.urgent, ticket.tier) == ("complaint", "P0", True, "vip")
    assert (ticket.status, ticket.team, ticket.assignee) == ("assigned", "vip", "senior1")
    [triaged] = _entries(ticket, "triaged")
    assert {"media", "vip_complaint"} <= set(triaged["reasons"]) and "曝光" in triaged["evidence"]
    assert triaged["rule"] == "urgent" and triaged["tier"] == "vip" and 0 < triaged["confidence"] <= 1
    [routed] = _entries(ticket, "routed")
    assert routed["assignee"] == "senior1" and routed["rule"] == "vip"
    policy = moto_stack.container.settings.sla_policy
    first = ticket.clocks["first_response"]
    assert parse_iso(first.due_at) == _expected_due(moto_stack, ticket, "first_response", policy.first_response["P0"])
    resolution = ticket.clocks["resolution"]
    assert parse_iso(resolution.due_at) == _expected_due(moto_stack, ticket, "resolution", policy.resolution["P0"])
    assert ticket.clocks["ack"].state == "running" and ticket.clocks["urgent"].state == "running"
    told = _routed_notes(moto_stack, inbox)
    assert (ticket_id, "am1", "vip_account_manager") in told
    assert (ticket_id, "duty1", "urgent") in told
    inbox_items = moto_stack.container.notification_store.page("am1", 10, None).items
    assert [(n.kind, n.ticket_id) for n in inbox_items] == [("routed", ticket_id)] and "VIP" in inbox_items[0].title


def test_a_replayed_created_event_does_not_triage_again(moto_stack: Any) -> None:
    _setup(moto_stack)
    ticket_id = _receive(moto_stack, "APP", "app", "u-1", "请问你们的营业时间是几点?")
    _drain(moto_stack)
    container = moto_stack.container
    before = container.tickets.get(ticket_id)
    assert before.category == "consultation" and before.assignee in ("agentA", "agentB")
    replay = Change("INSERT", new={"kind": "event", "action": "created", "ticket_id": ticket_id})
    assert container.effects.dispatch([replay]) == 1
    assert container.triage.triage(ticket_id) is None
    after = container.tickets.get(ticket_id)
    assert len(_entries(after, "triaged")) == 1 and len(_entries(after, "routed")) == 1
    assert after.version == before.version


def test_the_least_loaded_online_agent_gets_a_consultation_and_with_nobody_online_the_supervisor_hears(
    moto_stack: Any,
) -> None:
    import app as kefu_app

    inbox = _setup(moto_stack)
    container = moto_stack.container
    supervisor = Actor("supervisor1", ("supervisor",))
    # agentA holds 3 open tickets; agentB holds 1 open and 2 resolved ones (resolved work is no load).
    for index, (holder, resolved) in enumerate(
        [("agentA", False), ("agentA", False), ("agentA", False), ("agentB", False), ("agentB", True), ("agentB", True)]
    ):
        held = _receive(moto_stack, "APP", "app", f"held-{index}", f"订单 {index} 什么时候发货?")
        container.actions.assign(held, supervisor, holder)
        if resolved:
            container.actions.resolve(held, Actor(holder, ("agent",)))
    _drain(moto_stack)

    first = _receive(moto_stack, "MINIPROGRAM", "miniprogram", "mp-1", "请问会员积分怎么兑换优惠券?")
    _drain(moto_stack)
    ticket = container.tickets.get(first)
    assert (ticket.category, ticket.priority) == ("consultation", "P2")
    assert (ticket.status, ticket.team, ticket.assignee) == ("assigned", "agents", "agentB")
    assert ticket.clocks["ack"].state == "running"

    with Client(kefu_app.app) as client:
        for agent in ("agentA", "agentB"):
            headers = _auth(container, agent, ("agent",))
            answer = client.http.put("/api/staff/me/presence", body=json.dumps({"online": False}), headers=headers)
            assert answer.status_code == 200 and json.loads(answer.body)["online"] is False
    _notifications(moto_stack, inbox)

    queued = _receive(moto_stack, "WEBCHAT", "webchat", "wc-1", "请问这款空调有现货吗?")
    _drain(moto_stack)
    waiting = container.tickets.get(queued)
    assert (waiting.status, waiting.team, waiting.assignee) == ("new", "agents", "")
    assert "ack" not in waiting.clocks and waiting.clocks["first_response"].state == "running"
    [routed] = _entries(waiting, "routed")
    assert routed["assignee"] is None and "queued" in routed["reason"]
    assert (queued, "supervisor1", "no_one_online") in _routed_notes(moto_stack, inbox)


def test_a_channel_hint_keeps_its_category_and_a_channel_urgent_flag_makes_it_p0(moto_stack: Any) -> None:
    inbox = _setup(moto_stack)
    hinted = _receive(moto_stack, "HOTLINE", "ivr", "caller-1", "你们的服务太差了", category_hint="suggestion")
    flagged = _receive(moto_stack, "APP", "app", "u-urgent", "请问怎么修改收货地址?", urgent=True)
    _drain(moto_stack)
    container = moto_stack.container
    ticket = container.tickets.get(hinted)
    [triaged] = _entries(ticket, "triaged")
    assert ticket.category == "suggestion" and triaged["source"] == "hint" and triaged["confidence"] == 1.0
    assert ticket.team == "product_ops"
    urgent = container.tickets.get(flagged)
    assert urgent.urgent and urgent.priority == "P0" and _entries(urgent, "triaged")[0]["reasons"] == ["channel_flag"]
    assert (flagged, "duty1", "urgent") in _routed_notes(moto_stack, inbox)


def test_a_third_complaint_within_30_days_is_urgent(moto_stack: Any) -> None:
    _setup(moto_stack)
    container = moto_stack.container
    customer = CustomerRef(external_id="angry-1", phone="+8613700000001")
    ids = []
    for channel, source in (("APP", "app"), ("STORE", "store"), ("DOUYIN", "douyin")):
        moto_stack.clock.advance(days=3)
        result = container.intake.receive(
            InboundMessage(
                channel=channel,
                source=source,
                dedupe_key=f"{source}:angry",
                customer=customer,
                text="客服态度太差了,我要投诉!",
                received_at=moto_stack.clock.now(),
            )
        )
        ids.append(result.ticket_id)
        _drain(moto_stack)
    first, second, third = (container.tickets.get(i) for i in ids)
    assert first.category == second.category == third.category == "complaint"
    assert not first.urgent and not second.urgent and first.priority == "P1"
    assert third.urgent and third.priority == "P0"
    assert "repeat_complaint" in _entries(third, "triaged")[0]["reasons"]


def _auth(container: Any, staff_id: str, roles: tuple[str, ...]) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_vip_and_higher_priority_tickets_go_first_in_the_new_queue(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    for member in STAFF:
        container.staff.put(StaffRecord(member.id, member.name, member.roles, team=member.team, online=False))
    _vip(moto_stack, "CVIP000000000002", "vip-app", source="app")
    plan = [
        ("app", "APP", "plain-1", "请问你们几点关门?"),  # P2, oldest
        ("app", "APP", "vip-app", "请问你们几点关门?"),  # VIP consultation: P1, VIP
        ("store", "STORE", "plain-2", "客服态度太差了,我要投诉!"),  # complaint: P1
        ("douyin", "DOUYIN", "plain-3", "家里的热水器漏电冒烟了"),  # safety: P0, newest
    ]
    ids = []
    for source, channel, who, text in plan:
        moto_stack.clock.advance(minutes=1)
        ids.append(_receive(moto_stack, channel, source, who, text))
    _drain(moto_stack)
    with Client(kefu_app.app) as client:
        answer = client.http.get("/api/tickets?status=new", headers=_auth(container, "supervisor1", ("supervisor",)))
    assert answer.status_code == 200, answer.body
    items = json.loads(answer.body)["items"]
    assert [t["id"] for t in items] == [ids[3], ids[1], ids[2], ids[0]]
    expected = [("P0", "normal"), ("P1", "vip"), ("P1", "normal"), ("P2", "normal")]
    assert [(t["priority"], t["tier"]) for t in items] == expected
