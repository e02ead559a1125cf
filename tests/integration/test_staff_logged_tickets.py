"""POST /api/tickets: staff log walk-ins and phone calls as tickets, once per Idempotency-Key."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from chalice.test import Client


def _auth(container: Any, staff_id: str = "agent1", roles: tuple[str, ...] = ("agent",)) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _post(client: Client, body: Any, headers: dict[str, str]) -> Any:
    return client.http.post("/api/tickets", body=json.dumps(body, ensure_ascii=False), headers=headers)


def test_a_walk_in_becomes_a_store_ticket_logged_by_the_agent(moto_stack: Any) -> None:
    import app as kefu_app

    body = {
        "channel": "STORE",
        "customer": {"phone": "+8613800000001", "name": "王五"},
        "text": "净化器不工作了",
        "category": "after_sales",
    }
    with Client(kefu_app.app) as client:
        headers = dict(_auth(moto_stack.container), **{"Idempotency-Key": "walkin-1"})
        first = _post(client, body, headers)
        assert first.status_code == 201, first.body
        ticket = json.loads(first.body)
        assert ticket["id"].startswith("STORE-20261123-") and ticket["category"] == "after_sales"
        assert ticket["timeline"][0]["action"] == "created" and ticket["timeline"][0]["actor"] == "agent1"
        assert ticket["messages"][0]["text"] == "净化器不工作了"
        again = _post(client, body, headers)
        assert again.status_code == 200 and json.loads(again.body)["id"] == ticket["id"]
        other = _post(client, body, dict(_auth(moto_stack.container), **{"Idempotency-Key": "walkin-2"}))
        assert other.status_code == 201
        second = json.loads(other.body)
        assert second["id"] != ticket["id"] and second["linked_tickets"] == [ticket["id"]]


def test_bad_input_and_roles_are_refused(moto_stack: Any) -> None:
    import app as kefu_app

    with Client(kefu_app.app) as client:
        headers = _auth(moto_stack.container)
        for body, code in [
            ({"channel": "store!", "customer": {"phone": "1"}, "text": "x"}, 400),
            ({"channel": "STORE", "customer": {}, "text": "x"}, 400),
            ({"channel": "STORE", "customer": {"phone": "1"}, "text": ""}, 400),
            ({"channel": "STORE", "customer": {"phone": "1"}, "text": "x", "category": "other"}, 400),
        ]:
            answer = _post(client, body, headers)
            assert answer.status_code == code and "code" in json.loads(answer.body)["error"], answer.body
        qa = _post(
            client,
            {"channel": "STORE", "customer": {"phone": "1"}, "text": "x"},
            _auth(moto_stack.container, "qa1", ("qa",)),
        )
        assert qa.status_code == 403
        anonymous = client.http.post("/api/tickets", body="{}", headers={"Content-Type": "application/json"})
        assert anonymous.status_code == 401
