"""One customer across channels: identity resolution, merge/un-merge, linked requests under one owner, links."""
from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jwt
import pytest
from chalice.test import Client

from chalicelib.channels.generic import sign
from local.demo import DEMO_STAFF

EVENTS = Path(__file__).resolve().parents[1] / "events"
WECHAT = pytest.mark.settings(wechat_token="tok", wechat_app_id="wxapp", wechat_encoding_aes_key="")
EMAIL = "li.lei@example.cn"


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    for member in DEMO_STAFF:
        moto_stack.container.staff.put(member)
    with Client(app.app) as test_client:
        yield test_client


def headers(role: str = "supervisor", sub: str = "supervisor1") -> dict[str, str]:
    token = jwt.encode({"sub": sub, "cognito:groups": [role], "exp": int(time.time()) + 600},
                       "test-jwt-secret-that-is-long-enough", algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def api(client: Client, method: str, path: str, body: Any = None, role: str = "supervisor") -> Any:
    data = json.dumps(body).encode() if body is not None else b"{}"
    call = client.http.post if method == "POST" else client.http.get
    response = call(path, headers=headers(role), body=data) if method == "POST" else call(path, headers=headers(role))
    return response


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.body
    return dict(json.loads(response.body))


def app_webhook(client: Client, moto_stack: Any, event_id: str, customer: dict[str, str], text: str) -> str:
    body = json.dumps({"event_id": event_id, "customer": customer, "message": {"text": text}}).encode()
    ts = str(int(moto_stack.clock.now().timestamp()))
    signed = {"X-Kefu-Timestamp": ts, "X-Kefu-Signature": sign("test-secret-app", ts, body)}
    response = client.http.post(
        "/webhooks/generic/app", body=body, headers={"Content-Type": "application/json", **signed}
    )
    return str(ok(response)["ticket_id"])


def wechat_text(client: Client, open_id: str, msg_id: str, text: str) -> None:
    ts, nonce = "1409304348", "n1"
    signature = hashlib.sha1("".join(sorted(["tok", ts, nonce])).encode()).hexdigest()
    xml = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{open_id}</FromUserName><CreateTime>1</CreateTime>"
           f"<MsgType>text</MsgType><Content>{text}</Content><MsgId>{msg_id}</MsgId></xml>")
    query = urllib.parse.urlencode({"signature": signature, "timestamp": ts, "nonce": nonce})
    response = client.http.post(f"/webhooks/wechat?{query}", headers={"Content-Type": "text/xml"}, body=xml.encode())
    assert response.status_code == 200, response.body


def email_from(moto_stack: Any, address: str, message_id: str, text: str) -> str:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = address, "support@kefu.example.com", "发票问题"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(text)
    note = json.loads((EVENTS / "ses_sns_utf8.json").read_text(encoding="utf-8"))
    note["content"] = msg.as_bytes().decode()
    return str(moto_stack.container.email_intake.receive(note)["ticket_id"])


def newest(client: Client, channel: str) -> dict[str, Any]:
    items = ok(api(client, "GET", "/api/tickets?limit=100"))["items"]
    return next(t for t in items if t["channel"] == channel)


def profile_state(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view[k] for k in ("identities", "merged_into", "merged_from", "phone", "email")}


@WECHAT
def test_wechat_then_email_from_the_same_profile_are_linked_under_one_owner_and_unmerge_restores(
    client: Client, moto_stack: Any
) -> None:
    # The app knows this person's UnionID and email; their earlier request is already resolved.
    app_ticket = app_webhook(client, moto_stack, "e1", {"external_id": "u1", "union_id": "UNION-1", "email": EMAIL},
                             "积分没到账")
    ok(api(client, "POST", f"/api/tickets/{app_ticket}/resolve"))
    app_customer = ok(api(client, "GET", f"/api/tickets/{app_ticket}"))["customer_id"]

    wechat_text(client, "oOpen-1", "9001", "我的订单还没发货")
    wechat_ticket = newest(client, "WECHAT")
    wechat_customer = wechat_ticket["customer_id"]
    assert wechat_customer != app_customer
    ok(api(client, "POST", f"/api/tickets/{wechat_ticket['id']}/assign", {"assignee": "agent1"}))
    before = {c: profile_state(ok(api(client, "GET", f"/api/customers/{c}"))) for c in (app_customer, wechat_customer)}

    # Staff learn the OpenID belongs to UnionID-1: one customer.
    merged = ok(api(client, "POST", f"/api/customers/{wechat_customer}/merge", {"into": app_customer}))
    assert merged["merged_into"] == app_customer
    target = ok(api(client, "GET", f"/api/customers/{app_customer}"))
    assert "wechat:oOpen-1" in target["identities"] and target["merged_from"] == [wechat_customer]
    assert {t["id"] for t in target["tickets"]} == {app_ticket, wechat_ticket["id"]}

    # The same person now emails from the profile's address: linked to the open WeChat ticket, same owner.
    email_ticket_id = email_from(moto_stack, EMAIL, "mail-1@example.cn", "另外发票也没收到")
    email_ticket = ok(api(client, "GET", f"/api/tickets/{email_ticket_id}"))
    assert email_ticket["customer_id"] == app_customer
    assert wechat_ticket["id"] in email_ticket["linked_tickets"]
    assert email_ticket["assignee"] == "agent1" == ok(api(client, "GET", f"/api/tickets/{wechat_ticket['id']}"))[
        "assignee"]

    # Un-merge: identities and ownership are exactly as before; every step is on the record.
    ok(api(client, "POST", f"/api/customers/{wechat_customer}/unmerge"))
    after = {c: profile_state(ok(api(client, "GET", f"/api/customers/{c}"))) for c in (app_customer, wechat_customer)}
    assert after == before
    assert moto_stack.container.customers.find_by_identities(["wechat:oOpen-1"]) == wechat_customer
    assert ok(api(client, "GET", f"/api/tickets/{wechat_ticket['id']}"))["customer_id"] == wechat_customer
    timeline = [e["action"] for e in ok(api(client, "GET", f"/api/tickets/{wechat_ticket['id']}"))["timeline"]]
    assert "customer_merged" in timeline and "customer_unmerged" in timeline
    audit = [a["action"] for a in ok(api(client, "GET", f"/api/customers/{wechat_customer}"))["audit"]]
    assert audit == ["merged", "unmerged"]
    merges = ok(api(client, "GET", f"/api/customers/{wechat_customer}"))["merges"]
    assert merges[0]["state"] == "undone" and merges[0]["identities_moved"] == ["wechat:oOpen-1"]


