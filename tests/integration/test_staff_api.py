"""The staff API through app.py: bearer tokens and roles, the ticket JSON, listing, and every ticket action."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.ticket import parse_iso
from chalicelib.ports import StaffRecord

STAFF = (
    StaffRecord("agent1", "李娜", ["agent"], team="agents", online=True),
    StaffRecord("agent2", "王伟", ["agent"], team="agents", online=True),
    StaffRecord("supervisor1", "刘洋", ["supervisor"], team="agents", online=True),
    StaffRecord("qa1", "吴芳", ["qa"], team="qa", online=True),
)


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    for member in STAFF:
        moto_stack.container.staff.put(member)
    with Client(app.app) as test_client:
        yield test_client


def token(stack: Any, sub: str, groups: list[str], *, exp: int | None = None, secret: str | None = None,
          **claims: Any) -> str:
    payload = {"sub": sub, "cognito:groups": groups, "exp": exp if exp is not None else int(time.time()) + 3600,
               **claims}
    return jwt.encode(payload, secret or stack.container.settings.local_jwt_secret, algorithm="HS256")


def auth(stack: Any, sub: str = "agent1", groups: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(stack, sub, groups if groups is not None else ['agent'])}"}


def supervisor(stack: Any) -> dict[str, str]:
    return auth(stack, "supervisor1", ["supervisor"])


def new_ticket(stack: Any, n: int = 1, text: str = "我的订单还没到") -> str:
    result = stack.container.intake.receive(
        InboundMessage(
            channel="APP", source="app", dedupe_key=f"app:evt-{n}", customer=CustomerRef(external_id=f"u-{n}"),
            text=text, received_at=stack.clock.now(),
        )
    )
    return str(result.ticket_id)


def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    hdrs = {**headers, "Content-Type": "application/json"}
    raw = json.dumps(body).encode() if body is not None else b""
    response = getattr(client.http, method.lower())(path, headers=hdrs, **({"body": raw} if method == "POST" else {}))
    assert response.headers["Content-Type"].startswith("application/json"), response.body
    return response.status_code, json.loads(response.body)


def error_code(answer: Any) -> str:
    assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message"}
    return str(answer["error"]["code"])


# --- authentication and roles -------------------------------------------------------------------------------------
def test_get_ticket_with_a_token_answers_the_contract_json(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    status, t = call(client, "GET", f"/api/tickets/{tid}", auth(moto_stack))
    assert status == 200
    for key in ("id", "channel", "status", "category", "priority", "urgent", "tier", "team", "assignee",
                "customer_id", "created_at", "messages", "timeline", "clocks", "linked_tickets"):
        assert key in t, key
    assert (t["id"], t["channel"], t["status"]) == (tid, "APP", "new")
    assert t["category"] in ("consultation", "complaint", "suggestion", "after_sales")
    assert t["priority"] in ("P0", "P1", "P2") and t["tier"] in ("normal", "member", "vip")
    assert t["urgent"] is False and t["assignee"] is None and t["customer_id"]
    assert parse_iso(t["created_at"]) == moto_stack.clock.now()
    [message] = t["messages"]
    assert (message["direction"], message["text"]) == ("in", "我的订单还没到") and message["at"]
    assert [(e["action"], e["actor"]) for e in t["timeline"]] == [("created", "customer")]
    assert all(e["at"] for e in t["timeline"])
    assert isinstance(t["clocks"], list)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWdlbnQxOnB3"},
        {"Authorization": "Bearer not-a-jwt"},
    ],
)
def test_missing_or_malformed_token_is_401(client: Client, moto_stack: Any, headers: dict[str, str]) -> None:
    tid = new_ticket(moto_stack)
    for path in (f"/api/tickets/{tid}", "/api/tickets"):
        status, answer = call(client, "GET", path, headers)
        assert status == 401 and error_code(answer)


def test_expired_forged_and_incomplete_tokens_are_401(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    now = int(time.time())
    bad = {
        "expired": token(moto_stack, "agent1", ["agent"], exp=now - 60),
        "forged": token(moto_stack, "agent1", ["agent"], secret="someone-elses-secret-of-enough-length"),
        "unsigned": jwt.encode({"sub": "agent1", "cognito:groups": ["agent"], "exp": now + 600}, key="",
                               algorithm="none"),
        "no exp": jwt.encode({"sub": "agent1", "cognito:groups": ["agent"]},
                             moto_stack.container.settings.local_jwt_secret, algorithm="HS256"),
        "no sub": jwt.encode({"cognito:groups": ["agent"], "exp": now + 600},
                             moto_stack.container.settings.local_jwt_secret, algorithm="HS256"),
    }
    for name, bad_token in bad.items():
        status, answer = call(client, "GET", f"/api/tickets/{tid}", {"Authorization": f"Bearer {bad_token}"})
        assert status == 401, name
        error_code(answer)
    # A payload edited after signing (roles escalated) fails the signature.
    head, payload, signature = token(moto_stack, "agent1", ["agent"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["cognito:groups"] = ["admin"]
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = {"Authorization": f"Bearer {head}.{edited}.{signature}"}
    status, _ = call(client, "POST", f"/api/tickets/{tid}/assign", forged, {"assignee": "agent2"})
    assert status == 401


def test_a_token_without_a_kefu_role_is_403(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    for groups in ([], ["customer"], ["Agents"], ["us-east-1_pool_admins"]):
        status, answer = call(client, "GET", f"/api/tickets/{tid}", auth(moto_stack, "x1", groups))
        assert status == 403, groups
        assert error_code(answer) == "forbidden"


def test_auth_is_checked_before_the_body_is_read(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    for action in ("assign", "replies", "notes", "status", "ack", "resolve", "reopen"):
        response = client.http.post(f"/api/tickets/{tid}/{action}", headers={"Content-Type": "application/json"},
                                    body=b"{not json")
        assert response.status_code == 401, (action, response.body)


def test_read_only_roles_may_note_but_not_work_tickets(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    qa = auth(moto_stack, "qa1", ["qa"])
    assert call(client, "GET", f"/api/tickets/{tid}", qa)[0] == 200
    assert call(client, "POST", f"/api/tickets/{tid}/notes", qa, {"text": "sampled for QA"})[0] == 201
    for action, body in (("ack", {}), ("replies", {"text": "hi"}), ("resolve", {}), ("assign", {"assignee": "qa1"})):
        status, answer = call(client, "POST", f"/api/tickets/{tid}/{action}", qa, body)
        assert status == 403 and error_code(answer) == "forbidden", action


def test_unknown_and_malformed_ticket_ids_are_404(client: Client, moto_stack: Any) -> None:
    for tid in ("APP-20261123-999999", "nope", "APP-20261123-1"):
        status, answer = call(client, "GET", f"/api/tickets/{tid}", auth(moto_stack))
        assert status == 404 and error_code(answer) == "not_found"
        status, _ = call(client, "POST", f"/api/tickets/{tid}/ack", auth(moto_stack), {})
        assert status == 404


# --- listing ------------------------------------------------------------------------------------------------------
def test_list_pages_through_every_ticket_newest_first(client: Client, moto_stack: Any) -> None:
    created = []
    for n in range(5):
        created.append(new_ticket(moto_stack, n))
        moto_stack.clock.advance(minutes=1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        path = "/api/tickets?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = call(client, "GET", path, auth(moto_stack))
        assert status == 200 and set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        assert all("timeline" not in t and "messages" not in t for t in page["items"])  # summaries
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 10
    assert seen == list(reversed(created))
    status, everything = call(client, "GET", "/api/tickets", auth(moto_stack))
    assert [t["id"] for t in everything["items"]] == seen and everything["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1000",
        "limit=-1",
        "limit=abc",
        "limit=",
        "cursor=!!!not-base64!!!",
        "cursor=e30",  # {}
        "cursor=" + base64.urlsafe_b64encode(b'{"a": {"S": "b"}}').decode().rstrip("="),
        "cursor=" + base64.urlsafe_b64encode(b'{"pk": {"S": "TICKET#x"}, "sk": {"S": "META"}}').decode(),
        "cursor=" + base64.urlsafe_b64encode(b'[1, 2]').decode(),
        "status=bogus",
    ],
)
def test_bad_list_parameters_are_400(client: Client, moto_stack: Any, query: str) -> None:
    new_ticket(moto_stack)
    status, answer = call(client, "GET", f"/api/tickets?{query}", auth(moto_stack))
    assert status == 400, answer
    error_code(answer)


def test_a_cursor_of_one_listing_is_refused_by_another(client: Client, moto_stack: Any) -> None:
    for n in range(3):
        new_ticket(moto_stack, n)
    _, page = call(client, "GET", "/api/tickets?limit=1", auth(moto_stack))
    assert page["next_cursor"]
    status, answer = call(client, "GET", f"/api/tickets?status=new&limit=1&cursor={page['next_cursor']}",
                          auth(moto_stack))
    assert status == 400, answer


def test_list_filters_by_status_and_assignee(client: Client, moto_stack: Any) -> None:
    a, b, c = (new_ticket(moto_stack, n) for n in range(3))
    sup = supervisor(moto_stack)
    assert call(client, "POST", f"/api/tickets/{a}/assign", sup, {"assignee": "agent1"})[0] == 200
    assert call(client, "POST", f"/api/tickets/{b}/assign", sup, {"assignee": "agent2"})[0] == 200
    assert call(client, "POST", f"/api/tickets/{a}/ack", auth(moto_stack), {})[0] == 200

    def ids(query: str, headers: dict[str, str] | None = None) -> set[str]:
        status, page = call(client, "GET", f"/api/tickets?{query}", headers or auth(moto_stack))
        assert status == 200, page
        return {t["id"] for t in page["items"]}

    assert ids("status=new") == {c}
    assert ids("status=assigned") == {b}
    assert ids("status=acknowledged") == {a}
    assert ids("assignee=agent1") == {a}
    assert ids("assignee=agent2") == {b}
    assert ids("assignee=me") == {a}
    assert ids("assignee=me", auth(moto_stack, "agent2")) == {b}
    assert ids("assignee=agent1&status=acknowledged") == {a}
    assert ids("assignee=agent1&status=assigned") == set()
    assert ids("assignee=nobody") == set()


# --- actions ------------------------------------------------------------------------------------------------------
def test_the_working_life_of_a_ticket_is_in_its_timeline(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    agent, sup = auth(moto_stack), supervisor(moto_stack)
    clock = moto_stack.clock

    def step(action: str, headers: dict[str, str], body: Any, expect: int = 200) -> dict[str, Any]:
        clock.advance(minutes=1)
        status, t = call(client, "POST", f"/api/tickets/{tid}/{action}", headers, body)
        assert status == expect, t
        return dict(t)

    t = step("assign", sup, {"assignee": "agent1"})
    assert (t["status"], t["assignee"], t["team"]) == ("assigned", "agent1", "agents")
    assert {c["name"]: c["state"] for c in t["clocks"]}["ack"] == "running"
    t = step("ack", agent, {})
    assert t["status"] == "acknowledged" and t["acknowledged_at"]
    assert {c["name"]: c["state"] for c in t["clocks"]}["ack"] == "satisfied"
    t = step("replies", agent, {"text": "您好,正在为您查询"}, 201)
    assert t["status"] == "in_progress" and t["first_response_at"]
    out = [m for m in t["messages"] if m["direction"] == "out"]
    assert [(m["text"], m["delivery"]) for m in out] == [("您好,正在为您查询", "queued")]
    t = step("notes", agent, {"text": "客户是老会员"}, 201)
    assert [n["text"] for n in t["notes"]] == ["客户是老会员"] and t["status"] == "in_progress"
    t = step("status", agent, {"status": "waiting_on_customer"})
    assert t["status"] == "waiting_on_customer"
    t = step("resolve", agent, {})
    assert t["status"] == "resolved" and t["resolved_at"]
    t = step("reopen", sup, {})
    assert t["status"] == "in_progress" and t["resolved_at"] is None
    t = step("resolve", agent, None)  # an empty body is fine
    t = step("status", agent, {"status": "closed"})
    assert t["status"] == "closed"

    # Every change: who, what, when (the clock moved a minute before each step).
    _, stored = call(client, "GET", f"/api/tickets/{tid}", agent)
    timeline = [(e["action"], e["actor"]) for e in stored["timeline"]]
    assert timeline == [
        ("created", "customer"),
        ("assign", "supervisor1"),
        ("ack", "agent1"),
        ("reply", "agent1"),
        ("note", "agent1"),
        ("wait_on_customer", "agent1"),
        ("resolve", "agent1"),
        ("reopen", "supervisor1"),
        ("resolve", "agent1"),
        ("close", "agent1"),
    ]
    times = [parse_iso(e["at"]) for e in stored["timeline"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] == clock.now()
    assign_entry = stored["timeline"][1]
    assert assign_entry["assignee"] == "agent1" and assign_entry["from"] == "new" and assign_entry["to"] == "assigned"


def test_reply_and_note_need_text(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    for action in ("replies", "notes"):
        for body in ({"text": ""}, {"text": "   "}, {}, {"text": 42}, {"text": "x" * 5001}, [1]):
            status, answer = call(client, "POST", f"/api/tickets/{tid}/{action}", auth(moto_stack), body)
            assert status == 400 and error_code(answer), (action, body)
    _, t = call(client, "GET", f"/api/tickets/{tid}", auth(moto_stack))
    assert len(t["messages"]) == 1 and t["notes"] == [] and len(t["timeline"]) == 1


def test_malformed_json_body_is_400(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    response = client.http.post(f"/api/tickets/{tid}/replies",
                                headers={**auth(moto_stack), "Content-Type": "application/json"}, body=b"{nope")
    assert response.status_code == 400
    assert error_code(json.loads(response.body)) == "malformed_json"


def test_assign_checks_the_assignee_and_the_role(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    sup, agent = supervisor(moto_stack), auth(moto_stack)
    for body in ({"assignee": "ghost"}, {"assignee": ""}, {}, {"assignee": 7}):
        status, answer = call(client, "POST", f"/api/tickets/{tid}/assign", sup, body)
        assert status == 400 and error_code(answer) == "invalid_input", body
    status, answer = call(client, "POST", f"/api/tickets/{tid}/assign", agent, {"assignee": "agent2"})
    assert status == 403 and error_code(answer) == "forbidden"
    status, t = call(client, "POST", f"/api/tickets/{tid}/assign", agent, {"assignee": "agent1"})
    assert status == 200 and t["assignee"] == "agent1"
    _, stored = call(client, "GET", f"/api/tickets/{tid}", agent)
    assert [e["action"] for e in stored["timeline"]] == ["created", "assign"]  # the refused ones left no trace


def test_assigning_the_current_assignee_again_changes_nothing(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    sup = supervisor(moto_stack)
    status, first = call(client, "POST", f"/api/tickets/{tid}/assign", sup, {"assignee": "agent1"})
    assert status == 200
    moto_stack.clock.advance(minutes=20)
    status, again = call(client, "POST", f"/api/tickets/{tid}/assign", sup, {"assignee": "agent1"})
    assert status == 200 and again["assignee"] == "agent1"
    assert [e["action"] for e in again["timeline"]] == ["created", "assign"]
    # The acknowledgement deadline is not pushed back by assigning the same person again.
    assert again["clocks"] == first["clocks"] and again["version"] == first["version"]


def test_invalid_transitions_are_409(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    agent = auth(moto_stack)
    status, answer = call(client, "POST", f"/api/tickets/{tid}/reopen", agent, {})
    assert status == 409 and error_code(answer) == "invalid_transition"  # reopening an open ticket
    assert call(client, "POST", f"/api/tickets/{tid}/resolve", agent, {})[0] == 200
    assert call(client, "POST", f"/api/tickets/{tid}/status", agent, {"status": "closed"})[0] == 200
    for action, body in (("resolve", {}), ("ack", {}), ("replies", {"text": "hi"}),
                         ("assign", {"assignee": "agent1"}), ("status", {"status": "in_progress"})):
        status, answer = call(client, "POST", f"/api/tickets/{tid}/{action}", agent, body)
        assert status == 409 and error_code(answer) == "invalid_transition", action
    _, stored = call(client, "GET", f"/api/tickets/{tid}", agent)
    assert stored["status"] == "closed" and stored["messages"][-1]["direction"] == "in"
    assert call(client, "POST", f"/api/tickets/{tid}/reopen", agent, {})[1]["status"] == "in_progress"


def test_set_status_refuses_unknown_and_indirect_statuses(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    for body in ({"status": "done"}, {}, {"status": None}, {"status": "assigned"}, {"status": "new"}):
        status, answer = call(client, "POST", f"/api/tickets/{tid}/status", auth(moto_stack), body)
        assert status == 400 and error_code(answer), body


def test_acting_on_a_new_ticket_takes_it(client: Client, moto_stack: Any) -> None:
    tid = new_ticket(moto_stack)
    status, t = call(client, "POST", f"/api/tickets/{tid}/ack", auth(moto_stack, "agent2"), {})
    assert status == 200 and t["assignee"] == "agent2" and t["status"] == "acknowledged"
    assert datetime.fromisoformat(t["acknowledged_at"].replace("Z", "+00:00")) == moto_stack.clock.now().astimezone(UTC)
