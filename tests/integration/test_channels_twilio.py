"""Twilio SMS and the voice hotline through app.py: signatures over the public URL, TwiML, dedupe, recordings."""
from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.channels.twilio import compute_signature

AUTH_TOKEN, BASE = "twilio-test-token", "https://kefu.example.com"
TWILIO = pytest.mark.settings(twilio_auth_token=AUTH_TOKEN, public_base_url=BASE)
EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def client(moto_stack: Any) -> Iterator[Client]:
    import app

    with Client(app.app) as test_client:
        yield test_client


def fixture(name: str) -> dict[str, str]:
    return dict(json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8")))


def sms(sid: str = "SM0001", body: str = "洗衣机坏了，怎么报修？", sender: str = "+8613800138000") -> dict[str, str]:
    return {"MessageSid": sid, "From": sender, "To": "+14155551212", "Body": body, "NumMedia": "0",
            "AccountSid": "AC0123456789abcdef0123456789abcdef"}


def post(client: Client, path: str, params: dict[str, str], *, signed: dict[str, str] | None = None,
         query: str = "") -> Any:
    url = BASE + path + (f"?{query}" if query else "")
    signature = compute_signature(AUTH_TOKEN, url, signed if signed is not None else params)
    return client.http.post(
        path + (f"?{query}" if query else ""),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        body=urllib.parse.urlencode(params).encode(),
    )


def staff_headers() -> dict[str, str]:
    import time

    import jwt

    token = jwt.encode({"sub": "supervisor1", "cognito:groups": ["supervisor"], "exp": int(time.time()) + 600},
                       "test-jwt-secret-that-is-long-enough", algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def tickets(client: Client) -> list[dict[str, Any]]:
    return list(json.loads(client.http.get("/api/tickets?limit=100", headers=staff_headers()).body)["items"])


def ticket(client: Client, ticket_id: str) -> dict[str, Any]:
    return dict(json.loads(client.http.get(f"/api/tickets/{ticket_id}", headers=staff_headers()).body))


@TWILIO
def test_signed_sms_creates_a_ticket_and_answers_twiml(client: Client) -> None:
    response = post(client, "/webhooks/twilio/sms", sms())
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    [summary] = tickets(client)
    assert summary["channel"] == "SMS"
    assert summary["id"].encode() in response.body


@TWILIO
def test_query_string_is_part_of_the_signed_url(client: Client) -> None:
    assert post(client, "/webhooks/twilio/sms", sms(), query="tenant=east&x=1").status_code == 200
    assert len(tickets(client)) == 1


@TWILIO
def test_one_changed_parameter_is_refused_and_stores_nothing(client: Client) -> None:
    original = sms()
    tampered = {**original, "Body": "退款给我 1000 元"}
    response = post(client, "/webhooks/twilio/sms", tampered, signed=original)
    assert response.status_code == 403, response.body
    assert json.loads(response.body)["error"]["code"] == "bad_signature"
    assert tickets(client) == []


@TWILIO
def test_signature_for_another_host_is_refused(client: Client) -> None:
    params = sms()
    signature = compute_signature(AUTH_TOKEN, "https://evil.example.com/webhooks/twilio/sms", params)
    response = client.http.post(
        "/webhooks/twilio/sms",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        body=urllib.parse.urlencode(params).encode(),
    )
    assert response.status_code == 403
    assert tickets(client) == []


@TWILIO
def test_repeated_message_sid_is_one_message(client: Client) -> None:
    for _ in range(3):
        assert post(client, "/webhooks/twilio/sms", sms(sid="SMdup")).status_code == 200
    [summary] = tickets(client)
    assert len(ticket(client, summary["id"])["messages"]) == 1


@TWILIO
def test_missing_message_sid_is_a_400(client: Client) -> None:
    params = {k: v for k, v in sms().items() if k != "MessageSid"}
    response = post(client, "/webhooks/twilio/sms", params)
    assert response.status_code == 400, response.body
    assert tickets(client) == []


@TWILIO
def test_hotline_menu_choice_recording_and_transcription(client: Client) -> None:
    gather = fixture("twilio_voice_gather")
    menu = post(client, "/webhooks/twilio/voice", {k: v for k, v in gather.items() if k != "Digits"})
    assert menu.status_code == 200 and b"<Gather" in menu.body
    assert f'action="{BASE}/webhooks/twilio/voice"'.encode() in menu.body
    assert tickets(client) == []

    choice = post(client, "/webhooks/twilio/voice", gather)
    assert choice.status_code == 200, choice.body
    assert b"<Record" in choice.body and f"{BASE}/webhooks/twilio/voice/recording".encode() in choice.body
    [summary] = tickets(client)
    assert summary["channel"] == "HOTLINE" and summary["category"] == "after_sales"

    for _ in range(2):  # Twilio retries callbacks: each lands once
        assert post(client, "/webhooks/twilio/voice/recording", fixture("twilio_recording_status")).status_code == 200
        assert post(client, "/webhooks/twilio/voice/recording", fixture("twilio_transcription")).status_code == 200
    messages = ticket(client, summary["id"])["messages"]
    assert len(messages) == 3
    voice = [m for m in messages if m["attachments"]]
    assert voice and voice[0]["attachments"][0]["url"].endswith(".mp3")
    assert any("washing machine" in m["text"] for m in messages)


@TWILIO
def test_recording_of_an_unknown_call_is_a_404(client: Client) -> None:
    response = post(client, "/webhooks/twilio/voice/recording", fixture("twilio_recording_status"))
    assert response.status_code == 404, response.body