def test_a_new_identity_matching_an_existing_one_joins_that_customer(client: Client, moto_stack: Any) -> None:
    first = app_webhook(client, moto_stack, "a1", {"external_id": "u9", "phone": "138 0013 8000"}, "第一次")
    ok(api(client, "POST", f"/api/tickets/{first}/resolve"))
    second = app_webhook(client, moto_stack, "a2", {"external_id": "u9-new-device", "phone": "+8613800138000",
                                                    "email": "Zhang@Example.CN"}, "第二次")
    one = ok(api(client, "GET", f"/api/tickets/{first}"))["customer_id"]
    assert ok(api(client, "GET", f"/api/tickets/{second}"))["customer_id"] == one
    customer = ok(api(client, "GET", f"/api/customers/{one}"))
    assert {"phone:+8613800138000", "app:u9", "app:u9-new-device", "email:zhang@example.cn"} <= set(
        customer["identities"])
    assert customer["email"] == "zhang@example.cn"


def test_link_and_unlink_tickets_are_audited_on_both(client: Client, moto_stack: Any) -> None:
    a = app_webhook(client, moto_stack, "l1", {"external_id": "p1"}, "问题一")
    b = app_webhook(client, moto_stack, "l2", {"external_id": "p2"}, "问题二")
    linked = ok(api(client, "POST", f"/api/tickets/{a}/link", {"ticket_id": b}, role="agent"))
    assert b in linked["linked_tickets"]
    assert a in ok(api(client, "GET", f"/api/tickets/{b}"))["linked_tickets"]
    unlinked = ok(api(client, "POST", f"/api/tickets/{a}/unlink", {"ticket_id": b}, role="agent"))
    assert b not in unlinked["linked_tickets"]
    for ticket_id in (a, b):
        actions = [e["action"] for e in ok(api(client, "GET", f"/api/tickets/{ticket_id}"))["timeline"]]
        assert actions.count("linked") == 1 and actions.count("unlinked") == 1
    customer = ok(api(client, "GET", f"/api/tickets/{a}"))["customer_id"]
    audit = [x["action"] for x in ok(api(client, "GET", f"/api/customers/{customer}"))["audit"]]
    assert audit == ["ticket_linked", "ticket_unlinked"]


def test_customer_api_refuses_bad_requests(client: Client, moto_stack: Any) -> None:
    a = app_webhook(client, moto_stack, "r1", {"external_id": "q1"}, "问题")
    customer = ok(api(client, "GET", f"/api/tickets/{a}"))["customer_id"]
    assert api(client, "GET", "/api/customers/Cnope").status_code == 404
    assert api(client, "POST", f"/api/customers/{customer}/merge", {"into": customer}).status_code == 400
    assert api(client, "POST", f"/api/customers/{customer}/merge", {}).status_code == 400
    assert api(client, "POST", f"/api/customers/{customer}/merge", {"into": "Cnope"}).status_code == 404
    assert api(client, "POST", f"/api/customers/{customer}/unmerge").status_code == 409
    assert api(client, "POST", f"/api/customers/{customer}/merge", {"into": "x"}, role="agent").status_code == 403
    assert api(client, "POST", f"/api/tickets/{a}/link", {"ticket_id": "nope"}).status_code == 400
    assert api(client, "POST", f"/api/tickets/{a}/link", {"ticket_id": a}).status_code == 400
    assert api(client, "POST", f"/api/tickets/{a}/link", {"ticket_id": "APP-20990101-000001"}).status_code == 404
    assert client.http.get(f"/api/customers/{customer}").status_code == 401
