"""The work order domain: flows as data, engineer matching, appointments, parts bookkeeping and the 24 h warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.errors import InvalidTransition, ValidationError
from chalicelib.domain.work_orders import (
    DONE_STATUSES,
    FLOW_OF_TYPE,
    INITIAL_STATUS,
    STATUSES,
    TRANSITIONS,
    TYPES,
    Appointment,
    Device,
    Engineer,
    StockChange,
    WorkOrder,
    format_work_order_id,
    is_work_order_id,
    match_engineer,
    stock_changes,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
SLOT = Appointment(start="2026-11-24T06:00:00.000000Z", end="2026-11-24T08:00:00.000000Z", address="x", region="east")


def _order(kind: str = "repair", **fields: object) -> WorkOrder:
    return WorkOrder(
        id="WO-20261123-000001",
        type=kind,
        ticket_id="STORE-20261123-000001",
        customer_id="c1",
        created_at="2026-11-23T02:00:00.000000Z",
        created_by="aftersales1",
        **fields,  # type: ignore[arg-type]
    )


def test_ids() -> None:
    assert format_work_order_id("20261123", 42) == "WO-20261123-000042"
    assert is_work_order_id("WO-20261123-000042") and not is_work_order_id("WO-2026-1")
    with pytest.raises(ValidationError):
        format_work_order_id("2026112", 1)
    with pytest.raises(ValidationError):
        format_work_order_id("20261123", 1_000_000)


def test_the_tables_are_closed_and_every_flow_can_finish() -> None:
    assert set(FLOW_OF_TYPE) == set(TYPES)
    for flow, table in TRANSITIONS.items():
        for status, actions in table.items():
            assert set(actions.values()) <= set(table), (flow, status)
        # From the first status, some sequence of actions reaches `closed`.
        seen, frontier = {INITIAL_STATUS[flow]}, [INITIAL_STATUS[flow]]
        while frontier:
            for target in table[frontier.pop()].values():
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert "closed" in seen and "cancelled" in seen
        assert all(not table[s] for s in ("closed", "cancelled"))
    assert set(STATUSES) >= DONE_STATUSES


@pytest.mark.parametrize(
    ("kind", "path", "end"),
    [
        ("repair", ["schedule", "start", "wait_parts", "start", "complete", "close"], "closed"),
        ("installation", ["schedule", "complete"], "completed"),
        ("maintenance", ["wait_parts", "schedule", "cancel"], "cancelled"),
        ("return", ["approve", "ship", "receive", "refund", "close"], "closed"),
        ("exchange", ["approve", "receive", "exchange"], "exchanged"),
        ("return", ["reject", "close"], "closed"),
    ],
)
def test_legal_paths(kind: str, path: list[str], end: str) -> None:
    order = _order(kind)
    for step, action in enumerate(path):
        order.apply(action, NOW + timedelta(minutes=step), "aftersales1")
    assert order.status == end
    assert [e.action for e in order.new_timeline] == path


@pytest.mark.parametrize(
    ("kind", "path", "illegal"),
    [
        ("repair", [], "complete"),
        ("repair", [], "refund"),
        ("repair", ["schedule", "start", "complete", "close"], "reopen"),
        ("return", [], "receive"),
        ("return", ["approve", "receive"], "exchange"),
        ("exchange", ["approve", "receive"], "refund"),
        ("exchange", ["cancel"], "approve"),
    ],
)
def test_illegal_actions_are_refused(kind: str, path: list[str], illegal: str) -> None:
    order = _order(kind)
    for action in path:
        order.apply(action, NOW, "x")
    with pytest.raises(InvalidTransition):
        order.apply(illegal, NOW, "x")


def test_status_requests_map_to_actions() -> None:
    order = _order()
    assert order.action_to("cancelled") == "cancel"
    with pytest.raises(ValidationError):
        order.action_to("scheduled")  # through /schedule, with a slot
    with pytest.raises(ValidationError):
        order.action_to("teleported")
    with pytest.raises(InvalidTransition):
        order.action_to("in_service")
    assert _order("return").action_to("approved") == "approve"


def test_type_must_be_known() -> None:
    with pytest.raises(ValidationError):
        _order("teleport")


def test_matching_prefers_region_and_skill_then_load_then_id() -> None:
    team = [
        Engineer("e3", ("east",), ("air_purifier",), open_orders=1),
        Engineer("e1", ("east",), ("air_purifier",), open_orders=1),
        Engineer("e2", ("north",), ("air_purifier",), open_orders=0),
        Engineer("e4", ("east",), ("water_heater",), open_orders=0),
        Engineer("e5", ("*",), ("air_purifier",), open_orders=1),
    ]
    assert match_engineer(team, "east", "air_purifier") == team[1]  # e1: tie on load → lower id, named region
    assert match_engineer(team, "north", "air_purifier") == team[2]
    assert match_engineer(team, "east", "") == team[3]  # no skill asked: least loaded in the region
    assert match_engineer(team, "west", "air_purifier") == team[4]  # only the roaming engineer covers it
    assert match_engineer(team, "west", "water_heater") is None
    assert match_engineer(reversed(team), "east", "air_purifier") == team[1]  # order of input does not matter


def test_appointments_are_read_in_the_business_time_zone() -> None:
    slot = Appointment.parse(
        {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "浦东", "region": "east"}, ZONE, NOW
    )
    assert slot.start == "2026-11-24T06:00:00.000000Z" and slot.end == "2026-11-24T08:00:00.000000Z"
    assert slot.to_json(ZONE)["local_start"] == "2026-11-24T14:00:00+08:00"
    utc = Appointment.parse(
        {"start": "2026-11-24T06:00:00Z", "end": "2026-11-24T08:00:00Z", "address": "a", "region": "east"}, ZONE, NOW
    )
    assert utc == Appointment(slot.start, slot.end, "a", "east")
    for bad in (
        {"start": "2026-11-24T16:00", "end": "2026-11-24T14:00", "address": "a", "region": "east"},
        {"start": "2026-11-22T14:00", "end": "2026-11-22T16:00", "address": "a", "region": "east"},
        {"start": "2026-11-24T06:00", "end": "2026-11-24T20:00", "address": "a", "region": "east"},
        {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "", "region": "east"},
        {"start": "2026-11-24T14:00", "end": "2026-11-24T16:00", "address": "a", "region": "East Side"},
        {"start": 3, "end": "2026-11-24T16:00", "address": "a", "region": "east"},
    ):
        with pytest.raises(ValidationError):
            Appointment.parse(bad, ZONE, NOW)


def test_scheduling_records_the_engineer_once() -> None:
    order = _order()
    order.schedule(SLOT, "engineer1", NOW, "aftersales1")
    order.schedule(SLOT, "engineer1", NOW, "aftersales1")
    assert [e.action for e in order.new_timeline] == ["schedule", "engineer_assigned", "schedule"]
    with pytest.raises(InvalidTransition):
        _order("return").schedule(SLOT, "engineer1", NOW, "x")


def test_parts_are_held_consumed_and_released() -> None:
    order = _order()
    order.schedule(SLOT, "engineer1", NOW, "x")
    order.reserve("FLT-01", 3, NOW, "engineer1")
    order.reserve("FLT-01", 1, NOW, "engineer1")
    order.reserve("PCB-02", 1, NOW, "engineer1")
    order.apply("start", NOW, "engineer1")
    held, stock, released = order.complete("fixed", {"FLT-01": 2, "MTR-03": 1}, NOW, "engineer1")
    assert (held, stock, released) == ({"FLT-01": 2}, {"MTR-03": 1}, {"FLT-01": 2, "PCB-02": 1})
    lines = {p.part_no: p for p in order.parts}
    assert (lines["FLT-01"].consumed, lines["FLT-01"].released, lines["FLT-01"].held) == (2, 2, 0)
    assert lines["MTR-03"].consumed == 1 and lines["MTR-03"].held == 0
    changes = stock_changes(from_held=held, from_stock=stock, released=released)
    assert changes == [
        StockChange("FLT-01", available=2, reserved=-4, consumed=2),
        StockChange("MTR-03", available=-1, reserved=0, consumed=1),
        StockChange("PCB-02", available=1, reserved=-1, consumed=0),
    ]
    assert stock_changes(reserve={"FLT-01": 2}) == [StockChange("FLT-01", available=-2, reserved=2)]
    with pytest.raises(InvalidTransition):
        order.reserve("FLT-01", 1, NOW, "x")  # completed orders take no parts


def test_overdue_after_24_hours_without_progress_or_a_missed_slot() -> None:
    order = _order()
    assert not order.is_overdue(NOW + timedelta(hours=23, minutes=59))
    assert order.overdue_reasons(NOW + timedelta(hours=24)) == ["no_progress_24h"]
    assert order.overdue_at() == "2026-11-24T02:00:00.000000Z"
    order.schedule(SLOT, "engineer1", NOW + timedelta(hours=20), "x")  # progress resets the 24 h
    assert not order.is_overdue(NOW + timedelta(hours=30))
    assert order.overdue_reasons(NOW + timedelta(hours=30, minutes=1)) == ["appointment_missed"]
    order.apply("start", NOW + timedelta(hours=29), "engineer1")
    order.apply("complete", NOW + timedelta(hours=30), "engineer1")
    assert not order.is_overdue(NOW + timedelta(days=10)) and order.overdue_at() is None


def test_views_hide_staff_details_from_customers() -> None:
    order = _order(description="不出风")
    order.schedule(SLOT, "engineer1", NOW, "x")
    public = order.public_view(ZONE)
    assert public["status"] == "scheduled" and public["appointment"]["local_start"] == "2026-11-24T14:00:00+08:00"
    assert "engineer" not in public and "address" not in public["appointment"]
    staff = order.to_json(NOW, ZONE)
    assert staff["engineer"] == "engineer1" and staff["overdue"] is False
    assert staff["timeline"][0]["action"] == "schedule"


def test_devices_know_their_warranty() -> None:
    device = Device(serial="AP-1", model="m", purchase_date="2025-01-01", warranty_until="2026-12-31")
    assert device.in_warranty(datetime(2026, 12, 31).date()) and not device.in_warranty(datetime(2027, 1, 1).date())
    assert not Device(serial="AP-2", model="m").in_warranty(NOW.date())
