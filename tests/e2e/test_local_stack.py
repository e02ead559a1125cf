"""End to end through the local stack: the contract's foundation, as a channel and as staff see it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("live_stack")]


def _ticket(stack: Any, ticket_id: str) -> dict:
    token = stack.token("supervisor1", ["supervisor"])
    status, _, text = stack.http("GET", f"/api/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, text
    return json.loads(text)


def test_webhook_replay_and_forgery(live_stack: Any) -> None:
    event = {
        "event_id": "e2e-" + uuid.uuid4().hex,
        "customer": {"external_id": "c-" + uuid.uuid4().hex[:8]},
        "message": {"text": "订单一直没有发货"},
    }
    status, body = live_stack.webhook("app", event)
    assert status == 200
    first = json.loads(body)
    status, body = live_stack.webhook("app", event)
    replay = json.loads(body)
    assert status == 200 and replay["duplicate"] is True and first["duplicate"] is False
    assert (replay["ticket_id"], replay["message_id"]) == (first["ticket_id"], first["message_id"])
    forged = dict(event, event_id="e2e-" + uuid.uuid4().hex)
    status, body = live_stack.webhook("app", forged, secret="not-the-secret")
    assert status == 401 and json.loads(body)["error"]["code"] == "bad_signature"


def test_unacknowledged_ticket_escalates_and_acknowledged_does_not(live_stack: Any) -> None:
    supervisor = {"Authorization": "Bearer " + live_stack.token("supervisor1", ["supervisor"])}
    agent = {"Authorization": "Bearer " + live_stack.token("agent1", ["agent"])}
    ids = [live_stack.create_ticket(f"积分怎么用 {i}") for i in range(2)]
    for ticket_id in ids:
        status, _, text = live_stack.http(
            "POST", f"/api/tickets/{ticket_id}/assign", {"assignee": "agent1"}, supervisor
        )
        assert status == 200, text
    status, _, text = live_stack.http("POST", f"/api/tickets/{ids[1]}/ack", {}, agent)
    assert status == 200, text
    deadline = time.monotonic() + 25
    escalated = False
    while time.monotonic() < deadline and not escalated:
        escalated = any(e["action"] == "escalated" for e in _ticket(live_stack, ids[0])["timeline"])
        time.sleep(0.5)
    assert escalated, live_stack.log_path.read_text()[-2000:]
    ticket = _ticket(live_stack, ids[0])
    escalation = next(e for e in ticket["timeline"] if e["action"] == "escalated")
    assert escalation["clock"] == "ack" and escalation["to"] == "supervisor1"
    assert ticket["assignee"] == "supervisor1"
    assert not any(e["action"] == "escalated" for e in _ticket(live_stack, ids[1])["timeline"])
