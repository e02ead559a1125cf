"""POST /webhooks/generic/{source} through app.py: ids, dedupe, signatures, stale timestamps, bad input."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.channels.generic import sign
from chalicelib.ports import TicketFilter
from chalicelib.services.intake import IntakeService

ID_SHAPE = re.compile(r"^APP-\d{8}-\d{6}$")


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def event(event_id: str = "evt-1", external_id: str = "u-1", text: str = "我的订单三天了还没有发货") -> dict[str, Any]:
    return {"event_id": event_id, "customer": {"external_id": external_id, "name": "张三"}, "message": {"text": text}}


def post(
    client: Client,
    stack: Any,
    payload: Any,
    *,
    source: str = "app",
    secret: str = "test-secret-app",
    skew: int = 0,
    raw: bytes | None = None,
    signature: str | None = None,
    content_type: str = "application/json",
) -> Any:
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    ts = str(int(stack.clock.now().timestamp()) + skew)
    headers = {
        "Content-Type": content_type,
        "X-Kefu-Timestamp": ts,
        "X-Kefu-Signature": signature if signature is not None else sign(secret, ts, body),
    }
    return client.http.post(f"/webhooks/generic/{source}", headers=headers, body=body)


def tickets(stack: Any) -> list[Any]:
    return stack.container.tickets.list_page(TicketFilter(), 100, None).items


def item_count(stack: Any) -> int:
    """Every item in the table (a Scan, acceptable in a test to prove nothing was stored)."""
    answer = stack.aws.client("dynamodb").scan(TableName=stack.container.settings.table_name, Select="COUNT")
    return int(answer["Count"])


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    error = json.loads(response.body)["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


# --- the happy path and ids -------------------------------------------------------------------------------------
def test_signed_message_creates_a_ticket(client: Client, moto_stack: Any) -> None:
    response = post(client, moto_stack, event())
    assert response.status_code == 200, response.body
    answer = json.loads(response.body)
    assert ID_SHAPE.match(answer["ticket_id"])
    assert answer["duplicate"] is False and answer["message_id"]
    [ticket] = tickets(moto_stack)
    assert ticket.id == answer["ticket_id"]
    full = moto_stack.container.tickets.get(ticket.id)
    assert [(m.direction, m.text) for m in full.messages] == [("in", "我的订单三天了还没有发货")]
    assert full.messages[0].id == answer["message_id"]
    assert [e.action for e in full.timeline] == ["created"]
    assert full.channel == "APP" and full.source == "app" and full.status == "new"


def test_charset_in_content_type_is_accepted(client: Client, moto_stack: Any) -> None:
    response = post(client, moto_stack, event(), content_type="application/json; charset=utf-8")
    assert response.status_code == 200, response.body


def test_the_date_is_in_the_business_time_zone(client: Client, moto_stack: Any) -> None:
    moto_stack.clock.current = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)  # 01:30 on the 24th in Shanghai
    answer = json.loads(post(client, moto_stack, event()).body)
    assert answer["ticket_id"] == "APP-20261124-000001"


@pytest.mark.settings(timezone="UTC")
def test_the_time_zone_is_configurable(client: Client, moto_stack: Any) -> None:
    moto_stack.clock.current = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    assert json.loads(post(client, moto_stack, event()).body)["ticket_id"] == "APP-20261123-000001"


def test_serials_count_per_channel_per_day(client: Client, moto_stack: Any) -> None:
    ids = [json.loads(post(client, moto_stack, event(f"a{i}", f"u{i}")).body)["ticket_id"] for i in range(3)]
    assert ids == ["APP-20261123-000001", "APP-20261123-000002", "APP-20261123-000003"]
    store = json.loads(post(client, moto_stack, event("s1", "u9"), source="store", secret="test-secret-store").body)
    assert store["ticket_id"] == "STORE-20261123-000001"  # its own counter
    moto_stack.clock.advance(days=1)
    next_day = json.loads(post(client, moto_stack, event("b1", "u10")).body)
    assert next_day["ticket_id"] == "APP-20261124-000001"  # a new day starts from 1


def test_a_serial_taken_by_a_failed_write_is_never_reused(client: Client, moto_stack: Any) -> None:
    container = moto_stack.container

    class FailingOnce:
        """The real repository, whose first create fails after the serial was taken (a crash mid-request)."""

        def __init__(self, real: Any) -> None:
            self.real, self.failed = real, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def create(self, ticket: Any, **kw: Any) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("connection reset while writing")
            self.real.create(ticket, **kw)

    container.__dict__["intake"] = IntakeService(
        FailingOnce(container.tickets), container.customers, container.clock, container.settings.zone  # type: ignore[arg-type]
    )
    failed = post(client, moto_stack, event("e-fail"))
    assert_error(failed, 500)
    assert tickets(moto_stack) == []
    retried = post(client, moto_stack, event("e-fail"))  # the platform retries the same delivery
    assert json.loads(retried.body)["ticket_id"] == "APP-20261123-000002"
    another = post(client, moto_stack, event("e-next", "u-2"))
    assert json.loads(another.body)["ticket_id"] == "APP-20261123-000003"
    assert [t.id for t in tickets(moto_stack)] == ["APP-20261123-000003", "APP-20261123-000002"]


def test_a_serial_whose_id_is_taken_is_skipped(client: Client, moto_stack: Any) -> None:
    """The counter says 1 but that id exists (e.g. restored data): the write fails, intake takes serial 2."""
    from chalicelib.domain.ticket import Ticket, iso

    taken = Ticket(id="APP-20261123-000001", channel="APP", source="app", customer_id="C-old",
                   created_at=iso(moto_stack.clock.now()))
    moto_stack.container.tickets.create(taken)
    answer = json.loads(post(client, moto_stack, event()).body)
    assert answer["ticket_id"] == "APP-20261123-000002"
    assert moto_stack.container.tickets.get("APP-20261123-000001").customer_id == "C-old"  # untouched


# --- dedupe ---------------------------------------------------------------------------------------------------
def test_a_replay_answers_the_same_ticket_as_a_duplicate(client: Client, moto_stack: Any) -> None:
    first = json.loads(post(client, moto_stack, event()).body)
    stored = item_count(moto_stack)
    moto_stack.clock.advance(seconds=30)
    again = post(client, moto_stack, event())
    assert again.status_code == 200
    replay = json.loads(again.body)
    assert replay["ticket_id"] == first["ticket_id"] and replay["message_id"] == first["message_id"]
    assert replay["duplicate"] is True
    assert len(tickets(moto_stack)) == 1
    assert len(moto_stack.container.tickets.get(first["ticket_id"]).messages) == 1
    assert item_count(moto_stack) == stored  # nothing new at all


def test_a_replay_with_a_changed_body_is_still_a_duplicate(client: Client, moto_stack: Any) -> None:
    first = json.loads(post(client, moto_stack, event(text="first")).body)
    replay = json.loads(post(client, moto_stack, event(text="edited on retry")).body)
    assert replay == {**replay, "ticket_id": first["ticket_id"], "duplicate": True}
    assert [m.text for m in moto_stack.container.tickets.get(first["ticket_id"]).messages] == ["first"]


def test_the_same_event_id_from_another_source_is_another_delivery(client: Client, moto_stack: Any) -> None:
    post(client, moto_stack, event("same"))
    other = json.loads(post(client, moto_stack, event("same"), source="store", secret="test-secret-store").body)
    assert other["duplicate"] is False and other["ticket_id"].startswith("STORE-")


# --- refused requests store nothing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "wrong-secret"}, "bad_signature"),
        ({"secret": "test-secret-store"}, "bad_signature"),  # another source's secret
        ({"signature": ""}, "bad_signature"),
        ({"signature": "v1=" + "0" * 64}, "bad_signature"),
        ({"skew": -600}, "stale_timestamp"),  # 10 minutes old
        ({"skew": 600}, "stale_timestamp"),  # 10 minutes in the future
        ({"source": "nosuch"}, "unknown_source"),
        ({"source": "APP"}, "unknown_source"),
    ],
)
def test_refused_deliveries_answer_401_and_store_nothing(
    client: Client, moto_stack: Any, kwargs: dict[str, Any], code: str
) -> None:
    assert item_count(moto_stack) == 0
    response = post(client, moto_stack, event(), **kwargs)
    assert assert_error(response, 401)["code"] == code
    assert item_count(moto_stack) == 0  # no ticket, dedupe, counter or customer item


def test_a_refused_delivery_does_not_block_the_real_one(client: Client, moto_stack: Any) -> None:
    post(client, moto_stack, event(), secret="forged")
    answer = json.loads(post(client, moto_stack, event()).body)
    assert answer["duplicate"] is False and answer["ticket_id"] == "APP-20261123-000001"


def test_the_timestamp_tolerance_edge(client: Client, moto_stack: Any) -> None:
    assert post(client, moto_stack, event("edge-1"), skew=-300).status_code == 200
    assert post(client, moto_stack, event("edge-2", "u-2"), skew=299).status_code == 200
    assert post(client, moto_stack, event("edge-3", "u-3"), skew=-301).status_code == 401


def test_malformed_timestamp_header_is_401(client: Client, moto_stack: Any) -> None:
    body = json.dumps(event()).encode()
    for ts in ("", "yesterday", "²"):
        response = client.http.post(
            "/webhooks/generic/app",
            headers={"Content-Type": "application/json", "X-Kefu-Timestamp": ts,
                     "X-Kefu-Signature": sign("test-secret-app", ts, body)},
            body=body,
        )
        assert_error(response, 401)
    assert item_count(moto_stack) == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"event_id": "x", "customer": ', b"not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"],
)
def test_malformed_json_is_400_with_a_json_error(client: Client, moto_stack: Any, raw: bytes) -> None:
    response = post(client, moto_stack, None, raw=raw)
    assert_error(response, 400)
    assert item_count(moto_stack) == 0


def test_malformed_json_code(client: Client, moto_stack: Any) -> None:
    assert assert_error(post(client, moto_stack, None, raw=b"{oops"), 400)["code"] == "malformed_json"


@pytest.mark.parametrize(
    "payload",
    [
        {"customer": {"external_id": "u-1"}, "message": {"text": "hi"}},  # no event_id
        {"event_id": "", "customer": {"external_id": "u-1"}, "message": {"text": "hi"}},
        {"event_id": "e", "message": {"text": "hi"}},  # no customer
        {"event_id": "e", "customer": {"name": "no identity"}, "message": {"text": "hi"}},
        {"event_id": "e", "customer": {"external_id": "u-1"}},  # no message
        {"event_id": "e", "customer": {"external_id": "u-1"}, "message": {"text": ""}},
        {"event_id": "e", "customer": {"external_id": "u-1"}, "message": {"text": "x" * 20_001}},
        {"event_id": "e", "customer": {"external_id": "u-1"}, "message": {"text": "hi"}, "urgent": "yes"},
        {"event_id": "e", "customer": {"external_id": "u-1"},
         "message": {"text": "hi", "attachments": [{"url": "ftp://x/y"}]}},
    ],
)
def test_missing_or_invalid_fields_are_400(client: Client, moto_stack: Any, payload: dict[str, Any]) -> None:
    assert_error(post(client, moto_stack, payload), 400)
    assert tickets(moto_stack) == []
    assert moto_stack.container.tickets.get_dedupe("app:e") is None


def test_the_answer_links_to_the_public_status_page(client: Client, moto_stack: Any) -> None:
    answer = json.loads(post(client, moto_stack, event()).body)
    url = answer["status_url"]
    assert url.startswith(f"http://127.0.0.1:8000/public/tickets/{answer['ticket_id']}?token=")
    public = client.http.get(url.removeprefix("http://127.0.0.1:8000"))
    assert public.status_code == 200 and json.loads(public.body)["id"] == answer["ticket_id"]
