"""clock_rules: arming, re-arming on priority change, pause/resume, calendars, warnings and escalation ladders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import clock_rules
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.sla import SlaPolicy
from chalicelib.domain.ticket import Ticket, iso, parse_iso

MONDAY_10_SHANGHAI = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
FRIDAY_17_SHANGHAI = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def ticket(at: datetime = MONDAY_10_SHANGHAI, **fields: Any) -> Ticket:
    base: dict[str, Any] = {
        "id": "EMAIL-20261123-000001",
        "channel": "EMAIL",
        "source": "email",
        "customer_id": "c1",
        "created_at": iso(at),
        "status": "in_progress",
        "priority": "P1",
        "assignee": "agent1",
    }
    base.update(fields)
    base["id"] = f"{base['channel']}-20261123-000001"
    return Ticket(**base)


def stored(t: Ticket) -> Ticket:
    """As if saved: what is in memory is what is stored."""
    for name, c in t.clocks.items():
        t.clocks[name] = type(c)(**{**c.__dict__, "stored_state": c.state, "stored_version": c.version})
    return t


def hours(a: str, b: str) -> float:
    return (parse_iso(b) - parse_iso(a)) / timedelta(hours=1)


def test_on_triaged_arms_from_creation_and_is_idempotent() -> None:
    policy = SlaPolicy.from_mapping()
    t = ticket()
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI + timedelta(minutes=1), policy)
    assert hours(t.created_at, t.clocks["first_response"].due_at) == 4
    assert hours(t.created_at, t.clocks["resolution"].due_at) == 48
    stored(t)
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI + timedelta(minutes=2), policy)
    assert {n: c.version for n, c in t.clocks.items()} == {"first_response": 1, "resolution": 1}
    assert not any(c.changed for c in t.clocks.values())


def test_a_new_priority_rearms_as_a_new_version_and_leaves_satisfied_and_escalated_clocks_alone() -> None:
    policy = SlaPolicy.from_mapping()
    t = stored(ticket())
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI, policy)
    stored(t)
    t.priority = "P0"
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI + timedelta(minutes=5), policy)
    assert (t.clocks["first_response"].version, hours(t.created_at, t.clocks["first_response"].due_at)) == (2, 2)
    assert (t.clocks["resolution"].version, hours(t.created_at, t.clocks["resolution"].due_at)) == (2, 24)
    clock_rules.on_replied(t, MONDAY_10_SHANGHAI + timedelta(minutes=6), policy)
    t.clocks["resolution"].level = 1  # escalated once already
    t.priority = "P2"
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI + timedelta(minutes=7), policy)
    assert (t.clocks["first_response"].state, t.clocks["first_response"].version) == ("satisfied", 2)
    assert t.clocks["resolution"].version == 2


def test_urgent_is_armed_once_and_acknowledging_satisfies_it() -> None:
    policy = SlaPolicy.from_mapping()
    t = ticket(urgent=True, status="new")
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI, policy)
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI + timedelta(minutes=3), policy)
    assert t.clocks["urgent"].version == 1 and hours(t.clocks["urgent"].started_at, t.clocks["urgent"].due_at) == 0.5
    clock_rules.on_acknowledged(t, MONDAY_10_SHANGHAI + timedelta(minutes=10))
    assert t.clocks["urgent"].state == "satisfied"


def test_business_calendar_applies_to_response_and_resolution_but_not_the_hotline_or_ack() -> None:
    policy = SlaPolicy.from_mapping({"business_calendar": "china_office"})
    email = ticket(FRIDAY_17_SHANGHAI)
    clock_rules.on_triaged(email, FRIDAY_17_SHANGHAI, policy)
    clock_rules.on_assigned(email, FRIDAY_17_SHANGHAI, policy)
    # Friday 17:00 + 4 working hours = 1 h on Friday, 3 h on Monday → Monday 12:00 Shanghai (04:00 UTC).
    assert email.clocks["first_response"].due_at == "2026-11-30T04:00:00.000000Z"
    assert hours(email.created_at, email.clocks["ack"].due_at) == 0.5
    hotline = ticket(FRIDAY_17_SHANGHAI, channel="HOTLINE")
    clock_rules.on_triaged(hotline, FRIDAY_17_SHANGHAI, policy)
    assert hours(hotline.created_at, hotline.clocks["first_response"].due_at) == 4


def test_channel_calendars_and_custom_calendars_are_data() -> None:
    policy = SlaPolicy.from_mapping(
        {
            "calendars": {
                "stores": {
                    "hours": {d: [["10:00", "22:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
                }
            },
            "channel_calendars": {"store": "stores"},
        }
    )
    t = ticket(FRIDAY_17_SHANGHAI, channel="STORE")
    clock_rules.on_triaged(t, FRIDAY_17_SHANGHAI, policy)
    assert t.clocks["first_response"].due_at == "2026-11-27T13:00:00.000000Z"  # 21:00 the same evening
    assert policy.calendar_for("APP", "first_response").always_open
    with pytest.raises(ValidationError):
        SlaPolicy.from_mapping({"business_calendar": "nowhere"})
    with pytest.raises(ValidationError):
        SlaPolicy.from_mapping({"warning_ratio": 1.5})


def test_waiting_pauses_and_resuming_extends_by_the_paused_working_time() -> None:
    policy = SlaPolicy.from_mapping({"business_calendar": "china_office"})
    t = ticket()
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI, policy)
    clock_rules.on_replied(t, MONDAY_10_SHANGHAI + timedelta(hours=1), policy)
    due = t.clocks["resolution"].due_at
    t.status = "waiting_on_customer"
    clock_rules.on_status_changed(t, MONDAY_10_SHANGHAI + timedelta(hours=2), policy)  # Monday 12:00
    assert {n: c.state for n, c in t.clocks.items()} == {
        "first_response": "satisfied",
        "resolution": "paused",
        "progress": "paused",
    }
    t.status = "in_progress"
    clock_rules.on_status_changed(t, MONDAY_10_SHANGHAI + timedelta(days=1, hours=2), policy)  # Tuesday 12:00
    resumed = t.clocks["resolution"]
    assert (resumed.state, resumed.version) == ("running", 2)
    assert hours(due, resumed.due_at) == 24  # 9 working hours paused → one working day (9 h) later
    calendar = policy.calendar_for("EMAIL", "resolution")
    assert calendar.working_time_between(parse_iso(resumed.started_at), parse_iso(resumed.due_at)) == timedelta(
        hours=48
    )
    assert t.clocks["progress"].due_at == "2026-11-24T07:00:00.000000Z"  # 24×7: 24 h paused, 24 h later


def test_closing_stops_running_and_paused_clocks() -> None:
    policy = SlaPolicy.from_mapping()
    t = ticket()
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI, policy)
    clock_rules.on_waiting(t, MONDAY_10_SHANGHAI)
    clock_rules.on_callback_task(t, MONDAY_10_SHANGHAI, policy)
    clock_rules.on_closed(t, MONDAY_10_SHANGHAI + timedelta(hours=1))
    assert {c.state for c in t.clocks.values()} == {"stopped"}


def test_warning_at_eighty_percent_of_level_zero_response_and_resolution_only() -> None:
    policy = SlaPolicy.from_mapping()
    t = ticket()
    clock_rules.on_triaged(t, MONDAY_10_SHANGHAI, policy)
    clock_rules.on_assigned(t, MONDAY_10_SHANGHAI, policy)
    warn = clock_rules.warning_at("EMAIL", t.clocks["first_response"], policy)
    assert warn == MONDAY_10_SHANGHAI + timedelta(hours=3.2)
    assert clock_rules.warning_at("EMAIL", t.clocks["ack"], policy) is None
    t.clocks["resolution"].level = 1
    assert clock_rules.warning_at("EMAIL", t.clocks["resolution"], policy) is None


def test_escalation_ladders_rearm_until_the_top_and_progress_repeats() -> None:
    policy = SlaPolicy.from_mapping({"escalation_period": {"resolution": "PT2H"}})
    t = ticket()
    at = MONDAY_10_SHANGHAI
    assert clock_rules.escalation_for("resolution", 0) == clock_rules.Escalation("resolution", 1, "supervisor", False)
    assert clock_rules.escalation_for("resolution", 1).role == "manager"
    assert clock_rules.escalation_for("ack", 0).reassign
    assert clock_rules.escalation_for("urgent", 0).role == "manager"
    assert clock_rules.escalation_for("callback", 0).role == "manager"
    assert clock_rules.escalation_for("progress", 5).role == "supervisor"
    clock_rules.on_triaged(t, at, policy)
    level1 = clock_rules.rearm_after_breach(t, "resolution", at, policy, 1)
    assert level1 is not None and (level1.level, hours(level1.started_at, level1.due_at)) == (1, 2)
    assert clock_rules.rearm_after_breach(t, "first_response", at, policy, 1) is not None
    assert hours(t.clocks["first_response"].started_at, t.clocks["first_response"].due_at) == 4  # its own again
    assert clock_rules.rearm_after_breach(t, "resolution", at, policy, 2) is None
    clock_rules.on_work_accepted(t, at, policy)
    assert clock_rules.rearm_after_breach(t, "progress", at, policy, 7) is not None
    assert clock_rules.rearm_after_breach(t, "urgent", at, policy, 1) is None


def test_callback_task_arms_its_clock_and_done_satisfies_it() -> None:
    policy = SlaPolicy.from_mapping({"callback": "PT2H"})
    t = ticket(status="resolved")
    clock = clock_rules.on_callback_task(t, MONDAY_10_SHANGHAI, policy)
    assert (clock.name, clock.state, hours(clock.started_at, clock.due_at)) == ("callback", "running", 2)
    clock_rules.on_callback_done(t, MONDAY_10_SHANGHAI + timedelta(hours=1))
    assert t.clocks["callback"].state == "satisfied"
    assert clock_rules.channel_of("TMALL-20261123-000042") == "TMALL"
