"""Replies from the staff API go out through the right sender (local fake APIs, moto SES); failures retry then DLQ."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.adapters.dynamodb.channel_store import DynamoAccessTokenStore
from chalicelib.channels.generic import sign
from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.ports import TicketFilter

EVENTS = Path(__file__).resolve().parents[1] / "events"


@dataclass
class FakeApis:
    """WeChat's, Twilio's and a platform's HTTP APIs on 127.0.0.1, recording every request."""

    base: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # path prefix -> HTTP status to answer

    def answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append({"method": method, "path": path, "body": body, "headers": headers})
        for prefix, status in self.failing.items():
            if path.startswith(prefix):
                return status, {"code": 20500, "message": "Internal Server Error"}
        if path.startswith("/cgi-bin/token"):
            return 200, {"access_token": "ACCESS-TOKEN-1", "expires_in": 7200}
        if path.startswith("/cgi-bin/message/custom/send"):
            return 200, {"errcode": 0, "errmsg": "ok", "msgid": 42}
        if path.endswith("/Messages.json"):
            return 201, {"sid": "SM0000000000000000000000000000abcd", "status": "queued"}
        if path.startswith("/callback/"):
            return 200, {"ok": True}
        return 404, {"error": "no such fake endpoint"}

    def to(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(prefix)]


@pytest.fixture
def fake_apis() -> Iterator[FakeApis]:
    apis = FakeApis()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, body = apis.answer(self.command, self.path, self.rfile.read(length), dict(self.headers))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    apis.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield apis
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack(moto_stack: Any, fake_apis: FakeApis) -> Any:
    """moto_stack whose outbound base URLs point at the fake APIs (set before the outbox is first built)."""
    moto_stack.container.settings = replace(
        moto_stack.container.settings,
        wechat_api_base=fake_apis.base,
        wechat_app_id="wxoutbox",
        wechat_app_secret="wechat-secret",
        twilio_api_base=fake_apis.base,
        twilio_account_sid="ACtest",
        twilio_auth_token="twilio-token",
        twilio_from_number="+14155550000",
        webhook_callbacks={"app": f"{fake_apis.base}/callback/app"},
        outbox_backoff_base=1,
    )
    return moto_stack


@pytest.fixture(autouse=True)
def _one_pump_per_test() -> Iterator[None]:
    _pumps.clear()
    yield
    _pumps.clear()


