"""The WeChat webhook through app.py: URL verification, plain and AES pushes, refusals store nothing, dedupe, events."""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.channels.wechat import WeChatCrypto

TOKEN, AES_KEY, APP_ID = "pamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
WECHAT = pytest.mark.settings(wechat_token=TOKEN, wechat_encoding_aes_key=AES_KEY, wechat_app_id=APP_ID)
TS, NONCE = "1409304348", "xxxxxx"


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def text_xml(open_id: str = "oUser1", msg_id: str = "1234567890123456", content: str = "我的快递丢了") -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, open_id: str = "oUser1", create_time: str = "1348831999") -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


def plain_signature(token: str = TOKEN) -> str:
    return hashlib.sha1("".join(sorted([token, TS, NONCE])).encode()).hexdigest()


def post_plain(client: Client, xml: str, *, signature: str | None = None, content_type: str = "text/xml") -> Any:
    query = urllib.parse.urlencode({"signature": signature or plain_signature(), "timestamp": TS, "nonce": NONCE})
    return client.http.post(f"/webhooks/wechat?{query}", headers={"Content-Type": content_type}, body=xml.encode())


def aes_body(encrypted: str) -> bytes:
    return f"<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


def post_aes(client: Client, encrypted: str, *, msg_signature: str | None = None) -> Any:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    query = urllib.parse.urlencode(
        {
            "signature": plain_signature(),
            "timestamp": TS,
            "nonce": NONCE,
            "encrypt_type": "aes",
            "msg_signature": msg_signature or crypto.msg_signature(TS, NONCE, encrypted),
        }
    )
    return client.http.post(
        f"/webhooks/wechat?{query}", headers={"Content-Type": "application/xml"}, body=aes_body(encrypted)
    )


def staff_headers(role: str = "supervisor", sub: str = "supervisor1") -> dict[str, str]:
    import time

    import jwt

    token = jwt.encode(
        {"sub": sub, "cognito:groups": [role], "exp": int(time.time()) + 600},
        "test-jwt-secret-that-is-long-enough",
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}"}


def ticket_list(client: Client) -> list[dict[str, Any]]:
    response = client.http.get("/api/tickets?limit=100", headers=staff_headers())
    assert response.status_code == 200, response.body
    return list(json.loads(response.body)["items"])


def assert_refused(response: Any) -> None:
    assert response.status_code in (401, 403), response.body
    assert "error" in json.loads(response.body)


# --- URL verification ----------------------------------------------------------------------------------------
@WECHAT
def test_url_verification_echoes_echostr_as_plain_text(client: Client) -> None:
    query = urllib.parse.urlencode({"signature": plain_signature(), "timestamp": TS, "nonce": NONCE, "echostr": "e1"})
    response = client.http.get(f"/webhooks/wechat?{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.body == b"e1"


@WECHAT
def test_url_verification_with_a_bad_signature_is_refused(client: Client) -> None:
    query = urllib.parse.urlencode({"signature": "0" * 40, "timestamp": TS, "nonce": NONCE, "echostr": "e1"})
    assert_refused(client.http.get(f"/webhooks/wechat?{query}"))


# --- pushes ----------------------------------------------------------------------------------------------------
@WECHAT
def test_plain_push_creates_a_wechat_ticket_and_answers_success(client: Client) -> None:
    response = post_plain(client, text_xml())
    assert response.status_code == 200, response.body
    assert response.body == b"success"
    assert response.headers["Content-Type"].startswith("text/plain")
    [ticket] = ticket_list(client)
    assert ticket["channel"] == "WECHAT" and ticket["id"].startswith("WECHAT-")


@WECHAT
def test_aes_push_creates_a_ticket(client: Client) -> None:
    encrypted = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt(text_xml(msg_id="555"))
    response = post_aes(client, encrypted)
    assert response.status_code == 200, response.body
    assert response.body == b"success"
    assert len(ticket_list(client)) == 1


@WECHAT
def test_same_message_delivered_three_times_makes_one_message_on_one_ticket(client: Client) -> None:
    for _ in range(3):
        assert post_plain(client, text_xml(msg_id="777")).status_code == 200
    [summary] = ticket_list(client)
    ticket = json.loads(client.http.get(f"/api/tickets/{summary['id']}", headers=staff_headers()).body)
    assert [m["text"] for m in ticket["messages"]] == ["我的快递丢了"]


@WECHAT
def test_aes_retries_are_deduplicated_too(client: Client) -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    for _ in range(3):  # WeChat re-encrypts each retry with fresh random bytes
        assert post_aes(client, crypto.encrypt(text_xml(msg_id="888"))).status_code == 200
    [summary] = ticket_list(client)
    ticket = json.loads(client.http.get(f"/api/tickets/{summary['id']}", headers=staff_headers()).body)
    assert len(ticket["messages"]) == 1


# --- refusals store nothing ------------------------------------------------------------------------------------
@WECHAT
def test_tampered_msg_signature_is_refused_and_stores_nothing(client: Client) -> None:
    encrypted = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt(text_xml())
    assert_refused(post_aes(client, encrypted, msg_signature="0" * 40))
    assert ticket_list(client) == []


@WECHAT
def test_wrong_appid_inside_the_ciphertext_is_refused_and_stores_nothing(client: Client) -> None:
    encrypted = WeChatCrypto(TOKEN, AES_KEY, "wx_someone_else").encrypt(text_xml())  # signed with our token
    assert_refused(post_aes(client, encrypted))
    assert ticket_list(client) == []


@WECHAT
def test_bad_padding_is_refused_and_stores_nothing(client: Client) -> None:
    key = base64.b64decode(AES_KEY + "=")
    body = text_xml().encode()
    plain = b"r" * 16 + struct.pack(">I", len(body)) + body + APP_ID.encode()
    plain += bytes([0]) * (32 - len(plain) % 32)  # zero padding: not PKCS#7
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypted = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
    assert_refused(post_aes(client, encrypted))
    assert ticket_list(client) == []


@WECHAT
def test_forged_plain_signature_is_refused_and_stores_nothing(client: Client) -> None:
    assert_refused(post_plain(client, text_xml(), signature=plain_signature("not-our-token")))
    assert ticket_list(client) == []


@WECHAT
def test_malformed_xml_is_a_400(client: Client) -> None:
    response = post_plain(client, "<xml><FromUserName>")
    assert response.status_code == 400, response.body
    assert ticket_list(client) == []


# --- events ----------------------------------------------------------------------------------------------------
@WECHAT
def test_subscribe_creates_no_ticket_and_unsubscribe_is_recorded_on_the_customer(
    client: Client, moto_stack: Any
) -> None:
    assert post_plain(client, event_xml("subscribe", create_time="100")).body == b"success"
    assert ticket_list(client) == []
    assert post_plain(client, text_xml(open_id="oUser1")).status_code == 200
    [ticket] = ticket_list(client)
    moto_stack.clock.advance(minutes=5)
    for _ in range(2):  # a retried event is recorded once
        assert post_plain(client, event_xml("unsubscribe", create_time="200")).body == b"success"
    assert len(ticket_list(client)) == 1
    customer = json.loads(client.http.get(f"/api/customers/{ticket['customer_id']}", headers=staff_headers()).body)
    assert customer["attributes"]["wechat_subscribed"] is False
    actions = [entry["action"] for entry in customer["audit"]]
    assert actions == ["wechat_subscribed", "wechat_unsubscribed"]
    assert "wechat:oUser1" in customer["identities"]
