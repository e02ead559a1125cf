"""Customer-facing status lookup (no notes, no staff details) and the admin page's static assets."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.ports import StaffRecord
from chalicelib.services.tickets import Actor


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def worked_ticket(stack: Any) -> tuple[str, str]:
    container = stack.container
    container.staff.put(StaffRecord("agent-zhao", "赵敏 Zhao Min", ["agent"], team="agents", email="zhao@corp.example"))
    result = container.intake.receive(
        InboundMessage(channel="APP", source="app", dedupe_key="app:e1", customer=CustomerRef(external_id="u1"),
                       text="订单还没到", received_at=stack.clock.now())
    )
    agent = Actor("agent-zhao", ("agent",))
    stack.clock.advance(minutes=1)
    container.actions.assign(result.ticket_id, Actor("sup", ("supervisor",)), "agent-zhao")
    stack.clock.advance(minutes=1)
    container.actions.reply(result.ticket_id, agent, "您好,已经在查")
    container.actions.note(result.ticket_id, agent, "内部:怀疑是恶意退款")
    return str(result.ticket_id), str(result.public_token)


def test_status_lookup_shows_status_and_messages_only(client: Client, moto_stack: Any) -> None:
    tid, token = worked_ticket(moto_stack)
    response = client.http.get(f"/public/tickets/{tid}?token={token}")
    assert response.status_code == 200
    view = json.loads(response.body)
    assert view["id"] == tid and view["status"] == "in_progress"
    assert [(m["direction"], m["text"]) for m in view["messages"]] == [("in", "订单还没到"), ("out", "您好,已经在查")]
    assert all(set(m) == {"direction", "text", "at"} for m in view["messages"])
    text = response.body.decode()
    for secret in ("内部", "恶意退款", "agent-zhao", "赵敏", "zhao@corp.example", "supervisor", "sup", "timeline",
                   "notes", "assignee", "team", token):
        assert secret not in text, secret


@pytest.mark.parametrize("query", ["?token=wrong", "?token=", "", "?tok=x"])
def test_a_wrong_or_missing_token_is_404(client: Client, moto_stack: Any, query: str) -> None:
    tid, _token = worked_ticket(moto_stack)
    response = client.http.get(f"/public/tickets/{tid}{query}")
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "not_found"


def test_an_unknown_ticket_answers_like_a_wrong_token(client: Client, moto_stack: Any) -> None:
    tid, token = worked_ticket(moto_stack)
    unknown = client.http.get(f"/public/tickets/APP-20261123-999999?token={token}")
    wrong = client.http.get(f"/public/tickets/{tid}?token=nope")
    malformed = client.http.get(f"/public/tickets/not-an-id?token={token}")
    assert unknown.status_code == wrong.status_code == malformed.status_code == 404
    assert json.loads(unknown.body) == json.loads(wrong.body) == json.loads(malformed.body)  # nothing to probe


def test_the_token_of_one_ticket_does_not_open_another(client: Client, moto_stack: Any) -> None:
    _tid, token = worked_ticket(moto_stack)
    other = moto_stack.container.intake.receive(
        InboundMessage(channel="APP", source="app", dedupe_key="app:e2", customer=CustomerRef(external_id="u2"),
                       text="另一个", received_at=moto_stack.clock.now())
    )
    assert client.http.get(f"/public/tickets/{other.ticket_id}?token={token}").status_code == 404
    assert client.http.get(f"/public/tickets/{other.ticket_id}?token={other.public_token}").status_code == 200


# --- the admin page -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/index.html"])
def test_the_admin_page_is_html(client: Client, moto_stack: Any, path: str) -> None:
    response = client.http.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.body.decode("utf-8")
    assert "<html" in page.lower() and 'charset="utf-8"' in page.lower()


def test_the_admin_script_and_styles(client: Client, moto_stack: Any) -> None:
    script = client.http.get("/admin/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"] and "charset=utf-8" in script.headers["Content-Type"]
    assert script.headers.get("X-Content-Type-Options") == "nosniff"
    styles = client.http.get("/admin/styles.css")
    assert styles.status_code == 200 and styles.headers["Content-Type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    [
        "/admin/..%2Fapp.py",
        "/admin/..%2F..%2Fetc%2Fpasswd",
        "/admin/%2E%2E",
        "/admin/..",
        "/admin/.env",
        "/admin/app.py",
        "/admin/nope.js",
        "/admin/x",
        "/admin/index.html.bak",
    ],
)
def test_unknown_or_escaping_asset_names_are_404_json(client: Client, moto_stack: Any, path: str) -> None:
    response = client.http.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body)["error"]["code"] == "not_found"