@pytest.fixture
def client(stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def headers() -> dict[str, str]:
    token = jwt.encode({"sub": "agent1", "cognito:groups": ["agent"], "exp": int(time.time()) + 600},
                       "test-jwt-secret-that-is-long-enough", algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def inbound(stack: Any, channel: str, source: str, customer: CustomerRef, key: str) -> str:
    message = InboundMessage(channel=channel, source=source, dedupe_key=key, customer=customer,
                             text="请帮我看看这个问题", received_at=datetime.now(UTC))
    return str(stack.container.intake.receive(message).ticket_id)


def reply(client: Client, ticket_id: str, text: str = "您好，已为您处理。") -> str:
    response = client.http.post(f"/api/tickets/{ticket_id}/replies", headers=headers(),
                                body=json.dumps({"text": text}).encode())
    assert response.status_code == 201, response.body
    return str(next(m["id"] for m in json.loads(response.body)["messages"] if m["direction"] == "out"))


def delivery(client: Client, ticket_id: str, message_id: str) -> dict[str, Any]:
    ticket = json.loads(client.http.get(f"/api/tickets/{ticket_id}", headers=headers()).body)
    return dict(next(m for m in ticket["messages"] if m["id"] == message_id))


_pumps: dict[int, Any] = {}


def pump_until(stack: Any, done: Callable[[], bool], timeout: float = 30) -> None:
    """Runs the test's one event pump (a new pump would replay the stream from its start) until `done()`."""
    pump = _pumps.setdefault(id(stack), stack.pump())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pump.poll_stream()
        pump.poll_queues()
        if done():
            return
        time.sleep(0.2)
    raise AssertionError("the pump did not get there in time")


def test_wechat_reply_goes_to_the_openid_with_a_shared_cached_token(
    client: Client, stack: Any, fake_apis: FakeApis
) -> None:
    ticket_id = inbound(stack, "WECHAT", "wechat", CustomerRef(external_id="oOpenID-1"), "wechat:1")
    first, second = reply(client, ticket_id), reply(client, ticket_id, "第二条回复")
    pump_until(stack, lambda: len(fake_apis.to("/cgi-bin/message/custom/send")) == 2)
    sends = fake_apis.to("/cgi-bin/message/custom/send")
    assert all("access_token=ACCESS-TOKEN-1" in r["path"] for r in sends)
    assert {json.loads(r["body"])["touser"] for r in sends} == {"oOpenID-1"}
    assert len(fake_apis.to("/cgi-bin/token")) == 1  # the token is cached, in DynamoDB
    token = DynamoAccessTokenStore("wechat").get("wxoutbox")
    assert token is not None and token[0] == "ACCESS-TOKEN-1"
    pump_until(stack, lambda: delivery(client, ticket_id, second)["delivery"] == "sent")
    assert delivery(client, ticket_id, first)["delivery"] == "sent"


def test_sms_reply_goes_to_the_customers_phone_through_twilio(
    client: Client, stack: Any, fake_apis: FakeApis
) -> None:
    ticket_id = inbound(stack, "SMS", "twilio", CustomerRef(external_id="+8613900139000", phone="+8613900139000"),
                        "twilio:SMx")
    message_id = reply(client, ticket_id, "短信回复")
    pump_until(stack, lambda: delivery(client, ticket_id, message_id)["delivery"] == "sent")
    [sent] = fake_apis.to("/2010-04-01/Accounts/ACtest/Messages.json")
    form = urllib.parse.parse_qs(sent["body"].decode())
    assert form["To"] == ["+8613900139000"] and form["Body"] == ["短信回复"] and form["From"] == ["+14155550000"]
    assert sent["headers"]["Authorization"].startswith("Basic ")


def test_generic_reply_goes_to_the_sources_signed_callback(client: Client, stack: Any, fake_apis: FakeApis) -> None:
    ticket_id = inbound(stack, "APP", "app", CustomerRef(external_id="u-77"), "app:evt-77")
    message_id = reply(client, ticket_id, "App 回复")
    pump_until(stack, lambda: delivery(client, ticket_id, message_id)["delivery"] == "sent")
    [sent] = fake_apis.to("/callback/app")
    body = json.loads(sent["body"])
    assert body["ticket_id"] == ticket_id and body["text"] == "App 回复"
    timestamp = sent["headers"]["X-Kefu-Timestamp"]
    assert sent["headers"]["X-Kefu-Signature"] == sign("test-secret-app", timestamp, sent["body"])


def test_email_reply_is_threaded_sent_by_ses_and_its_message_id_threads_the_answer(
    client: Client, stack: Any
) -> None:
    from moto.ses.models import ses_backends

    note = json.loads((EVENTS / "ses_sns_utf8.json").read_text(encoding="utf-8"))
    stack.container.email_intake.receive(note)
    [ticket] = stack.container.tickets.list_page(TicketFilter(), 10, None).items
    message_id = reply(client, ticket.id, "退货已受理")
    pump_until(stack, lambda: delivery(client, ticket.id, message_id)["delivery"] == "sent")
    [sent] = ses_backends["123456789012"]["us-east-1"].sent_messages
    mime = message_from_bytes(sent.raw_data.encode() if isinstance(sent.raw_data, str) else sent.raw_data)
    assert mime["In-Reply-To"] == "<CAF=utf8.sns@mail.example.com>"
    assert "support@kefu.example.com" in mime["From"]
    assert f"[{ticket.id}]" in mime["Subject"]
    ours = mime["Message-ID"].strip("<>")
    assert stack.container.channel_store.ticket_for_mail_refs([ours]) == ticket.id


def test_failing_send_is_retried_then_dead_lettered_and_marked_failed(
    client: Client, stack: Any, fake_apis: FakeApis
) -> None:
    fake_apis.failing["/2010-04-01/"] = 503
    ticket_id = inbound(stack, "SMS", "twilio", CustomerRef(external_id="+8613700137000", phone="+8613700137000"),
                        "twilio:SMfail")
    message_id = reply(client, ticket_id, "这条发不出去")
    pump_until(stack, lambda: delivery(client, ticket_id, message_id)["delivery"] == "retrying", timeout=15)
    assert "503" in delivery(client, ticket_id, message_id)["delivery_detail"]
    sqs = stack.aws.client("sqs")
    dlq = stack.stack.queues["kefu-outbox-dlq"]

    def dead_lettered() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"]) == 1

    pump_until(stack, dead_lettered, timeout=45)
    assert len(fake_apis.to("/2010-04-01/")) == 4  # maxReceiveCount attempts, then the DLQ
    final = delivery(client, ticket_id, message_id)
    assert final["delivery"] == "failed" and "gave up after retries" in final["delivery_detail"]
    [body] = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]]
    assert body["message_id"] == message_id


def test_permanent_failure_is_not_retried(client: Client, stack: Any, fake_apis: FakeApis) -> None:
    fake_apis.failing["/callback/"] = 400
    ticket_id = inbound(stack, "APP", "app", CustomerRef(external_id="u-400"), "app:evt-400")
    message_id = reply(client, ticket_id)
    pump_until(stack, lambda: delivery(client, ticket_id, message_id)["delivery"] == "failed")
    assert len(fake_apis.to("/callback/")) == 1
