"""Inbound email end to end: SNS topic → local pump → inbound_email → intake; S3 attachments, dedupe, threading."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.ports import TicketFilter

EVENTS = Path(__file__).resolve().parents[1] / "events"
CUSTOMER = "li.lei@example.cn"


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def headers(role: str = "supervisor", sub: str = "supervisor1") -> dict[str, str]:
    token = jwt.encode({"sub": sub, "cognito:groups": [role], "exp": int(time.time()) + 600},
                       "test-jwt-secret-that-is-long-enough", algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def mail(message_id: str, *, subject: str = "退货申请", text: str = "我想退货，订单 8812。", sender: str = CUSTOMER,
         in_reply_to: str = "", attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"李雷 <{sender}>"
    msg["To"] = "support@kefu.example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="image", subtype="png", filename="发票.png")
    return msg.as_bytes()


def notification(raw: bytes | None, *, s3_key: str = "") -> dict[str, Any]:
    base: dict[str, Any] = json.loads((EVENTS / "ses_sns_utf8.json").read_text(encoding="utf-8"))
    if s3_key:
        base.pop("content", None)
        base["receipt"]["action"] = {"type": "S3", "bucketName": "kefu-inbound-mail", "objectKey": s3_key}
    else:
        assert raw is not None
        base["content"] = raw.decode("utf-8")
    return base


def deliver(stack: Any, note: dict[str, Any]) -> None:
    """Publishes like SES does, then lets the local pump feed the SNS event to app.py's inbound_email."""
    stack.aws.client("sns").publish(TopicArn=stack.stack.topics["kefu-inbound-email"], Message=json.dumps(note))
    pump = stack.pump()
    assert pump.poll_queues() >= 1


def email_tickets(stack: Any) -> list[Any]:
    items = stack.container.tickets.list_page(TicketFilter(), 100, None).items
    return sorted((t for t in items if t.channel == "EMAIL"), key=lambda t: t.id)


def test_published_mail_reaches_the_handler_and_opens_an_email_ticket(moto_stack: Any) -> None:
    deliver(moto_stack, notification(mail("first@example.cn")))
    [ticket] = email_tickets(moto_stack)
    full = moto_stack.container.tickets.get(ticket.id)
    assert ticket.subject == "退货申请"
    assert [m.text for m in full.messages] == ["我想退货，订单 8812。"]


def test_the_same_email_delivered_twice_is_one_message(moto_stack: Any) -> None:
    for _ in range(2):
        deliver(moto_stack, notification(mail("twice@example.cn")))
    [ticket] = email_tickets(moto_stack)
    assert len(moto_stack.container.tickets.get(ticket.id).messages) == 1


def test_attachments_are_stored_in_s3_and_linked(moto_stack: Any) -> None:
    deliver(moto_stack, notification(mail("att@example.cn", attachment=b"\x89PNG fake")))
    [ticket] = email_tickets(moto_stack)
    [message] = moto_stack.container.tickets.get(ticket.id).messages
    [attachment] = message.attachments
    assert attachment["type"] == "image" and attachment["name"] == "发票.png"
    bucket, _, key = attachment["url"].removeprefix("s3://").partition("/")
    assert bucket == "kefu-attachments"
    body = moto_stack.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"\x89PNG fake"


def test_s3_action_mail_is_read_from_the_bucket(moto_stack: Any) -> None:
    s3 = moto_stack.aws.client("s3")
    s3.create_bucket(Bucket="kefu-inbound-mail")
    s3.put_object(Bucket="kefu-inbound-mail", Key="inbound/abc", Body=mail("s3@example.cn", text="S3 里的邮件"))
    deliver(moto_stack, notification(None, s3_key="inbound/abc"))
    [ticket] = email_tickets(moto_stack)
    assert moto_stack.container.tickets.get(ticket.id).messages[0].text == "S3 里的邮件"


def test_auto_reply_opens_no_ticket(moto_stack: Any) -> None:
    deliver(moto_stack, notification((EVENTS / "email_auto_reply.eml").read_bytes()))
    assert email_tickets(moto_stack) == []


def test_reply_threads_by_message_id_not_by_subject(client: Client, moto_stack: Any) -> None:
    deliver(moto_stack, notification(mail("root@example.cn")))
    [first] = email_tickets(moto_stack)
    assert client.http.post(f"/api/tickets/{first.id}/resolve", headers=headers(), body=b"{}").status_code == 200

    # Same subject with the ticket tag, no In-Reply-To/References: a new ticket, the resolved one stays resolved.
    deliver(moto_stack, notification(mail("other@example.cn", subject=f"Re: [{first.id}] 退货申请", text="另一个问题")))
    assert len(email_tickets(moto_stack)) == 2
    assert moto_stack.container.tickets.get(first.id).status == "resolved"

    # A real reply to the first mail reopens the first ticket.
    moto_stack.clock.advance(minutes=1)
    deliver(moto_stack, notification(mail("reply@example.cn", subject="Re: 退货申请", text="还没收到退款",
                                          in_reply_to="root@example.cn")))
    reopened = moto_stack.container.tickets.get(first.id)
    assert reopened.status == "in_progress"
    assert [m.text for m in reopened.messages][-1] == "还没收到退款"
    assert any(e.action == "customer_reply" for e in reopened.timeline)


def test_reply_to_a_closed_ticket_opens_a_new_linked_ticket(client: Client, moto_stack: Any) -> None:
    deliver(moto_stack, notification(mail("closed-root@example.cn")))
    [first] = email_tickets(moto_stack)
    client.http.post(f"/api/tickets/{first.id}/resolve", headers=headers(), body=b"{}")
    closing = client.http.post(f"/api/tickets/{first.id}/status", headers=headers(), body=b'{"status": "closed"}')
    assert closing.status_code == 200, closing.body
    moto_stack.clock.advance(minutes=1)
    deliver(moto_stack, notification(mail("late@example.cn", in_reply_to="closed-root@example.cn", text="又坏了")))
    tickets = email_tickets(moto_stack)
    assert len(tickets) == 2
    new = next(t for t in tickets if t.id != first.id)
    assert first.id in new.linked_tickets
    assert moto_stack.container.tickets.get(first.id).status == "closed"
