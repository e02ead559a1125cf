"""QA sampling: every day at least 10 % of the previous day's resolutions are dealt to the qa staff, who score
诉求理解准确率 / 解决方案有效性 / 服务态度评分 once each; the ticket's timeline records the review."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain import qa as rules
from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.ports import StaffRecord
from chalicelib.services.tickets import Actor

AGENT = Actor("agent1", ("agent",))
SCORES = {"understanding": 5, "effectiveness": 4, "attitude": 5}


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def headers(stack: Any, staff_id: str, roles: list[str]) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": staff_id, "cognito:groups": roles, "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, stack.container.settings.local_jwt_secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def resolve_tickets(stack: Any, count: int, start: int = 1) -> list[str]:
    container = stack.container
    for member in (
        StaffRecord("agent1", "A", ["agent"], team="agents", online=True),
        StaffRecord("qa1", "Q1", ["qa"]),
        StaffRecord("qa2", "Q2", ["qa"]),
    ):
        container.staff.put(member)
    ids = []
    for n in range(start, start + count):
        result = container.intake.receive(
            InboundMessage(channel="APP", source="app", dedupe_key=f"app:q{n}",
                           customer=CustomerRef(external_id=f"q{n}"), text="请问积分怎么用",
                           received_at=stack.clock.now())
        )
        tid = str(result.ticket_id)
        container.actions.assign(tid, Actor("sup", ("supervisor",)), "agent1")
        container.actions.reply(tid, AGENT, "您好，可以在结算时抵扣")
        container.actions.resolve(tid, AGENT)
        ids.append(tid)
    pump = stack.pump()
    while pump.poll_stream():  # the resolutions are filed under their day
        pass
    return ids


def qa_sample() -> dict[str, Any]:
    import app
    from local.pump import LocalLambdaContext, schedule_event

    return dict(app.qa_sample(schedule_event("qa_sample", "us-east-1"), LocalLambdaContext("qa_sample", "t")))


def test_at_least_ten_percent_of_yesterdays_resolutions_are_sampled_once(client: Client, moto_stack: Any) -> None:
    resolved = resolve_tickets(moto_stack, 12)  # Monday 2026-11-23, 10:00 Shanghai
    assert qa_sample()["sampled"] == 0  # today's are not yesterday's
    moto_stack.clock.advance(days=1)
    result = qa_sample()
    assert result == {"day": "20261123", "resolved": 12, "sampled": 2, "already_sampled": False}  # ceil(1.2)
    again = qa_sample()
    assert again["already_sampled"] is True and again["sampled"] == 0

    response = client.http.get("/api/qa/reviews?day=20261123", headers=headers(moto_stack, "qa1", ["qa"]))
    assert response.status_code == 200
    items = json.loads(response.body)["items"]
    assert len(items) == 2 and {i["ticket_id"] for i in items} <= set(resolved)
    assert sorted(i["reviewer"] for i in items) == ["qa1", "qa2"]  # dealt in turn
    assert all(i["state"] == "pending" and i["agent"] == "agent1" for i in items)
    # The draw is fixed for the day (a rerun elsewhere draws the same tickets).
    assert [i["ticket_id"] for i in items] == rules.choose(resolved, "20261123")
    # Without ?day the list is yesterday's.
    default = client.http.get("/api/qa/reviews", headers=headers(moto_stack, "qa1", ["qa"]))
    assert json.loads(default.body)["day"] == "20261123"


def test_a_review_is_scored_once_and_recorded_on_the_ticket(client: Client, moto_stack: Any) -> None:
    resolve_tickets(moto_stack, 3)
    moto_stack.clock.advance(days=1)
    qa_sample()
    qa = headers(moto_stack, "qa1", ["qa"])
    [item] = json.loads(client.http.get("/api/qa/reviews?day=20261123", headers=qa).body)["items"]
    url = f"/api/qa/reviews/20261123/{item['ticket_id']}"

    body = json.dumps({**SCORES, "comment": "回复及时，语气友好"}).encode()
    response = client.http.post(url, headers=qa, body=body)
    assert response.status_code == 200
    done = json.loads(response.body)
    assert done["state"] == "done" and done["scores"] == SCORES and done["average"] == 4.67
    assert done["reviewed_by"] == "qa1" and done["comment"] == "回复及时，语气友好"
    second = client.http.post(url, headers=qa, body=json.dumps(SCORES).encode())
    assert second.status_code == 409 and json.loads(second.body)["error"]["code"] == "review_closed"

    ticket = moto_stack.container.tickets.get(item["ticket_id"])
    [entry] = [e for e in ticket.timeline if e.action == "qa_reviewed"]
    assert entry.actor == "qa1" and entry.detail["scores"] == SCORES and entry.detail["day"] == "20261123"
    pending = client.http.get("/api/qa/reviews?day=20261123&state=pending", headers=qa)
    assert json.loads(pending.body)["items"] == []


@pytest.mark.parametrize(
    "body",
    [{}, {**SCORES, "attitude": 0}, {**SCORES, "understanding": 6}, {**SCORES, "effectiveness": "4"},
     {**SCORES, "attitude": True}, {**SCORES, "extra": 1}, {**SCORES, "comment": 3}],
)
def test_bad_scores_are_400(client: Client, moto_stack: Any, body: dict[str, Any]) -> None:
    resolve_tickets(moto_stack, 1)
    moto_stack.clock.advance(days=1)
    qa_sample()
    qa = headers(moto_stack, "qa1", ["qa"])
    [item] = json.loads(client.http.get("/api/qa/reviews?day=20261123", headers=qa).body)["items"]
    url = f"/api/qa/reviews/20261123/{item['ticket_id']}"
    response = client.http.post(url, headers=qa, body=json.dumps(body).encode())
    assert response.status_code == 400 and json.loads(response.body)["error"]["code"] == "invalid_input"


def test_roles_days_and_unknown_reviews(client: Client, moto_stack: Any) -> None:
    agent = headers(moto_stack, "agent1", ["agent"])
    assert client.http.get("/api/qa/reviews?day=20261123", headers=agent).status_code == 403
    sup = headers(moto_stack, "supervisor1", ["supervisor"])
    assert client.http.get("/api/qa/reviews?day=2026-11-23", headers=sup).status_code == 400
    assert client.http.get("/api/qa/reviews?day=20261123&state=maybe", headers=sup).status_code == 400
    assert json.loads(client.http.get("/api/qa/reviews?day=20261123", headers=sup).body)["items"] == []
    body = json.dumps(SCORES).encode()
    missing = client.http.post("/api/qa/reviews/20261123/APP-20261123-000099", headers=sup, body=body)
    assert missing.status_code == 404
    assert client.http.get("/api/qa/reviews").status_code == 401


def test_sample_size_is_at_least_ten_percent() -> None:
    assert [rules.sample_size(n) for n in (0, 1, 9, 10, 11, 100, 101)] == [0, 1, 1, 1, 2, 10, 11]
    drawn = rules.choose([f"T{n}" for n in range(50)], "20261123")
    assert len(drawn) == 5 and drawn == rules.choose([f"T{n}" for n in reversed(range(50))], "20261123")
    assert drawn != rules.choose([f"T{n}" for n in range(50)], "20261124")  # another day, another draw
