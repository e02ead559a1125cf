"""Spend import and the recompute_tiers job: top 10% by trailing-12-month spend are VIP, open tickets follow."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.ticket import iso, parse_iso
from chalicelib.ports import Customer, StaffRecord
from tests.conftest import FixedClock


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def _auth(
    container: Any, staff_id: str, roles: tuple[str, ...], content_type: str = "application/json"
) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


def _drain(stack: Any) -> None:
    pump = stack.pump()
    quiet = 0
    for _ in range(30):
        quiet = quiet + 1 if pump.step() == 0 else 0
        if quiet == 2:
            return
    raise AssertionError("the event pump never went quiet")


def _customer(stack: Any, customer_id: str, *identities: str) -> None:
    stack.container.customers.create(
        Customer(
            id=customer_id,
            name=customer_id,
            identities=[f"app:{customer_id}", *identities],
            created_at=iso(stack.clock.now()),
        )
    )


def _spend_csv(rows: list[tuple[str, str, str]]) -> str:
    return "customer_id,amount,date\n" + "".join(f"{c},{a},{d}\n" for c, a, d in rows)


def test_spend_import_accepts_csv_and_json_once_and_refuses_bad_input(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    _customer(moto_stack, "C1")
    csv_body = _spend_csv([("C1", "100.50", "2026-03-01"), ("C1", "20", "2026-03-01"), ("C9", "5", "2026-04-02")])
    with Client(kefu_app.app) as client:
        admin_csv = _auth(container, "admin1", ("admin",), "text/csv")
        first = client.http.post("/api/customers/spend", body=csv_body, headers=admin_csv)
        assert first.status_code == 201, first.body
        result = json.loads(first.body)
        assert result["imported"] == 3 and result["unknown_customers"] == ["C9"] and not result["duplicate"]
        again = client.http.post("/api/customers/spend", body=csv_body, headers=admin_csv)
        assert again.status_code == 200 and json.loads(again.body)["duplicate"] is True
        records = [{"customer_id": "C1", "amount": 9.5, "date": "2026-03-01"}]
        ops = _auth(container, "ops1", ("product_ops",))
        assert client.http.post("/api/customers/spend", body=json.dumps(records), headers=ops).status_code == 201

        bad_body = "customer_id,amount,date\nC1,lots,2026-01-01\n"
        bad_csv = client.http.post("/api/customers/spend", body=bad_body, headers=admin_csv)
        assert bad_csv.status_code == 400 and "line 2" in json.loads(bad_csv.body)["error"]["message"]
        bool_amount = [{"customer_id": "C1", "amount": True, "date": "2026-01-01"}]
        for bad in ([], bool_amount, {"x": 1}, [{"customer_id": "C1"}]):
            answer = client.http.post("/api/customers/spend", body=json.dumps(bad), headers=ops)
            assert answer.status_code == 400 and json.loads(answer.body)["error"]["code"], bad
        agent = _auth(container, "agent1", ("agent",))
        assert client.http.post("/api/customers/spend", body=json.dumps(records), headers=agent).status_code == 403
    march = container.triage_store.spend_records(["202603"])
    assert [(r.customer_id, str(r.amount), r.day.isoformat()) for r in march] == [("C1", "130.00", "2026-03-01")]


def test_recompute_makes_top_spenders_vip_demotes_the_old_vip_and_reprioritises_open_tickets(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    container.staff.put(StaffRecord("agent1", "李娜", ["agent"], team="agents", online=True))
    # The business day (KEFU_TIMEZONE, not UTC) the job will run on, 10 minutes from now.
    today = (moto_stack.clock.now() + timedelta(minutes=10)).astimezone(container.settings.zone).date()
    recent = (today - timedelta(days=40)).isoformat()
    too_old = (today - timedelta(days=400)).isoformat()
    for index in range(10):
        _customer(moto_stack, f"C{index}")
    _customer(moto_stack, "CMEMBER", "member:M-77")
    _customer(moto_stack, "COLDVIP")
    container.triage_store.set_tier("COLDVIP", "vip", moto_stack.clock.now())
    rows = [(f"C{index}", str(100 * (index + 1)), recent) for index in range(10)]
    rows += [("C0", "50000", too_old), ("C3", "5000", today.isoformat()), ("CMEMBER", "10", recent)]
    container.tiers.import_spend(_parse(rows), _admin())

    result = container.intake.receive(
        InboundMessage(
            channel="APP",
            source="app",
            dedupe_key="app:c9-question",
            customer=CustomerRef(external_id="C9"),
            text="请问你们的营业时间是几点?",
            received_at=moto_stack.clock.now(),
        )
    )
    _drain(moto_stack)
    before = container.tickets.get(result.ticket_id)
    assert (before.tier, before.priority) == ("normal", "P2")

    moto_stack.clock.advance(minutes=10)
    outcome = kefu_app.recompute_tiers(_schedule_event(), None)

    # 12 customers → 2 VIP places; C9 (1000) and C8 (900) lead: C0's old spend and C3's spend today don't count.
    assert outcome["vip"] == ["C8", "C9"]
    tiers = {c.id: c.tier for c in (container.customers.get(i) for i in ["C0", "C3", "C8", "C9", "CMEMBER", "COLDVIP"])}
    assert tiers == {"C0": "normal", "C3": "normal", "C8": "vip", "C9": "vip", "CMEMBER": "member", "COLDVIP": "normal"}
    assert {"customer_id": "COLDVIP", "from": "vip", "to": "normal"} in outcome["changed"]
    assert outcome["reprioritised"] == [result.ticket_id]
    assert container.triage_store.tier_holders("vip") == ["C8", "C9"]

    after = container.tickets.get(result.ticket_id)
    assert (after.tier, after.priority) == ("vip", "P1")
    [entry] = [e.to_json() for e in after.timeline if e.action == "tier_changed"]
    assert entry["changes"] == {"tier": {"from": "normal", "to": "vip"}, "priority": {"from": "P2", "to": "P1"}}
    clock = after.clocks["first_response"]
    assert clock.version == before.clocks["first_response"].version + 1
    assert parse_iso(clock.due_at) < parse_iso(before.clocks["first_response"].due_at)

    again = kefu_app.recompute_tiers(_schedule_event(), None)
    assert again["changed"] == [] and again["reprioritised"] == []


def _parse(rows: list[tuple[str, str, str]]) -> Any:
    from chalicelib.domain.tiers import parse_spend_csv

    return parse_spend_csv(_spend_csv(rows))


def _admin() -> Any:
    from chalicelib.services.tickets import Actor

    return Actor("admin1", ("admin",))


def _schedule_event() -> dict[str, Any]:
    from local.pump import schedule_event

    return schedule_event("recompute_tiers", "us-east-1")
