"""The archive job: tickets resolved 30 days ago and still resolved, copied whole as JSON to the archive bucket
under tickets/{YYYY}/{MM}/{DD}/ (the business day of the resolution), once; against moto's S3 and DynamoDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.ticket import iso
from chalicelib.ports import StaffRecord
from chalicelib.services.resolutions import Resolution
from chalicelib.services.tickets import Actor

AGENT = Actor("agent1", ("agent",))
SUPERVISOR = Actor("supervisor1", ("supervisor",))
BUCKET = "kefu-archive"
NOTHING = {"days": 0, "archived": 0, "skipped_reopened": 0, "missing": 0}


def counts(days: int = 0, archived: int = 0, skipped_reopened: int = 0, missing: int = 0) -> dict[str, int]:
    return {"days": days, "archived": archived, "skipped_reopened": skipped_reopened, "missing": missing}


def open_ticket(stack: Any, n: int) -> str:
    container = stack.container
    for member in (
        StaffRecord("agent1", "A", ["agent"], team="agents", online=True),
        StaffRecord("supervisor1", "S", ["supervisor"], team="agents", online=True),
    ):
        container.staff.put(member)
    result = container.intake.receive(
        InboundMessage(
            channel="APP",
            source="app",
            dedupe_key=f"app:a{n}",
            customer=CustomerRef(external_id=f"u{n}"),
            text=f"我的订单还没有发货（{n}）",
            received_at=stack.clock.now(),
        )
    )
    tid = str(result.ticket_id)
    stack.clock.advance(minutes=5)
    container.actions.assign(tid, SUPERVISOR, "agent1")
    container.actions.reply(tid, AGENT, "您好，今天发货")
    container.actions.note(tid, AGENT, "已联系仓库")
    return tid


def resolved_ticket(stack: Any, n: int) -> str:
    tid = open_ticket(stack, n)
    stack.container.actions.resolve(tid, AGENT)
    return tid


def run_archive() -> dict[str, int]:
    """The scheduled handler, called as EventBridge calls it."""
    import app
    from local.pump import LocalLambdaContext, schedule_event

    return dict(app.archive(schedule_event("archive", "us-east-1"), LocalLambdaContext("archive", "t")))


def archived(stack: Any, bucket: str = BUCKET) -> dict[str, dict[str, Any]]:
    """Every archived object, key → the JSON document (read back with boto3 directly)."""
    s3 = stack.aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")) for key in keys}


def test_a_resolved_ticket_is_archived_whole_thirty_days_on_once(moto_stack: Any) -> None:
    tid = resolved_ticket(moto_stack, 1)  # 2026-11-23 10:00 in Shanghai
    pump = moto_stack.pump()
    pump.poll_stream()  # the `resolve` entry files the ticket under RESOLVED#20261123
    assert [r.ticket_id for r in moto_stack.container.resolution_store.of_day("20261123")] == [tid]

    moto_stack.clock.advance(days=29)  # window 20261116 … 20261122: the resolution's day is not in it yet
    assert run_archive() == counts(days=7)
    assert archived(moto_stack) == {}
    moto_stack.clock.advance(days=1)  # 2026-12-23: window 20261117 … 20261123, only 20261123 not done
    assert run_archive() == counts(days=1, archived=1)

    key = f"tickets/2026/11/23/{tid}.json"
    documents = archived(moto_stack)
    assert list(documents) == [key]
    document = documents[key]
    ticket = moto_stack.container.tickets.get(tid)
    [resolve] = [e for e in ticket.timeline if e.action == "resolve"]
    assert document == {
        **ticket.to_json(),
        "archived_at": iso(moto_stack.clock.now()),
        "resolution": resolve.key,
        "resolution_day": "20261123",
    }
    assert document["id"] == tid and document["status"] == "resolved"
    assert [(m["direction"], m["text"]) for m in document["messages"]] == [
        ("in", "我的订单还没有发货（1）"),
        ("out", "您好，今天发货"),
    ]
    actions = [e["action"] for e in document["timeline"]]
    assert actions[0] == "created" and {"assign", "reply", "note", "resolve"} <= set(actions)
    assert [n["text"] for n in document["notes"]] == ["已联系仓库"]
    assert document["clocks"] and all(c["state"] != "running" for c in document["clocks"])
    assert document["archived_at"] == "2026-12-23T02:05:00.000000Z"  # the injected clock

    s3 = moto_stack.aws.client("s3")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "application/json; charset=utf-8"
    raw = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert "我的订单还没有发货".encode() in raw  # UTF-8, not \u escapes

    # A rerun, the same day or the next, archives nothing new and writes nothing.
    assert run_archive() == NOTHING
    moto_stack.clock.advance(days=1)
    assert run_archive() == counts(days=1)  # 20261124 is new in the window, with nothing resolved on it
    versions = s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert [v["Key"] for v in versions] == [key]
    # The archive is a copy: the ticket is still in the table.
    assert moto_stack.container.tickets.get(tid).status == "resolved"


def test_a_ticket_reopened_before_the_run_is_skipped_and_archived_after_its_next_resolution(moto_stack: Any) -> None:
    kept = resolved_ticket(moto_stack, 1)
    still_open = resolved_ticket(moto_stack, 2)
    again = resolved_ticket(moto_stack, 3)
    moto_stack.clock.advance(hours=1)
    moto_stack.container.actions.reopen(still_open, AGENT)  # reopened, and still open at the run
    moto_stack.container.actions.reopen(again, AGENT)
    moto_stack.clock.advance(days=2)  # 2026-11-25: resolved again, filed under its own day
    moto_stack.container.actions.resolve(again, AGENT)
    moto_stack.pump().poll_stream()
    resolved_on = {
        d: sorted(r.ticket_id for r in moto_stack.container.resolution_store.of_day(d))
        for d in ("20261123", "20261125")
    }
    assert resolved_on == {"20261123": sorted([kept, still_open, again]), "20261125": [again]}

    moto_stack.clock.current = datetime(2026, 12, 23, 2, 0, tzinfo=UTC)  # 20261123 is 30 days back
    assert run_archive() == counts(days=7, archived=1, skipped_reopened=2)
    assert list(archived(moto_stack)) == [f"tickets/2026/11/23/{kept}.json"]

    moto_stack.clock.advance(days=2)  # 20261125 comes into the window
    assert run_archive() == counts(days=2, archived=1)
    documents = archived(moto_stack)
    assert sorted(documents) == sorted([f"tickets/2026/11/23/{kept}.json", f"tickets/2026/11/25/{again}.json"])
    later = documents[f"tickets/2026/11/25/{again}.json"]
    assert [e["action"] for e in later["timeline"]].count("resolve") == 2  # the whole history, both resolutions
    assert later["resolution"].startswith("2026-11-25T")
    assert moto_stack.container.tickets.get(still_open).status == "in_progress"  # never archived while open


def test_tickets_resolved_on_two_business_days_land_under_their_own_days(moto_stack: Any) -> None:
    first = resolved_ticket(moto_stack, 1)  # 2026-11-23T02:00Z = 20261123 10:00 in Shanghai
    moto_stack.clock.current = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # still the 23rd in UTC, the 24th 00:30 CST
    second = resolved_ticket(moto_stack, 2)
    moto_stack.pump().poll_stream()
    # A resolution recorded for a ticket that is gone is counted, not archived.
    gone = "APP-20261124-999999"
    moto_stack.container.resolution_store.record(
        "20261124", Resolution(gone, "2026-11-23T16:31:00.000000Z#0003", "2026-11-23T16:31:00.000000Z")
    )

    moto_stack.clock.current = datetime(2026, 12, 24, 2, 0, tzinfo=UTC)  # window 20261118 … 20261124
    assert run_archive() == counts(days=7, archived=2, missing=1)
    documents = archived(moto_stack)
    assert sorted(documents) == [f"tickets/2026/11/23/{first}.json", f"tickets/2026/11/24/{second}.json"]
    assert documents[f"tickets/2026/11/24/{second}.json"]["resolution_day"] == "20261124"
    assert documents[f"tickets/2026/11/23/{first}.json"]["messages"][0]["text"] == "我的订单还没有发货（1）"
    assert run_archive() == NOTHING


def test_a_day_outside_the_window_is_not_touched_and_a_missed_day_is_caught_up(moto_stack: Any) -> None:
    old = resolved_ticket(moto_stack, 1)  # 20261123
    moto_stack.clock.advance(days=1)
    recent = resolved_ticket(moto_stack, 2)  # 20261124
    moto_stack.pump().poll_stream()
    store = moto_stack.container.resolution_store
    s3 = moto_stack.aws.client("s3")

    # 2026-12-30: the window is 20261124 … 20261130; 20261123 is 37 days back, outside it.
    moto_stack.clock.current = datetime(2026, 12, 30, 2, 0, tzinfo=UTC)
    s3.delete_bucket(Bucket=BUCKET)  # a failed run (the bucket unreachable): nothing is marked done
    with pytest.raises(Exception, match="NoSuchBucket"):
        run_archive()
    assert not store.day_done("archive", "20261124")
    s3.create_bucket(Bucket=BUCKET)

    moto_stack.clock.advance(hours=10)  # the next run, 20:00 the same day in Shanghai: catches up
    assert run_archive() == counts(days=7, archived=1)
    assert list(archived(moto_stack)) == [f"tickets/2026/11/24/{recent}.json"]
    assert not store.day_done("archive", "20261123")  # outside the window: not looked at
    assert store.day_done("archive", "20261124") and store.day_done("archive", "20261130")
    assert not store.day_done("archive", "20261201")
    assert [r.ticket_id for r in store.of_day("20261123")] == [old]  # still indexed, never archived


@pytest.mark.settings(archive_bucket="kefu-archive-locked")
def test_objects_written_to_an_object_lock_bucket_get_its_default_retention(moto_stack: Any) -> None:
    s3 = moto_stack.aws.client("s3")
    s3.create_bucket(Bucket="kefu-archive-locked", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="kefu-archive-locked",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1096}},
        },
    )
    tid = resolved_ticket(moto_stack, 1)
    moto_stack.pump().poll_stream()
    moto_stack.clock.advance(days=30)
    assert run_archive() == counts(days=7, archived=1)
    key = f"tickets/2026/11/23/{tid}.json"
    head = s3.head_object(Bucket="kefu-archive-locked", Key=key, ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].year >= 2029
    assert head.get("ChecksumSHA256")
    assert archived(moto_stack, "kefu-archive-locked")[key]["id"] == tid
    assert archived(moto_stack) == {}
