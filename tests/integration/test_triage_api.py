"""The triage API: staff overrides as labelled data, admin-edited rule tables, presence — and their effect."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.routing import DEFAULT_RULES, rules_to_json
from chalicelib.domain.triage.classifier import default_classifier
from chalicelib.ports import StaffRecord
from tests.conftest import FixedClock

STAFF = (
    StaffRecord("agent1", "李娜", ["agent"], team="agents", online=True),
    StaffRecord("night1", "夜班", ["agent"], team="night", online=True),
    StaffRecord("supervisor1", "刘洋", ["supervisor"], team="agents", online=True),
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def _auth(container: Any, staff_id: str, roles: tuple[str, ...]) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _drain(stack: Any) -> None:
    pump = stack.pump()
    quiet = 0
    for _ in range(30):
        quiet = quiet + 1 if pump.step() == 0 else 0
        if quiet == 2:
            return
    raise AssertionError("the event pump never went quiet")


def _ticket(stack: Any, text: str, who: str = "u-1") -> str:
    result = stack.container.intake.receive(
        InboundMessage(
            channel="APP",
            source="app",
            dedupe_key=f"app:{who}:{text}",
            customer=CustomerRef(external_id=who),
            text=text,
            received_at=stack.clock.now(),
        )
    )
    return str(result.ticket_id)


@pytest.fixture
def api(moto_stack: Any) -> Any:
    import app as kefu_app

    for member in STAFF:
        moto_stack.container.staff.put(member)
    with Client(kefu_app.app) as client:
        yield client


def _post(client: Any, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    answer = client.http.post(path, body=json.dumps(body, ensure_ascii=False), headers=headers)
    return answer.status_code, json.loads(answer.body)


def _put(client: Any, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    answer = client.http.put(path, body=json.dumps(body, ensure_ascii=False), headers=headers)
    return answer.status_code, json.loads(answer.body)


def _get(client: Any, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    answer = client.http.get(path, headers=headers)
    return answer.status_code, json.loads(answer.body)


def test_an_override_is_recorded_re_prioritises_re_arms_and_becomes_labelled_data(moto_stack: Any, api: Any) -> None:
    container = moto_stack.container
    text = "我想了解一下你们上门的时间安排"
    ticket_id = _ticket(moto_stack, text)
    _drain(moto_stack)
    before = container.tickets.get(ticket_id)
    assert before.priority == "P2" and before.category != "complaint"
    first_run = before.clocks["first_response"]

    moto_stack.clock.advance(minutes=5)
    path = f"/api/tickets/{ticket_id}/classification"
    status, body = _post(api, path, {"category": "complaint"}, _auth(container, "agent1", ("agent",)))
    assert status == 200, body
    assert body["category"] == "complaint" and body["priority"] == "P1"
    entry = [e for e in body["timeline"] if e["action"] == "reclassified"][-1]
    assert entry["actor"] == "agent1"
    assert entry["changes"]["category"] == {"from": before.category, "to": "complaint"}
    assert entry["changes"]["priority"] == {"from": "P2", "to": "P1"}
    after = container.tickets.get(ticket_id)
    rearmed = after.clocks["first_response"]
    assert rearmed.version == first_run.version + 1 and rearmed.due_at < first_run.due_at

    status, body = _post(api, path, {"priority": "P0"}, _auth(container, "supervisor1", ("supervisor",)))
    assert status == 200 and body["priority"] == "P0"
    assert container.tickets.get(ticket_id).attributes["priority_source"] == "staff"

    status, labels = _get(api, "/api/triage/labels", _auth(container, "qa1", ("qa",)))
    assert status == 200
    exported = [(i["ticket_id"], i["text"], i["category"], i["previous"], i["by"]) for i in labels["items"]]
    assert exported == [(ticket_id, text, "complaint", before.category, "agent1")]
    month = moto_stack.clock.now().strftime("%Y-%m")
    status, same = _get(api, f"/api/triage/labels?month={month}", _auth(container, "admin1", ("admin",)))
    assert status == 200 and len(same["items"]) == 1
    assert _get(api, "/api/triage/labels", _auth(container, "agent1", ("agent",)))[0] == 403
    assert _get(api, "/api/triage/labels?month=2026-13", _auth(container, "qa1", ("qa",)))[0] == 400

    retrained = container.classifiers.retrained()
    assert retrained.size == default_classifier().size + 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"category": "other"}, 400),
        ({"priority": "P9"}, 400),
        ({"urgent": "yes"}, 400),
        ({"colour": "red"}, 400),
    ],
)
def test_bad_overrides_are_refused(moto_stack: Any, api: Any, body: Any, status: int) -> None:
    ticket_id = _ticket(moto_stack, "请问几点关门?")
    headers = _auth(moto_stack.container, "agent1", ("agent",))
    code, answer = _post(api, f"/api/tickets/{ticket_id}/classification", body, headers)
    assert code == status and answer["error"]["code"]


def test_override_needs_a_known_ticket_and_a_staff_role(moto_stack: Any, api: Any) -> None:
    container = moto_stack.container
    ticket_id = _ticket(moto_stack, "请问几点关门?")
    path = f"/api/tickets/{ticket_id}/classification"
    assert _post(api, path, {"category": "complaint"}, _auth(container, "qa1", ("qa",)))[0] == 403
    assert _post(api, path, {"category": "complaint"}, {"Content-Type": "application/json"})[0] == 401
    missing = "/api/tickets/APP-20200101-000001/classification"
    assert _post(api, missing, {"category": "complaint"}, _auth(container, "agent1", ("agent",)))[0] == 404


def test_admins_edit_the_routing_table_and_triage_follows_it(moto_stack: Any, api: Any) -> None:
    container = moto_stack.container
    admin = _auth(container, "admin1", ("admin",))
    status, current = _get(api, "/api/admin/routing-rules", admin)
    assert status == 200 and current["source"] == "default" and current["rules"] == rules_to_json(DEFAULT_RULES)

    rules = [
        {"name": "consultation", "match": {"categories": ["consultation"]}, "team": "night", "roles": ["agent"]},
        {"name": "rest", "team": "agents", "roles": ["agent"]},
    ]
    assert _put(api, "/api/admin/routing-rules", {"rules": rules}, _auth(container, "manager1", ("manager",)))[0] == 403
    bad = [{"name": "x", "team": "agents", "roles": ["wizard"]}]
    status, error = _put(api, "/api/admin/routing-rules", {"rules": bad}, admin)
    assert status == 400 and "wizard" in error["error"]["message"]
    assert _put(api, "/api/admin/routing-rules", {"table": []}, admin)[0] == 400

    status, stored = _put(api, "/api/admin/routing-rules", {"rules": rules}, admin)
    assert status == 200 and stored["source"] == "stored" and stored["updated_by"] == "admin1"
    assert [r["name"] for r in stored["rules"]] == ["consultation", "rest"]
    reader = _auth(container, "supervisor1", ("supervisor",))
    assert _get(api, "/api/admin/routing-rules", reader)[1]["rules"] == stored["rules"]

    ticket_id = _ticket(moto_stack, "请问你们的营业时间是几点?")
    _drain(moto_stack)
    ticket = container.tickets.get(ticket_id)
    assert (ticket.team, ticket.assignee) == ("night", "night1")


def test_admins_edit_the_priority_table_and_triage_follows_it(moto_stack: Any, api: Any) -> None:
    container = moto_stack.container
    admin = _auth(container, "admin1", ("admin",))
    status, current = _get(api, "/api/admin/priority-rules", admin)
    assert status == 200 and current["source"] == "default" and current["rules"][-1]["priority"] == "P2"
    no_default = [{"name": "consultations", "priority": "P1", "categories": ["consultation"]}]
    assert _put(api, "/api/admin/priority-rules", {"rules": no_default}, admin)[0] == 400
    rules = [*no_default, {"name": "default", "priority": "P2"}]
    status, stored = _put(api, "/api/admin/priority-rules", {"rules": rules}, admin)
    assert status == 200 and stored["rules"] == rules

    ticket_id = _ticket(moto_stack, "请问你们的营业时间是几点?")
    _drain(moto_stack)
    ticket = container.tickets.get(ticket_id)
    assert ticket.category == "consultation" and ticket.priority == "P1"
    assert next(e for e in ticket.timeline if e.action == "triaged").detail["rule"] == "consultations"


def test_presence_is_validated_and_needs_a_directory_entry(moto_stack: Any, api: Any) -> None:
    container = moto_stack.container
    path = "/api/staff/me/presence"
    status, member = _put(api, path, {"online": False}, _auth(container, "agent1", ("agent",)))
    assert status == 200 and member["id"] == "agent1" and member["online"] is False
    assert container.staff.get("agent1").online is False  # type: ignore[union-attr]
    assert _put(api, path, {"online": True}, _auth(container, "agent1", ("agent",)))[1]["online"] is True
    assert _put(api, path, {"online": "yes"}, _auth(container, "agent1", ("agent",)))[0] == 400
    assert _put(api, path, {"online": True}, _auth(container, "ghost", ("agent",)))[0] == 404
    assert _put(api, path, {"online": True}, {"Content-Type": "application/json"})[0] == 401
