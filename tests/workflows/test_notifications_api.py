"""GET /api/notifications and POST /api/notifications/{id}/read through app.py, fed by escalation timeline entries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from chalice.test import Client


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def _auth(stack: Any, sub: str, groups: tuple[str, ...] = ("supervisor",)) -> dict[str, str]:
    claims = {"sub": sub, "cognito:groups": list(groups), "exp": int(time.time()) + 600}
    return {"Authorization": "Bearer " + jwt.encode(claims, stack.container.settings.local_jwt_secret, "HS256")}


def _escalated(stack: Any, n: int, to: str = "supervisor1", version: int = 1) -> dict[str, Any]:
    """An EVT# stream image of an escalation, as the table stream delivers it (detail as a JSON string)."""
    at = f"2026-11-23T02:{n:02d}:00.000000Z"
    detail = {"clock": "ack", "version": version, "level": 1, "role": "supervisor", "to": to, "due_at": at}
    return {
        "pk": f"TICKET#APP-20261123-{n:06d}",
        "sk": f"EVT#{at}#0003",
        "kind": "event",
        "action": "escalated",
        "ticket_id": f"APP-20261123-{n:06d}",
        "at": at,
        "seq": 3,
        "actor": "system",
        "detail": json.dumps(detail),
    }


def test_notifications_are_listed_newest_first_paged_and_marked_read(moto_stack: Any, client: Client) -> None:
    service = moto_stack.container.notifications
    for n in (1, 2, 3):
        service.on_timeline_entry(_escalated(moto_stack, n))
    service.on_timeline_entry(_escalated(moto_stack, 2))  # a redelivered stream record creates nothing
    service.on_timeline_entry(_escalated(moto_stack, 4, to="agent1"))
    me = _auth(moto_stack, "supervisor1")

    first = client.http.get("/api/notifications?limit=2", headers=me)
    assert first.status_code == 200
    page = json.loads(first.body)
    assert [i["ticket_id"] for i in page["items"]] == ["APP-20261123-000003", "APP-20261123-000002"]
    assert page["items"][0]["read"] is False and page["items"][0]["kind"] == "escalated"
    rest = json.loads(client.http.get(f"/api/notifications?limit=2&cursor={page['next_cursor']}", headers=me).body)
    assert [i["ticket_id"] for i in rest["items"]] == ["APP-20261123-000001"]

    target = page["items"][1]["id"]
    read = client.http.post(f"/api/notifications/{target}/read", headers=me, body=b"")
    assert read.status_code == 200 and json.loads(read.body)["read"] is True
    first_read_at = json.loads(read.body)["read_at"]
    moto_stack.clock.advance(minutes=5)
    again = json.loads(client.http.post(f"/api/notifications/{target}/read", headers=me).body)
    assert again["read_at"] == first_read_at
    listed = json.loads(client.http.get("/api/notifications", headers=me).body)["items"]
    assert [i["read"] for i in listed] == [False, True, False]
    assert moto_stack.container.notification_store.breaches("20261123") == {"ack": 4}


def test_notifications_refuse_bad_requests_with_json_errors(moto_stack: Any, client: Client) -> None:
    moto_stack.container.notifications.on_timeline_entry(_escalated(moto_stack, 1, to="agent1"))
    agent_item = moto_stack.container.notifications.list("agent1").items[0].id
    me = _auth(moto_stack, "supervisor1")
    cases = [
        (client.http.get("/api/notifications"), 401),
        (client.http.get("/api/notifications?limit=0", headers=me), 400),
        (client.http.get("/api/notifications?limit=lots", headers=me), 400),
        (client.http.get("/api/notifications?cursor=%%%", headers=me), 400),
        (client.http.post(f"/api/notifications/{agent_item}/read", headers=me), 404),  # someone else's
        (client.http.post("/api/notifications/not-an-id/read", headers=me), 404),
        (
            client.http.post(f"/api/notifications/{agent_item}/read", headers=_auth(moto_stack, "agent1"), body=b"[1]"),
            400,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, response.body
        assert set(json.loads(response.body)["error"]) == {"code", "message"}
