"""Satisfaction surveys: scheduled on resolution, sent after KEFU_SURVEY_DELAY on the customer's channel,
answered once on the public link; a score of 1–3 opens a callback task for a supervisor."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.ports import StaffRecord
from chalicelib.services.tickets import Actor

AGENT = Actor("agent1", ("agent",))
LINK = re.compile(r"/public/surveys/([A-Za-z0-9_-]+)")


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def staff_token(stack: Any, staff_id: str, roles: list[str]) -> dict[str, str]:
    now = int(time.time())  # token expiry is checked against the real clock
    claims = {"sub": staff_id, "cognito:groups": roles, "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, stack.container.settings.local_jwt_secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def resolved_ticket(stack: Any, n: int = 1) -> str:
    container = stack.container
    for member in (
        StaffRecord("agent1", "A", ["agent"], team="agents", online=True),
        StaffRecord("supervisor1", "S", ["supervisor"], team="agents", online=True),
        StaffRecord("supervisor9", "Z", ["supervisor"], team="vip", online=True),
    ):
        container.staff.put(member)
    result = container.intake.receive(
        InboundMessage(channel="APP", source="app", dedupe_key=f"app:s{n}", customer=CustomerRef(external_id=f"u{n}"),
                       text="我的订单还没有发货", received_at=stack.clock.now())
    )
    tid = str(result.ticket_id)
    container.actions.assign(tid, Actor("supervisor1", ("supervisor",)), "agent1")
    container.actions.reply(tid, AGENT, "您好，今天发货")
    container.actions.resolve(tid, AGENT)
    return tid


def send_due(stack: Any) -> dict[str, int]:
    """The scheduled handler, called as EventBridge calls it."""
    import app
    from local.pump import LocalLambdaContext, schedule_event

    return dict(app.send_surveys(schedule_event("send_surveys", "us-east-1"), LocalLambdaContext("send_surveys", "t")))


def survey_link(stack: Any, tid: str) -> str:
    [invitation] = [m for m in stack.container.tickets.get(tid).messages if m.author == "system"]
    assert invitation.direction == "out" and invitation.delivery == "queued"
    found = LINK.search(invitation.text)
    assert found, invitation.text
    assert invitation.text.startswith("您的问题已处理完毕")
    return found.group(1)


def answer(client: Client, token: str, body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.http.post(f"/public/surveys/{token}", headers={"Content-Type": "application/json"}, body=raw)
    return response.status_code, json.loads(response.body)


def test_a_resolution_schedules_a_survey_that_goes_out_after_the_delay(client: Client, moto_stack: Any) -> None:
    tid = resolved_ticket(moto_stack)
    pump = moto_stack.pump()
    pump.poll_stream()
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 0}  # KEFU_SURVEY_DELAY (1 h) has not passed
    moto_stack.clock.advance(minutes=59)
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 0}
    moto_stack.clock.advance(minutes=2)
    assert send_due(moto_stack) == {"sent": 1, "cancelled": 0}
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 0}  # once
    token = survey_link(moto_stack, tid)
    ticket = moto_stack.container.tickets.get(tid)
    assert [e.action for e in ticket.timeline][-1] == "survey_sent"
    assert ticket.status == "resolved"  # sending the survey does not reopen the ticket
    # Redelivering the resolution's stream records schedules nothing new.
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(hours=2)
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 0}

    response = client.http.get(f"/public/surveys/{token}")
    assert response.status_code == 200
    view = json.loads(response.body)
    assert view["ticket_id"] == tid and view["state"] == "sent" and view["scale"] == {"min": 1, "max": 5}
    assert "agent1" not in response.body.decode()


@pytest.mark.settings(survey_delay=timedelta(0))
def test_a_low_score_opens_a_callback_task_for_the_supervisor(client: Client, moto_stack: Any) -> None:
    tid = resolved_ticket(moto_stack)
    pump = moto_stack.pump()
    pump.poll_stream()
    assert send_due(moto_stack)["sent"] == 1
    token = survey_link(moto_stack, tid)

    status, body = answer(client, token, {"score": 2, "comment": "发货太慢了"})
    assert status == 200 and body["state"] == "answered" and body["score"] == 2 and body["comment"] == "发货太慢了"
    status, again = answer(client, token, {"score": 5})
    assert status == 409 and again["error"]["code"] == "survey_closed"  # answered once

    pump.poll_stream()
    ticket = moto_stack.container.tickets.get(tid)
    answered = [e for e in ticket.timeline if e.action == "survey_answered"]
    assert [(e.actor, e.detail["score"], e.detail["comment"]) for e in answered] == [("customer", 2, "发货太慢了")]
    [task] = [e for e in ticket.timeline if e.action == "callback_task"]
    assert task.detail["to"] == "supervisor1"  # the ticket team's supervisor
    assert ticket.attributes["satisfaction"] == 2
    callback = ticket.clocks["callback"]
    assert callback.state == "running"
    assert callback.due_at == task.detail["due_at"]
    pump.poll_stream()  # the notification of the callback task
    notices = moto_stack.container.notifications.list("supervisor1", limit=10).items
    assert [(n.kind, n.ticket_id) for n in notices] == [("callback_task", tid)]
    assert "2 分" in notices[0].title
    # A redelivered answer records nothing twice.
    moto_stack.pump().poll_stream()
    assert len([e for e in moto_stack.container.tickets.get(tid).timeline if e.action == "callback_task"]) == 1

    # The supervisor calls back and records it: the callback clock is satisfied, once.
    headers = staff_token(moto_stack, "supervisor1", ["supervisor"])
    agent = staff_token(moto_stack, "agent1", ["agent"])
    url = f"/api/tickets/{tid}/callback"
    assert client.http.post(url, headers=agent, body=b'{"outcome": "x"}').status_code == 403
    assert client.http.post(url, headers=headers, body=b"{}").status_code == 400
    response = client.http.post(url, headers=headers, body=json.dumps({"outcome": "已致电客户，补偿优惠券"}).encode())
    assert response.status_code == 200
    done = json.loads(response.body)
    assert {c["name"]: c["state"] for c in done["clocks"]}["callback"] == "satisfied"
    assert done["timeline"][-1]["action"] == "callback_done"
    second = client.http.post(url, headers=headers, body=json.dumps({"outcome": "again"}).encode())
    assert second.status_code == 409


@pytest.mark.settings(survey_delay=timedelta(0))
def test_a_good_score_owes_no_callback(client: Client, moto_stack: Any) -> None:
    tid = resolved_ticket(moto_stack)
    pump = moto_stack.pump()
    pump.poll_stream()
    send_due(moto_stack)
    status, body = answer(client, survey_link(moto_stack, tid), {"score": 5})
    assert status == 200 and body["score"] == 5 and body["comment"] == ""
    pump.poll_stream()
    ticket = moto_stack.container.tickets.get(tid)
    assert [e.detail["score"] for e in ticket.timeline if e.action == "survey_answered"] == [5]
    assert not [e for e in ticket.timeline if e.action == "callback_task"]
    assert "callback" not in ticket.clocks


@pytest.mark.settings(survey_delay=timedelta(0))
@pytest.mark.parametrize(
    "body",
    [{"score": 0}, {"score": 6}, {"score": "5"}, {"score": 4.5}, {"score": True}, {}, {"score": 3, "comment": 7},
     {"score": 3, "comment": "x" * 2001}, {"score": 3, "extra": 1}, [1], b"{nope"],
)
def test_bad_answers_are_400_and_change_nothing(client: Client, moto_stack: Any, body: Any) -> None:
    tid = resolved_ticket(moto_stack)
    moto_stack.pump().poll_stream()
    send_due(moto_stack)
    token = survey_link(moto_stack, tid)
    status, answer_body = answer(client, token, body)
    assert status == 400 and answer_body["error"]["code"] in ("invalid_input", "malformed_json")
    assert json.loads(client.http.get(f"/public/surveys/{token}").body)["state"] == "sent"


@pytest.mark.parametrize("token", ["nosuchsurvey123", "a" * 65, "bad.token"])
def test_an_unknown_survey_is_404(client: Client, moto_stack: Any, token: str) -> None:
    assert client.http.get(f"/public/surveys/{token}").status_code == 404
    status, body = answer(client, token, {"score": 5})
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.settings(survey_delay=timedelta(minutes=30))
def test_a_ticket_reopened_before_its_survey_goes_out_gets_none(client: Client, moto_stack: Any) -> None:
    tid = resolved_ticket(moto_stack)
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(minutes=10)
    moto_stack.container.actions.reopen(tid, AGENT)
    moto_stack.clock.advance(minutes=30)
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 1}
    assert not [m for m in moto_stack.container.tickets.get(tid).messages if m.author == "system"]
    # Resolved again: that resolution brings its own survey.
    moto_stack.container.actions.resolve(tid, AGENT)
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(minutes=31)
    assert send_due(moto_stack) == {"sent": 1, "cancelled": 0}
    survey_link(moto_stack, tid)


def test_a_survey_cannot_be_answered_before_it_is_sent(client: Client, moto_stack: Any) -> None:
    from chalicelib.domain.surveys import survey_token

    tid = resolved_ticket(moto_stack)
    moto_stack.pump().poll_stream()
    ticket = moto_stack.container.tickets.get(tid)
    [resolve] = [e for e in ticket.timeline if e.action == "resolve"]
    token = survey_token(ticket.public_token, tid, resolve.key)
    assert json.loads(client.http.get(f"/public/surveys/{token}").body)["state"] == "scheduled"
    status, body = answer(client, token, {"score": 4})
    assert status == 409 and body["error"]["code"] == "survey_closed"


@pytest.mark.settings(survey_delay=timedelta(minutes=30))
def test_a_ticket_reopened_and_resolved_again_gets_one_survey_for_the_last_resolution(
    client: Client, moto_stack: Any
) -> None:
    tid = resolved_ticket(moto_stack)
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(minutes=5)
    moto_stack.container.actions.reopen(tid, AGENT)
    moto_stack.clock.advance(minutes=5)
    moto_stack.container.actions.resolve(tid, AGENT)
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(minutes=21)  # the first survey is due, the second not yet
    assert send_due(moto_stack) == {"sent": 0, "cancelled": 1}
    moto_stack.clock.advance(minutes=10)
    assert send_due(moto_stack) == {"sent": 1, "cancelled": 0}
    survey_link(moto_stack, tid)  # exactly one invitation

