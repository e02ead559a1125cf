"""After-sales work orders through the API: from a ticket, dispatch, parts stock under races, completion, roles."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.domain.work_orders import InsufficientStock
from chalicelib.ports import StaffRecord
from chalicelib.services.tickets import Actor

AFTER_SALES = ("aftersales1", ("after_sales",))


def _auth(container: Any, staff: tuple[str, tuple[str, ...]] = AFTER_SALES) -> dict[str, str]:
    staff_id, roles = staff
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _call(client: Client, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body, ensure_ascii=False) if body is not None else None
    answer = getattr(client.http, method)(path, body=data, headers=headers or {})
    return answer.status_code, json.loads(answer.body) if answer.body else None


def _seed(container: Any) -> str:
    """Engineers, parts, a device, and an after-sales ticket; answers the ticket id."""
    for member in (
        StaffRecord("engineer1", "E1", ["engineer"], regions=["east"], skills=["air_purifier"]),
        StaffRecord("engineer2", "E2", ["engineer"], regions=["north"], skills=["air_purifier"]),
        StaffRecord("engineer3", "E3", ["engineer"], regions=["east"], skills=["water_heater"]),
        StaffRecord("engineer4", "E4", ["engineer"], regions=["east"], skills=["air_purifier"]),
        StaffRecord("aftersales1", "A1", ["after_sales"]),
    ):
        container.staff.put(member)
    service = container.work_orders
    service.put_part("FLT-01", {"name": "filter", "available": 3, "low_stock_threshold": 1})
    service.put_part("MTR-02", {"name": "motor", "available": 5})
    service.put_device(
        "AP-0001", {"model": "KF-AP500", "purchase_date": "2026-01-10", "warranty_until": "2027-01-10"}
    )
    return _ticket(container)


def _ticket(container: Any, category: str = "after_sales") -> str:
    from chalicelib.channels.staff_logged import parse_staff_ticket

    body = {"channel": "STORE", "customer": {"phone": "+8613800000009"}, "text": "净化器坏了", "category": category}
    message = parse_staff_ticket(body, "aftersales1", container.clock.now(), "")
    return str(container.intake.receive(message).ticket_id)


def _create(client: Client, container: Any, ticket_id: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "repair", "serial": "AP-0001", "skill": "air_purifier", **extra}
    status, order = _call(client, "post", f"/api/tickets/{ticket_id}/work-orders", body, _auth(container))
    assert status == 201, order
    return dict(order)


def test_a_work_order_from_a_ticket_is_linked_and_readable(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id, description="不出风")
        assert order["id"] == "WO-20261123-000001" and order["status"] == "open" and order["ticket_id"] == ticket_id
        assert order["in_warranty"] is True and order["device"]["model"] == "KF-AP500"
        assert order["timeline"][0]["action"] == "created" and order["timeline"][0]["actor"] == "aftersales1"
        status, ticket = _call(client, "get", f"/api/tickets/{ticket_id}", headers=_auth(container))
        assert status == 200 and ticket["work_order_id"] == order["id"]
        assert any(e["action"] == "work_order_created" for e in ticket["timeline"])
        status, again = _call(client, "get", f"/api/work-orders/{order['id']}", headers=_auth(container))
        assert status == 200 and again["id"] == order["id"] and again["device"]["serial"] == "AP-0001"
        status, page = _call(client, "get", f"/api/work-orders?ticket={ticket_id}", headers=_auth(container))
        assert status == 200 and [o["id"] for o in page["items"]] == [order["id"]]
        second = _create(client, container, ticket_id)
        assert second["id"] == "WO-20261123-000002"


def test_scheduling_picks_the_least_loaded_engineer_of_the_region_with_the_skill(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    slot = {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "上海市浦东新区 1 号", "region": "east"}
    with Client(kefu_app.app) as client:
        first = _create(client, container, ticket_id)
        status, scheduled = _call(client, "post", f"/api/work-orders/{first['id']}/schedule", slot, _auth(container))
        assert status == 200, scheduled
        # engineer2 is in the north, engineer3 lacks the skill; engineer1 and engineer4 tie → the lower id.
        assert scheduled["status"] == "scheduled" and scheduled["engineer"] == "engineer1"
        assert scheduled["appointment"]["start"] == "2026-11-24T06:00:00.000000Z"
        assert scheduled["appointment"]["local_start"].startswith("2026-11-24T14:00:00+08:00")
        assert any(e["action"] == "engineer_assigned" for e in scheduled["timeline"])
        second = _create(client, container, ticket_id)
        status, other = _call(client, "post", f"/api/work-orders/{second['id']}/schedule", slot, _auth(container))
        assert status == 200 and other["engineer"] == "engineer4"  # engineer1 already holds one open order
        status, mine = _call(
            client, "get", "/api/work-orders?engineer=me", headers=_auth(container, ("engineer1", ("engineer",)))
        )
        assert status == 200 and [o["id"] for o in mine["items"]] == [first["id"]]
        nobody = dict(slot, region="west")
        third = _create(client, container, ticket_id)
        status, error = _call(client, "post", f"/api/work-orders/{third['id']}/schedule", nobody, _auth(container))
        assert status == 409 and error["error"]["code"] == "no_engineer"
        named = dict(nobody, engineer="engineer2")
        status, forced = _call(client, "post", f"/api/work-orders/{third['id']}/schedule", named, _auth(container))
        assert status == 200 and forced["engineer"] == "engineer2"


def test_two_concurrent_reservations_never_take_stock_below_zero(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    with Client(kefu_app.app) as client:
        orders = [_create(client, container, ticket_id)["id"] for _ in range(2)]
    service = container.work_orders
    actor = Actor("aftersales1", ("after_sales",))
    results: list[str] = []
    barrier = threading.Barrier(2)

    def reserve(order_id: str) -> None:
        barrier.wait()
        try:
            service.reserve(order_id, actor, {"part_no": "FLT-01", "qty": 2})
            results.append("ok")
        except InsufficientStock:
            results.append("409")

    threads = [threading.Thread(target=reserve, args=(o,)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["409", "ok"]
    part = service.part("FLT-01")
    assert (part.available, part.reserved) == (1, 2) and part.low_stock


def test_reservation_answers_409_when_short_and_warns_on_low_stock(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    sns, sqs = container.aws.client("sns"), container.aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="wo-test-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=container.aws.topic_arn("kefu-staff-notifications"), Protocol="sqs", Endpoint=queue_arn)
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id)
        path = f"/api/work-orders/{order['id']}/parts"
        status, error = _call(client, "post", path, {"part_no": "FLT-01", "qty": 4}, _auth(container))
        assert status == 409 and error["error"]["code"] == "insufficient_stock"
        status, reserved = _call(client, "post", path, {"part_no": "FLT-01", "qty": 2}, _auth(container))
        assert status == 201 and reserved["parts"] == [
            {"part_no": "FLT-01", "reserved": 2, "consumed": 0, "released": 0, "held": 2}
        ]
        assert [p["part_no"] for p in reserved["low_stock"]] == ["FLT-01"]
        status, part = _call(client, "get", "/api/parts/FLT-01", headers=_auth(container))
        assert status == 200 and part["available"] == 1 and part["low_stock"] is True
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    notices = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
    assert [n["part_no"] for n in notices if n["type"] == "low_stock"] == ["FLT-01"]


def test_completion_consumes_parts_releases_the_rest_and_writes_device_history(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    slot = {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "浦东 1 号", "region": "east"}
    engineer = _auth(container, ("engineer1", ("engineer",)))
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id)
        wo = f"/api/work-orders/{order['id']}"
        assert _call(client, "post", f"{wo}/schedule", slot, _auth(container))[0] == 200
        assert _call(client, "post", f"{wo}/parts", {"part_no": "FLT-01", "qty": 2}, engineer)[0] == 201
        status, started = _call(client, "post", f"{wo}/status", {"status": "in_service", "note": "到达"}, engineer)
        assert status == 200 and started["status"] == "in_service"
        used = [{"part_no": "FLT-01", "qty": 1}, {"part_no": "MTR-02", "qty": 1}]
        done = {"resolution": "更换滤网和电机", "parts_used": used}
        status, completed = _call(client, "post", f"{wo}/complete", done, engineer)
        assert status == 200, completed
        assert completed["status"] == "completed" and completed["resolution"] == "更换滤网和电机"
        lines = {p["part_no"]: p for p in completed["parts"]}
        assert lines["FLT-01"]["consumed"] == 1 and lines["FLT-01"]["released"] == 1 and lines["FLT-01"]["held"] == 0
        assert lines["MTR-02"]["consumed"] == 1
        status, device = _call(client, "get", "/api/devices/AP-0001", headers=engineer)
        assert status == 200 and device["history"][0]["work_order_id"] == order["id"]
        assert device["history"][0]["summary"] == "更换滤网和电机" and device["history"][0]["engineer"] == "engineer1"
        filt = _call(client, "get", "/api/parts/FLT-01", headers=engineer)[1]
        motor = _call(client, "get", "/api/parts/MTR-02", headers=engineer)[1]
        assert (filt["available"], filt["reserved"], filt["consumed"]) == (2, 0, 1)
        assert (motor["available"], motor["consumed"]) == (4, 1)
        status, ticket = _call(client, "get", f"/api/tickets/{ticket_id}", headers=_auth(container))
        assert any(e["action"] == "work_order_completed" for e in ticket["timeline"])
        status, error = _call(client, "post", f"{wo}/complete", done, engineer)
        assert status == 409 and error["error"]["code"] == "invalid_transition"


def test_a_return_goes_requested_approved_received_refunded(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id, type="return", skill=None)
        assert order["status"] == "requested"
        wo = f"/api/work-orders/{order['id']}/status"
        status, approved = _call(
            client, "post", wo, {"status": "approved", "tracking_no": "SF123", "carrier": "SF"}, _auth(container)
        )
        assert status == 200 and approved["logistics"] == {"tracking_no": "SF123", "carrier": "SF"}
        assert _call(client, "post", wo, {"status": "refunded"}, _auth(container))[0] == 409
        for step in ("received", "refunded"):
            status, moved = _call(client, "post", wo, {"status": step}, _auth(container))
            assert status == 200 and moved["status"] == step
        assert moved["device"]["history"][-1]["kind"] == "return"


def test_the_customer_sees_progress_with_their_status_token(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    token = container.tickets.get(ticket_id).public_token
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id)
        status, view = _call(client, "get", f"/public/tickets/{ticket_id}/work-order?token={token}")
        assert status == 200 and view["work_order"]["id"] == order["id"] and view["work_order"]["status"] == "open"
        assert "engineer" not in view["work_order"]
        assert _call(client, "get", f"/public/tickets/{ticket_id}/work-order?token=wrong")[0] == 404


def test_roles_are_enforced(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    agent = _auth(container, ("agent1", ("agent",)))
    other_engineer = _auth(container, ("engineer2", ("engineer",)))
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id)
        assert _call(client, "get", f"/api/work-orders/{order['id']}")[0] == 401
        assert _call(client, "get", f"/api/work-orders/{order['id']}", headers=agent)[0] == 403
        assert _call(client, "get", f"/api/work-orders/{order['id']}", headers=other_engineer)[0] == 403
        assert _call(client, "post", f"/api/tickets/{ticket_id}/work-orders", {"type": "repair"}, agent)[0] == 403
        assert _call(client, "put", "/api/parts/FLT-01", {"available": 99}, other_engineer)[0] == 403
        slot = {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "x", "region": "east"}
        assert _call(client, "post", f"/api/work-orders/{order['id']}/schedule", slot, other_engineer)[0] == 403
        assert _call(client, "get", "/api/work-orders?engineer=engineer1", headers=other_engineer)[0] == 403


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/api/tickets/{ticket}/work-orders", {"type": "teleport"}, 400),
        ("/api/tickets/{ticket}/work-orders", {"type": "repair", "serial": "NO-SUCH-1"}, 400),
        ("/api/tickets/{ticket}/work-orders", {"type": "repair", "serial": "x"}, 400),
        ("/api/tickets/STORE-20261123-999999/work-orders", {"type": "repair"}, 404),
        ("/api/work-orders/{order}/schedule", {"start": "tomorrow", "end": "x", "address": "a", "region": "east"}, 400),
        ("/api/work-orders/{order}/schedule", {"start": "2026-11-24T16:00", "end": "2026-11-24T14:00",
                                               "address": "a", "region": "east"}, 400),
        ("/api/work-orders/{order}/schedule", {"start": "2026-11-20T14:00", "end": "2026-11-20T16:00",
                                               "address": "a", "region": "east"}, 400),
        ("/api/work-orders/{order}/status", {"status": "flying"}, 400),
        ("/api/work-orders/{order}/status", {"status": "completed"}, 400),
        ("/api/work-orders/{order}/status", {"status": "in_service"}, 409),
        ("/api/work-orders/{order}/parts", {"part_no": "FLT-01", "qty": 0}, 400),
        ("/api/work-orders/{order}/parts", {"part_no": "FLT-01", "qty": "2"}, 400),
        ("/api/work-orders/{order}/parts", {"part_no": "NOPE-9", "qty": 1}, 400),
        ("/api/work-orders/{order}/complete", {"resolution": ""}, 400),
        ("/api/work-orders/{order}/complete", {"resolution": "ok", "parts_used": "FLT-01"}, 400),
        ("/api/work-orders/WO-20261123-999999/status", {"status": "cancelled"}, 404),
        ("/api/work-orders/not-an-id/parts", {"part_no": "FLT-01", "qty": 1}, 404),
    ],
)
def test_bad_input_and_unknown_ids(moto_stack: Any, path: str, body: Any, expected: int) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    with Client(kefu_app.app) as client:
        order = _create(client, container, ticket_id)
        status, error = _call(
            client, "post", path.format(ticket=ticket_id, order=order["id"]), body, _auth(container)
        )
        assert status == expected and set(error["error"]) == {"code", "message"}, error


def test_devices_parts_and_malformed_bodies(moto_stack: Any) -> None:
    import app as kefu_app

    container = moto_stack.container
    ticket_id = _seed(container)
    headers = _auth(container)
    with Client(kefu_app.app) as client:
        assert _call(client, "get", "/api/devices/NOPE-123", headers=headers)[0] == 404
        assert _call(client, "get", "/api/parts/NOPE-1", headers=headers)[0] == 404
        assert _call(client, "get", "/api/work-orders/WO-20261123-000404", headers=headers)[0] == 404
        assert _call(client, "put", "/api/devices/W1", {"model": "x"}, headers)[0] == 400  # serial too short
        assert _call(client, "put", "/api/devices/WH-0009", {}, headers)[0] == 400  # a new device needs a model
        status, device = _call(client, "put", "/api/devices/WH-0009", {"model": "KF-WH60", "region": "north"}, headers)
        assert status == 200 and device["model"] == "KF-WH60" and device["history"] == []
        bad_dates = {"purchase_date": "2026-05-01", "warranty_until": "2025-01-01"}
        assert _call(client, "put", "/api/devices/WH-0009", bad_dates, headers)[0] == 400
        assert _call(client, "put", "/api/parts/NEW-1", {"available": 3}, headers)[0] == 400  # a new part needs a name
        assert _call(client, "put", "/api/parts/FLT-01", {"adjust": -10}, headers)[0] == 409
        status, part = _call(client, "put", "/api/parts/FLT-01", {"adjust": 5}, headers)
        assert status == 200 and part["available"] == 8 and part["low_stock"] is False
        status, parts = _call(client, "get", "/api/parts", headers=headers)
        assert status == 200 and {p["part_no"] for p in parts["items"]} == {"FLT-01", "MTR-02"}
        answer = client.http.post(f"/api/tickets/{ticket_id}/work-orders", body="{not json", headers=headers)
        assert answer.status_code == 400 and json.loads(answer.body)["error"]["code"] == "malformed_json"
        consult = _ticket(container, "consultation")
        assert container.tickets.get(consult).category != "after_sales"
        status, error = _call(client, "post", f"/api/tickets/{consult}/work-orders", {"type": "repair"}, headers)
        assert status == 409 and error["error"]["code"] == "not_after_sales"
        assert _call(client, "get", "/api/work-orders?status=bogus", headers=headers)[0] == 400
        assert _call(client, "get", "/api/work-orders?limit=x", headers=headers)[0] == 400
        assert _call(client, "get", "/api/work-orders?cursor=%%%", headers=headers)[0] == 400


def test_the_demo_seed_is_idempotent(moto_stack: Any) -> None:
    from chalicelib.ports import StaffRecord as Staff
    from chalicelib.services.work_orders import seed_demo

    container = moto_stack.container
    container.staff.put(Staff("engineer1", "E1", ["engineer"], regions=["east"]))
    seed_demo(container.work_orders)
    seed_demo(container.work_orders)
    engineer1 = container.staff.get("engineer1")
    assert engineer1 is not None and engineer1.skills == ["air_purifier"]
    assert container.work_orders.part("FLT-HEPA-01").available == 12
    assert container.work_orders.device("AP-2024-000123").in_warranty(container.clock.now().date())
    assert {e.id for e in container.work_orders.engineers()} == {"engineer1", "engineer2", "engineer3"}
