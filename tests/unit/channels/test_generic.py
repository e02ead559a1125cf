"""The generic signed webhook: HMAC verification (rotation, skew, sources) and parsing of the JSON body."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.channels import generic
from chalicelib.domain.errors import AuthenticationError, ValidationError

NOW = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
SECRETS = {"app": "secret-app", "store": "secret-store"}
BODY = b'{"event_id": "e1"}'


def headers(body: bytes = BODY, secret: str = "secret-app", ts: str = TS, **extra: str) -> dict[str, str]:
    return {"X-Kefu-Timestamp": ts, "X-Kefu-Signature": generic.sign(secret, ts, body), **extra}


def verify(hdrs: dict[str, str], body: bytes = BODY, source: str = "app") -> None:
    generic.verify(SECRETS, source, hdrs, body, NOW)


def refused(hdrs: dict[str, str], body: bytes = BODY, source: str = "app") -> str:
    with pytest.raises(AuthenticationError) as caught:
        verify(hdrs, body, source)
    return caught.value.code


# --- verify ---------------------------------------------------------------------------------------------------------
def test_sign_is_the_contract_hmac() -> None:
    expected = hmac.new(b"secret-app", f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert generic.sign("secret-app", TS, BODY) == f"v1={expected}"


def test_a_good_signature_passes_with_any_header_case() -> None:
    verify(headers())
    verify({k.lower(): v for k, v in headers().items()})
    verify({k.upper(): v for k, v in headers().items()})


def test_secret_rotation_any_of_several_signatures() -> None:
    good = generic.sign("secret-app", TS, BODY)
    old = generic.sign("old-secret", TS, BODY)
    verify({"X-Kefu-Timestamp": TS, "X-Kefu-Signature": f"{old},{good}"})
    verify({"X-Kefu-Timestamp": TS, "X-Kefu-Signature": f"{good}, {old}"})
    assert refused({"X-Kefu-Timestamp": TS, "X-Kefu-Signature": f"{old},v1=deadbeef"}) == "bad_signature"
    assert refused({"X-Kefu-Timestamp": TS, "X-Kefu-Signature": ",,"}) == "bad_signature"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: {**h, "X-Kefu-Signature": h["X-Kefu-Signature"].replace("v1=", "v0=")},
        lambda h: {**h, "X-Kefu-Signature": h["X-Kefu-Signature"][3:]},  # no scheme
        lambda h: {**h, "X-Kefu-Signature": h["X-Kefu-Signature"].upper()},
        lambda h: {**h, "X-Kefu-Signature": ""},
        lambda h: {"X-Kefu-Timestamp": h["X-Kefu-Timestamp"]},
        lambda h: {**h, "X-Kefu-Signature": "v1=签名"},  # non-ASCII: refused, not a crash
        lambda h: {**h, "X-Kefu-Signature": h["X-Kefu-Signature"] + "é"},
    ],
)
def test_bad_signatures_are_refused(mutate: Any) -> None:
    assert refused(mutate(headers())) == "bad_signature"


def test_signature_covers_body_timestamp_and_secret() -> None:
    assert refused(headers(), body=BODY + b" ") == "bad_signature"
    assert refused(headers(secret="secret-store")) == "bad_signature"  # another source's secret
    other_ts = str(int(TS) - 1)
    assert refused({**headers(), "X-Kefu-Timestamp": other_ts}) == "bad_signature"


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False),
                                             (600, False), (-600, False)])
def test_timestamp_tolerance_both_ways(offset: int, ok: bool) -> None:
    ts = str(int(TS) + offset)
    if ok:
        verify(headers(ts=ts))
    else:
        assert refused(headers(ts=ts)) == "stale_timestamp"


@pytest.mark.parametrize("ts", ["", "abc", "-5", "1.5", f"{TS}.0", "²", "١٢٣", "9" * 5000, " " + TS])
def test_malformed_timestamps_are_refused_as_401(ts: str) -> None:
    hdrs = {"X-Kefu-Timestamp": ts, "X-Kefu-Signature": generic.sign("secret-app", ts, BODY)}
    assert refused(hdrs) in ("bad_timestamp", "stale_timestamp")


@pytest.mark.parametrize("source", ["nosuch", "APP", "app\n", "a", "../app", "", "x" * 40])
def test_unknown_sources_are_refused(source: str) -> None:
    assert refused(headers(), source=source) == "unknown_source"


def test_a_source_with_an_empty_secret_is_unknown() -> None:
    with pytest.raises(AuthenticationError):
        generic.verify({"app": ""}, "app", headers(secret=""), BODY, NOW)


# --- parse ----------------------------------------------------------------------------------------------------------
def body(**overrides: Any) -> bytes:
    data: dict[str, Any] = {
        "event_id": "evt-1",
        "customer": {"external_id": "u-1", "name": "张三", "phone": "+8613800000000", "email": "ZS@Example.com"},
        "message": {
            "text": "  我的订单还没到  ",
            "attachments": [{"url": "https://cdn.example.com/a.jpg", "type": "image"}],
        },
        "urgent": True,
        "region": "east",
        "order_id": "O-1",
    }
    for key, value in overrides.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data, ensure_ascii=False).encode()


def test_parse_the_contract_body() -> None:
    msg = generic.parse("app", body(), NOW)
    assert (msg.channel, msg.source, msg.dedupe_key) == ("APP", "app", "app:evt-1")
    assert msg.customer.external_id == "u-1" and msg.customer.name == "张三"
    assert msg.customer.email == "zs@example.com"
    assert msg.text == "我的订单还没到"
    assert [(a.url, a.type) for a in msg.attachments] == [("https://cdn.example.com/a.jpg", "image")]
    assert (msg.urgent, msg.region, msg.order_id) == (True, "east", "O-1")
    assert msg.received_at == NOW


@pytest.mark.parametrize(("source", "channel"), [("app", "APP"), ("ivr", "HOTLINE"), ("douyin", "DOUYIN"),
                                                  ("store", "STORE"), ("my-shop", "MY_SHOP")])
def test_channel_of_a_source(source: str, channel: str) -> None:
    assert generic.parse(source, body(), NOW).channel == channel


def test_same_event_id_from_two_sources_are_different_deliveries() -> None:
    assert generic.parse("app", body(), NOW).dedupe_key != generic.parse("store", body(), NOW).dedupe_key


def test_attachment_only_message_and_defaults() -> None:
    msg = generic.parse("app", body(message={"attachments": [{"url": "s3://bucket/key"}]}, urgent=...), NOW)
    assert msg.text == "" and msg.attachments[0].type == "file" and msg.urgent is False


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"event_id": "x", "customer": ',
        b"\xff\xfe not utf-8",
        b"[]",
        b'"text"',
        b"42",
        b"null",
    ],
)
def test_malformed_or_non_object_json(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        generic.parse("app", raw, NOW)


def test_malformed_json_has_its_own_code() -> None:
    with pytest.raises(ValidationError) as caught:
        generic.parse("app", b"{nope", NOW)
    assert caught.value.code == "malformed_json"


def test_oversized_body() -> None:
    big = body(message={"text": "字" * (generic.MAX_BODY // 3 + 10)})
    assert len(big) > generic.MAX_BODY
    with pytest.raises(ValidationError, match="larger"):
        generic.parse("app", big, NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_id": ...},
        {"event_id": ""},
        {"event_id": True},
        {"event_id": {"id": 1}},
        {"event_id": "x" * 201},
        {"customer": ...},
        {"customer": {}},
        {"customer": {"name": "only a name"}},
        {"customer": "u-1"},
        {"customer": {"external_id": ["u-1"]}},
        {"customer": {"external_id": "u-1", "email": "not-an-email"}},
        {"message": ...},
        {"message": {}},
        {"message": {"text": "   "}},
        {"message": "hello"},
        {"message": {"text": 42}},
        {"message": {"text": "hi", "attachments": "https://x.example/a.jpg"}},
        {"message": {"text": "hi", "attachments": [{"type": "image"}]}},
        {"message": {"text": "hi", "attachments": [{"url": ""}]}},
        {"message": {"text": "hi", "attachments": [{"url": 42}]}},
        {"message": {"text": "hi", "attachments": ["https://x.example/a.jpg"]}},
        {"message": {"text": "hi", "attachments": [{"url": "javascript:alert(1)"}]}},
        {"message": {"text": "hi", "attachments": [{"url": "file:///etc/passwd"}]}},
        {"message": {"text": "hi", "attachments": [{"url": "https://x.example/a.jpg"}] * 21}},
        {"urgent": "yes"},
        {"urgent": 1},
        {"region": "r" * 65},
    ],
)
def test_invalid_bodies_are_400(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        generic.parse("app", body(**overrides), NOW)


def test_numeric_event_id_is_accepted_as_text() -> None:
    assert generic.parse("app", body(event_id=123), NOW).dedupe_key == "app:123"
