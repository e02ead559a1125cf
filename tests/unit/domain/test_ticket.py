"""The ticket aggregate: every (status, action) pair of TRANSITIONS, ids, timestamps, timeline, clocks, views."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import ConflictError, InvalidTransition, ValidationError
from chalicelib.domain.ticket import (
    CLOCK_RUNNING,
    CLOCK_SATISFIED,
    CLOCK_STOPPED,
    OPEN_STATUSES,
    STATUS_ACTIONS,
    STATUSES,
    TRANSITIONS,
    Ticket,
    format_ticket_id,
    is_ticket_id,
    iso,
    parse_iso,
)

AT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ALL_ACTIONS = sorted({action for actions in TRANSITIONS.values() for action in actions} | {"unknown_action"})


def ticket(status: str = "new", **kw: object) -> Ticket:
    return Ticket(
        id="APP-20261123-000001", channel="APP", source="app", customer_id="C1", created_at=iso(AT),
        status=status, **kw,  # type: ignore[arg-type]
    )


# --- the transition table ---------------------------------------------------------------------------------------
def test_the_table_covers_every_status_and_only_leads_to_statuses() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    for actions in TRANSITIONS.values():
        assert set(actions.values()) <= set(STATUSES)


def test_contract_rules_of_the_table() -> None:
    # A reopened ticket returns to in_progress (CONTRACT.md), from resolved and from closed.
    assert TRANSITIONS["resolved"]["reopen"] == "in_progress"
    assert TRANSITIONS["closed"]["reopen"] == "in_progress"
    # Nothing but reopen leaves closed; no open ticket can be reopened.
    assert set(TRANSITIONS["closed"]) == {"reopen"}
    assert not any("reopen" in TRANSITIONS[s] for s in OPEN_STATUSES)
    # Every open status can be resolved and (re)assigned.
    assert all(TRANSITIONS[s]["resolve"] == "resolved" for s in OPEN_STATUSES)
    assert all(TRANSITIONS[s]["assign"] == "assigned" for s in OPEN_STATUSES)
    # A customer writing back to a ticket waiting on them puts it back in progress.
    assert TRANSITIONS["waiting_on_customer"]["customer_reply"] == "in_progress"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_every_status_action_pair(status: str, action: str) -> None:
    t = ticket(status)
    allowed = TRANSITIONS[status]
    if action in allowed:
        assert t.can(action)
        assert t.apply(action, AT, "agent1") == allowed[action]
        assert t.status == allowed[action]
        [entry] = t.new_timeline
        assert (entry.actor, entry.action, entry.at) == ("agent1", action, iso(AT))
        if allowed[action] != status:
            assert entry.detail == {"from": status, "to": allowed[action]}
        else:
            assert "from" not in entry.detail
    else:
        assert not t.can(action)
        with pytest.raises(InvalidTransition) as caught:
            t.apply(action, AT, "agent1")
        assert caught.value.code == "invalid_transition"
        assert isinstance(caught.value, ConflictError)  # → HTTP 409
        assert t.status == status  # unchanged
        assert t.new_timeline == []  # nothing recorded


def test_status_actions_reach_their_status_wherever_allowed() -> None:
    for status, action in STATUS_ACTIONS.items():
        for start, actions in TRANSITIONS.items():
            if action in actions:
                assert actions[action] == status, (start, action)


def test_apply_keeps_caller_detail_and_counts_sequence() -> None:
    t = ticket()
    t.apply("assign", AT, "sup1", assignee="agent1")
    t.apply("ack", AT, "agent1")
    first, second = t.new_timeline
    assert first.detail == {"from": "new", "to": "assigned", "assignee": "agent1"}
    assert (first.seq, second.seq) == (0, 1)
    assert first.key < second.key  # same instant, still ordered
    assert t.updated_at == iso(AT)
    assert [e["action"] for e in t.to_json()["timeline"]] == ["assign", "ack"]


# --- ids ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "day", "serial", "expected"),
    [
        ("WECHAT", "20261123", 42, "WECHAT-20261123-000042"),
        ("APP", "20261124", 1, "APP-20261124-000001"),
        ("JD", "20260101", 999_999, "JD-20260101-999999"),
        ("MINIPROGRAM", "20261231", 100_000, "MINIPROGRAM-20261231-100000"),
    ],
)
def test_format_ticket_id(channel: str, day: str, serial: int, expected: str) -> None:
    assert format_ticket_id(channel, day, serial) == expected
    assert is_ticket_id(expected)


@pytest.mark.parametrize(
    ("channel", "day", "serial"),
    [
        ("app", "20261123", 1),  # lower case
        ("A", "20261123", 1),  # too short
        ("1APP", "20261123", 1),  # must start with a letter
        ("AP-P", "20261123", 1),  # a dash would break the id's shape
        ("APP\n", "20261123", 1),  # a trailing newline is not part of a code
        ("APP", "2026112", 1),
        ("APP", "202611234", 1),
        ("APP", "2026-11-", 1),
        ("APP", "２０２６１１２３", 1),  # full-width digits
        ("APP", "20261123", 0),  # serials count from 1
        ("APP", "20261123", -1),
        ("APP", "20261123", 1_000_000),  # six digits, no more
    ],
)
def test_format_ticket_id_refuses(channel: str, day: str, serial: int) -> None:
    with pytest.raises(ValidationError):
        format_ticket_id(channel, day, serial)


@pytest.mark.parametrize(
    "text",
    [
        "app-20261123-000001",
        "APP-2026112-000001",
        "APP-20261123-00001",
        "APP-20261123-0000001",
        "APP20261123000001",
        "APP-20261123-000001\n",
        " APP-20261123-000001",
        "APP-２０２６１１２３-000001",
        "../APP-20261123-000001",
        "",
    ],
)
def test_is_ticket_id_refuses(text: str) -> None:
    assert not is_ticket_id(text)


# --- time ---------------------------------------------------------------------------------------------------------
def test_iso_is_utc_with_microseconds_and_z() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert iso(datetime(2026, 11, 24, 1, 30, tzinfo=shanghai)) == "2026-11-23T17:30:00.000000Z"
    assert iso(datetime(2026, 11, 23, 17, 30, 0, 5, tzinfo=UTC)) == "2026-11-23T17:30:00.000005Z"


# Fixed offsets (a zone's DST gap holds wall times that never existed, which compare oddly across zones).
OFFSETS = st.builds(timezone, st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m)))


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=OFFSETS))
def test_iso_round_trip(at: datetime) -> None:
    text = iso(at)
    back = parse_iso(text)
    assert back == at
    assert back.utcoffset() == timedelta(0)
    assert iso(back) == text


def test_iso_sorts_as_time() -> None:
    times = [AT + timedelta(microseconds=n) for n in (0, 1, 999_999, 10**6)] + [AT - timedelta(days=400)]
    assert sorted(times) == sorted(times, key=iso)
    assert sorted(times) == [parse_iso(s) for s in sorted(map(iso, times))]


def test_parse_iso_accepts_offsets() -> None:
    assert parse_iso("2026-11-24T01:30:00+08:00") == datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    assert parse_iso("2026-11-23T17:30:00Z") == datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_iso("yesterday")


# --- messages, notes, clocks, views -------------------------------------------------------------------------------
def test_messages_and_notes_stay_new_until_saved() -> None:
    t = ticket()
    inbound = t.add_message("in", "订单没到", AT, "customer")
    outbound = t.add_message("out", "马上查", AT + timedelta(seconds=1), "agent1")
    note = t.add_note("客户很着急", AT, "agent1")
    assert t.new_messages == [inbound, outbound] and t.new_notes == [note]
    assert inbound.delivery == "" and outbound.delivery == "queued"
    assert t.last_customer_message_at == iso(AT)
    assert inbound.channel == "APP" and inbound.id != outbound.id


def test_clock_arm_rearm_and_end() -> None:
    t = ticket()
    first = t.arm_clock("ack", AT, timedelta(minutes=30))
    assert (first.version, first.state, first.due_at) == (1, CLOCK_RUNNING, iso(AT + timedelta(minutes=30)))
    assert first.changed
    second = t.arm_clock("ack", AT + timedelta(minutes=5), timedelta(minutes=30), level=1)
    assert (second.version, second.level) == (2, 1)
    ended = t.end_clock("ack", AT + timedelta(minutes=6))
    assert ended is not None and ended.state == CLOCK_SATISFIED and ended.ended_at == iso(AT + timedelta(minutes=6))
    assert t.end_clock("ack", AT + timedelta(minutes=7)) is None  # not running any more: left alone
    assert t.end_clock("missing", AT) is None
    t.arm_clock("resolution", AT, timedelta(hours=72))
    assert t.end_clock("resolution", AT, CLOCK_STOPPED).state == CLOCK_STOPPED  # type: ignore[union-attr]


def test_staff_view_has_the_contract_fields() -> None:
    t = ticket(assignee="agent1")
    t.add_message("in", "hello", AT, "customer")
    t.record(AT, "customer", "created")
    t.arm_clock("ack", AT, timedelta(minutes=30))
    view = t.to_json()
    for key in ("id", "channel", "status", "category", "priority", "urgent", "tier", "team", "assignee",
                "customer_id", "created_at", "messages", "timeline", "clocks", "linked_tickets", "work_order_id"):
        assert key in view
    assert {"direction", "text", "at"} <= set(view["messages"][0])
    assert {"at", "actor", "action"} <= set(view["timeline"][0])
    assert {"name", "due_at", "state"} <= set(view["clocks"][0])
    assert set(t.summary()) == set(view) - {"messages", "notes", "timeline"}


def test_public_view_hides_notes_staff_and_failed_messages() -> None:
    t = ticket(assignee="agent-secret-id")
    t.add_message("in", "hello", AT, "customer")
    t.add_message("out", "hi there", AT + timedelta(seconds=1), "agent-secret-id")
    failed = t.add_message("out", "lost", AT + timedelta(seconds=2), "agent-secret-id")
    failed.delivery = "failed"
    t.add_note("internal: refund fraud?", AT, "agent-secret-id")
    t.record(AT, "agent-secret-id", "note")
    view = t.public_view()
    text = repr(view)
    assert "agent-secret-id" not in text and "internal" not in text and "lost" not in text
    assert view["status"] == "new"
    assert [m["text"] for m in view["messages"]] == ["hello", "hi there"]
    assert set(view) == {"id", "status", "category", "created_at", "updated_at", "messages"}
