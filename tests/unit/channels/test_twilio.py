"""Tests for the Twilio channel: signatures, SMS/voice parsing, TwiML and the SMS sender."""
from __future__ import annotations

import base64
import json
import urllib.parse
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.channels.http import HttpResponse, SendError
from chalicelib.channels.twilio import (
    IVR_MENU,
    MAX_TRANSCRIBED_SECONDS,
    RecordingEvent,
    TwilioApiError,
    TwilioSender,
    compute_signature,
    ivr_choice_twiml,
    ivr_menu_text,
    ivr_menu_twiml,
    ivr_thanks_twiml,
    normalize_phone,
    parse_call,
    parse_form,
    parse_form_multi,
    parse_recording,
    parse_sms,
    twiml_message,
    url_variants,
    validate_signature,
)
from chalicelib.domain.errors import ValidationError

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)

# Twilio's documented example (webhooks security page / twilio-python tests).
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def load(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


# ------------------------------------------------------------------ signature


def test_documented_signature_vector() -> None:
    assert compute_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert validate_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_signature_ignores_param_order() -> None:
    reordered = dict(reversed(list(DOC_PARAMS.items())))
    assert validate_signature(DOC_TOKEN, DOC_URL, reordered, DOC_SIGNATURE)


@pytest.mark.parametrize(
    "change",
    [
        {"Digits": "1235"},
        {"From": "+12349013031"},
        {"Extra": ""},  # an added blank parameter still counts (name is signed)
    ],
)
def test_tampered_param_refused(change: dict[str, str]) -> None:
    assert not validate_signature(DOC_TOKEN, DOC_URL, {**DOC_PARAMS, **change}, DOC_SIGNATURE)


def test_removed_param_refused() -> None:
    params = dict(DOC_PARAMS)
    del params["Caller"]
    assert not validate_signature(DOC_TOKEN, DOC_URL, params, DOC_SIGNATURE)


@pytest.mark.parametrize(
    "url",
    [
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        "https://mycompany.com/myapp.php?bar=2&foo=1",  # the query string is signed as sent
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        "https://evil.com/myapp.php?foo=1&bar=2",
        "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
    ],
)
def test_tampered_url_refused(url: str) -> None:
    assert not validate_signature(DOC_TOKEN, url, DOC_PARAMS, DOC_SIGNATURE)


@pytest.mark.parametrize(
    "signature",
    ["", "0/KCTR6DLpKmkAf8muzZqo1nDgQ", "1/KCTR6DLpKmkAf8muzZqo1nDgQ=", "0/kctr6dlpkmkaf8muzzqo1ndgq=", "签名"],
)
def test_wrong_signature_refused(signature: str) -> None:
    assert not validate_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, signature)


def test_wrong_token_refused() -> None:
    assert not validate_signature("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert not validate_signature("", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_port_variants_accepted_both_ways() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    # Request seen with the standard port, Twilio signed without it.
    assert validate_signature(DOC_TOKEN, with_port, DOC_PARAMS, DOC_SIGNATURE)
    # Request seen without the port, Twilio signed with it.
    signed_with_port = compute_signature(DOC_TOKEN, with_port, DOC_PARAMS)
    assert signed_with_port != DOC_SIGNATURE
    assert validate_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, signed_with_port)


def test_url_variants() -> None:
    assert url_variants("https://a.example/x?y=1") == ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
    assert url_variants("http://a.example:80/x") == ["http://a.example:80/x", "http://a.example/x"]
    assert url_variants("https://user:pw@a.example:443/x") == [
        "https://user:pw@a.example:443/x",
        "https://user:pw@a.example/x",
    ]
    # A non-standard port is never removed; odd URLs come back unchanged.
    assert url_variants("https://a.example:8443/x") == ["https://a.example:8443/x"]
    assert url_variants("https://a.example:notaport/x") == ["https://a.example:notaport/x"]
    assert url_variants("ftp://a.example/x") == ["ftp://a.example/x"]


def test_repeated_params_signed_like_twilio_python() -> None:
    url = "https://example.com/hook"
    params = {"Body": "hi", "MediaUrl": ["https://b.example/2", "https://a.example/1"]}
    expected_data = url + "Bodyhi" + "MediaUrlhttps://a.example/1" + "MediaUrlhttps://b.example/2"
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b"tok", expected_data.encode(), hashlib.sha1).digest()).decode()
    assert compute_signature("tok", url, params) == expected
    # Order of the repeated values does not matter; losing one of them does.
    assert validate_signature("tok", url, {"Body": "hi", "MediaUrl": list(reversed(params["MediaUrl"]))}, expected)
    assert not validate_signature("tok", url, {"Body": "hi", "MediaUrl": "https://a.example/1"}, expected)


def test_signature_over_parsed_form_body() -> None:
    body = urllib.parse.urlencode(DOC_PARAMS).encode()
    assert validate_signature(DOC_TOKEN, DOC_URL, parse_form(body), DOC_SIGNATURE)
    assert validate_signature(DOC_TOKEN, DOC_URL, parse_form_multi(body), DOC_SIGNATURE)


def test_signature_over_unicode_params() -> None:
    params = {"Body": "你好 & 再见", "From": "+8613800138000"}
    sig = compute_signature("tok", "https://example.com/sms", params)
    assert validate_signature("tok", "https://example.com/sms", params, sig)
    assert not validate_signature("tok", "https://example.com/sms", {**params, "Body": "你好 & 再见!"}, sig)


# ------------------------------------------------------------------ form parsing


def test_parse_form_decodes_utf8_and_keeps_blanks() -> None:
    body = b"Body=%E4%BD%A0%E5%A5%BD+there&FromCity=&To=%2B14155551212"
    assert parse_form(body) == {"Body": "你好 there", "FromCity": "", "To": "+14155551212"}


def test_parse_form_multi_keeps_repeats() -> None:
    assert parse_form_multi(b"a=1&a=2&b=") == {"a": ["1", "2"], "b": [""]}
    assert parse_form(b"a=1&a=2") == {"a": "2"}


@pytest.mark.parametrize("body", [b"Body=\xff\xfe", b"Body=%FF%FE", b"x=1&" * 1001])
def test_parse_form_rejects_undecodable(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_form(body)


def test_parse_form_empty() -> None:
    assert parse_form(b"") == {}


# ------------------------------------------------------------------ phone numbers


@pytest.mark.parametrize(
    ("raw", "cc", "expected"),
    [
        ("+86 138-0013-8000", "86", "+8613800138000"),
        ("13800138000", "86", "+8613800138000"),
        ("008613800138000", "86", "+8613800138000"),
        ("8613800138000", "86", "+8613800138000"),
        ("+1 (234) 901-3030", "86", "+12349013030"),
        ("+12349013030", "86", "+12349013030"),
        ("tel:+8613800138000", "86", "+8613800138000"),
        ("１３８００１３８０００", "86", "+8613800138000"),  # full-width digits
        ("＋86 138 0013 8000", "86", "+8613800138000"),
        ("010-12345678", "86", "+861012345678"),  # Beijing landline, trunk 0 dropped
        ("(234) 901-3030", "1", "+12349013030"),
        ("0044 20 7946 0018", "86", "+442079460018"),
        ("", "86", ""),
        ("   ", "86", ""),
        ("abc", "86", ""),
        ("+86 138 0013 8000 ext 12", "86", ""),
        ("+0123456789", "86", ""),  # no country code starts with 0
        ("12345", "86", ""),  # too short to be anything
        ("+1234567890123456", "86", ""),  # longer than E.164's 15 digits
        ("+", "86", ""),
        ("MyShop", "86", ""),
        ("95555", "86", ""),  # Chinese service short number: not E.164
        ("1380013800", "86", ""),  # one digit short of a mobile number
        ("020 7946 0018", "44", "+442079460018"),  # other country: trunk 0 dropped
        ("901303", "1", ""),  # national part too short
    ],
)
def test_normalize_phone(raw: str, cc: str, expected: str) -> None:
    assert normalize_phone(raw, cc) == expected


# ------------------------------------------------------------------ SMS in


def test_parse_sms_fixture() -> None:
    msg = parse_sms(load("twilio_sms.json"), NOW)
    assert msg.channel == "SMS"
    assert msg.source == "twilio"
    assert msg.dedupe_key == "twilio:SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
    assert msg.customer.phone == "+8613800138000"
    assert msg.customer.external_id == "+8613800138000"
    assert msg.text == "你好，我的订单还没有发货 & <急>"
    assert msg.received_at == NOW
    assert msg.attachments == ()
    assert msg.kind == "message"
    assert msg.metadata["to"] == "+14155551212"
    assert msg.metadata["account_sid"] == "AC0123456789abcdef0123456789abcdef"
    assert msg.metadata["from_country"] == "CN"
    assert "from_city" not in msg.metadata  # blank in the webhook → absent


def test_parse_sms_media_fixture() -> None:
    msg = parse_sms(load("twilio_mms.json"), NOW)
    assert msg.dedupe_key == "twilio:MM9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    assert [(a.type, a.url.rsplit("/", 1)[1]) for a in msg.attachments] == [
        ("image", "ME00000000000000000000000000000001"),
        ("video", "ME00000000000000000000000000000002"),
    ]
    assert msg.metadata["from_city"] == "NASHUA"
    assert msg.customer.phone == "+12349013030"


def test_parse_sms_media_types_and_missing_urls() -> None:
    params = {
        "MessageSid": "MM1",
        "From": "+8613800138000",
        "Body": "",
        "NumMedia": "3",
        "MediaUrl0": "https://m/0",
        "MediaContentType0": "audio/amr",
        "MediaUrl1": "https://m/1",
        "MediaContentType1": "application/pdf",
        # MediaUrl2 missing: skipped
    }
    msg = parse_sms(params, NOW)
    assert [(a.url, a.type) for a in msg.attachments] == [("https://m/0", "voice"), ("https://m/1", "file")]


def test_parse_sms_from_parse_form_multi() -> None:
    body = urllib.parse.urlencode({"MessageSid": "SM9", "From": "+8613800138000", "Body": " hi "}).encode()
    msg = parse_sms(parse_form_multi(body), NOW)
    assert msg.dedupe_key == "twilio:SM9"
    assert msg.text == " hi "


@pytest.mark.parametrize(
    "params",
    [
        {"From": "+8613800138000", "Body": "hi"},
        {"MessageSid": "", "From": "+8613800138000", "Body": "hi"},
        {"MessageSid": "SM1", "Body": "hi"},
        {"MessageSid": "SM1", "From": "+8613800138000", "NumMedia": "two"},
    ],
)
def test_parse_sms_rejects_incomplete(params: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        parse_sms(params, NOW)


def test_parse_sms_short_code_sender_kept_as_external_id() -> None:
    msg = parse_sms({"MessageSid": "SM2", "From": "TWILIO", "Body": "x"}, NOW)
    assert msg.customer.phone == ""
    assert msg.customer.external_id == "TWILIO"


# ------------------------------------------------------------------ TwiML


def _parse_twiml(xml: str) -> ET.Element:
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(xml.encode("utf-8"))


def test_twiml_message_escaped() -> None:
    text = 'a < b & c > "d" \'e\' 你好\x01'
    xml = twiml_message(text)
    root = _parse_twiml(xml)
    assert root.tag == "Response"
    [message] = list(root)
    assert message.tag == "Message"
    assert message.text == text.replace("\x01", "")  # characters illegal in XML are dropped
    assert "<b" not in xml


@pytest.mark.parametrize("text", [None, ""])
def test_twiml_message_empty(text: str | None) -> None:
    xml = twiml_message(text)
    root = _parse_twiml(xml)
    assert root.tag == "Response"
    assert list(root) == []
    assert xml.endswith("<Response/>")


def test_ivr_menu_twiml() -> None:
    action = "https://api.example.com/twilio/voice/menu?tenant=a&x=1"
    root = _parse_twiml(ivr_menu_twiml(action))
    gather, notice, redirect = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"] == action  # &-escaped in the XML, intact once parsed
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["input"] == "dtmf"
    [say] = list(gather)
    assert say.tag == "Say"
    assert say.attrib["language"] == "zh-CN"
    assert say.text == ivr_menu_text()
    for digit, label in (("1", "咨询"), ("2", "售后"), ("3", "投诉"), ("4", "建议")):
        assert f"{label}请按{digit}" in (say.text or "")
    assert notice.tag == "Say"
    assert redirect.tag == "Redirect"
    assert redirect.attrib["method"] == "POST"
    assert redirect.text == action


def test_ivr_menu_twiml_options() -> None:
    root = _parse_twiml(
        ivr_menu_twiml("https://x/a", language="cmn-CN", voice="Polly.Zhiyu", redirect_url="https://x/menu")
    )
    gather, _notice, redirect = list(root)
    assert gather[0].attrib == {"language": "cmn-CN", "voice": "Polly.Zhiyu"}
    assert redirect.text == "https://x/menu"


def test_ivr_choice_twiml() -> None:
    root = _parse_twiml(
        ivr_choice_twiml("https://x/record?a=1&b=2", "https://x/transcribed", category="after_sales")
    )
    say, record, goodbye, hangup = list(root)
    assert say.tag == "Say"
    assert "售后" in (say.text or "")
    assert record.tag == "Record"
    assert record.attrib["action"] == "https://x/record?a=1&b=2"
    assert record.attrib["method"] == "POST"
    assert record.attrib["maxLength"] == str(MAX_TRANSCRIBED_SECONDS)
    assert record.attrib["transcribe"] == "true"
    assert record.attrib["transcribeCallback"] == "https://x/transcribed"
    assert record.attrib["recordingStatusCallback"] == "https://x/transcribed"
    assert record.attrib["recordingStatusCallbackEvent"] == "completed"
    assert list(record) == []
    assert goodbye.tag == "Say"
    assert hangup.tag == "Hangup"


def test_ivr_choice_twiml_separate_status_callback_and_limits() -> None:
    root = _parse_twiml(
        ivr_choice_twiml("https://x/r", "https://x/t", recording_status_callback_url="https://x/s", max_length=60)
    )
    record = root[1]
    assert record.attrib["recordingStatusCallback"] == "https://x/s"
    assert record.attrib["maxLength"] == "60"
    assert "您选择了" not in (root[0].text or "")
    for bad in (1, MAX_TRANSCRIBED_SECONDS + 1):
        with pytest.raises(ValueError):
            ivr_choice_twiml("https://x/r", "https://x/t", max_length=bad)


def test_ivr_thanks_twiml() -> None:
    root = _parse_twiml(ivr_thanks_twiml())
    assert [child.tag for child in root] == ["Say", "Hangup"]


def test_twiml_attribute_escaping() -> None:
    xml = ivr_menu_twiml('https://x/a?q="<>"&r=1')
    root = _parse_twiml(xml)
    assert root[0].attrib["action"] == 'https://x/a?q="<>"&r=1'


# ------------------------------------------------------------------ voice in


def test_ivr_menu_data() -> None:
    assert IVR_MENU == {"1": "consultation", "2": "after_sales", "3": "complaint", "4": "suggestion"}


def test_parse_call_fixture() -> None:
    msg = parse_call(load("twilio_voice_gather.json"), NOW)
    assert msg.channel == "HOTLINE"
    assert msg.source == "twilio-voice"
    assert msg.dedupe_key == "twilio-voice:CA5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
    assert msg.category_hint == "after_sales"
    assert msg.customer.phone == "+8613800138000"
    assert msg.customer.external_id == "+8613800138000"
    assert msg.text == "[热线来电] 选择: 售后"
    assert msg.received_at == NOW
    assert msg.metadata["digits"] == "2"
    assert msg.metadata["to"] == "+14155551212"
    assert msg.metadata["from_country"] == "CN"


@pytest.mark.parametrize(
    ("digits", "category", "text"),
    [
        ("1", "consultation", "[热线来电] 选择: 咨询"),
        ("3", "complaint", "[热线来电] 选择: 投诉"),
        ("4", "suggestion", "[热线来电] 选择: 建议"),
        ("9", "", "[热线来电] 选择: 9（无效按键）"),
        ("", "", "[热线来电] 选择: 未选择"),
    ],
)
def test_parse_call_digits(digits: str, category: str, text: str) -> None:
    params = {"CallSid": "CA1", "From": "13800138000", "Digits": digits}
    msg = parse_call(params, NOW)
    assert msg.category_hint == category
    assert msg.text == text
    assert msg.customer.phone == "+8613800138000"


@pytest.mark.parametrize("params", [{"From": "+8613800138000", "Digits": "1"}, {"CallSid": "CA1", "Digits": "1"}])
def test_parse_call_rejects_incomplete(params: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        parse_call(params, NOW)


def test_parse_recording_status_fixture() -> None:
    event = parse_recording(load("twilio_recording_status.json"))
    assert event == RecordingEvent(
        call_sid="CA5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        recording_sid="RE7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
        recording_url="https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef"
        "/Recordings/RE7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
        duration=37,
        transcription_text="",
        transcription_status="",
        kind="recording",
        dedupe_key="twilio-recording:RE7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
        recording_status="completed",
        account_sid="AC0123456789abcdef0123456789abcdef",
    )


def test_parse_transcription_fixture() -> None:
    event = parse_recording(load("twilio_transcription.json"))
    assert event.kind == "transcription"
    assert event.transcription_sid == "TR3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
    assert event.transcription_text.startswith("Hello, my washing machine")
    assert event.transcription_status == "completed"
    assert event.recording_sid == "RE7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
    assert event.call_sid == "CA5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
    assert event.duration == 0
    assert event.dedupe_key == "twilio-transcription:TR3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
    # The recording and its transcription never share a dedupe key.
    assert event.dedupe_key != parse_recording(load("twilio_recording_status.json")).dedupe_key


def test_parse_failed_transcription() -> None:
    params = {**load("twilio_transcription.json"), "TranscriptionStatus": "failed", "TranscriptionText": ""}
    event = parse_recording(params)
    assert event.kind == "transcription"
    assert event.transcription_status == "failed"
    assert event.transcription_text == ""


@pytest.mark.parametrize(
    "params",
    [
        {"CallSid": "CA1", "RecordingUrl": "https://r"},
        {"CallSid": "CA1", "RecordingSid": "RE1", "TranscriptionStatus": "completed"},
        {"CallSid": "CA1", "RecordingSid": "RE1", "RecordingDuration": "long"},
    ],
)
def test_parse_recording_rejects_incomplete(params: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        parse_recording(params)


# ------------------------------------------------------------------ SMS out


class FakeHttp:
    """Test double of our HttpClient port: records requests, answers from a script."""

    def __init__(self, *answers: HttpResponse | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        self.calls.append({"method": method, "url": url, "body": body, "headers": headers or {}})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "secret-token"


def _json(status: int, data: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(data).encode("utf-8"), {"Content-Type": "application/json"})


def _sender(http: FakeHttp, api_base: str = "https://api.twilio.test/") -> TwilioSender:
    return TwilioSender(SID, TOKEN, "+14155551212", api_base, http)


def test_send_sms_request_shape() -> None:
    created = json.loads((EVENTS / "twilio_message_created.json").read_text(encoding="utf-8"))
    http = FakeHttp(_json(201, created))
    sid = _sender(http).send_sms("138 0013 8000", "您的工单已受理 & 谢谢", status_callback="https://x/status?t=1")
    assert sid == "SM4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
    [call] = http.calls
    assert call["method"] == "POST"
    assert call["url"] == f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
    headers = call["headers"]
    scheme, _, credentials = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{SID}:{TOKEN}"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(call["body"].decode("ascii"), strict_parsing=True)
    assert form == {
        "To": ["+8613800138000"],
        "From": ["+14155551212"],
        "Body": ["您的工单已受理 & 谢谢"],
        "StatusCallback": ["https://x/status?t=1"],
    }


def test_send_sms_without_status_callback() -> None:
    http = FakeHttp(_json(201, {"sid": "SM1"}))
    assert _sender(http).send_sms("+12349013030", "hi") == "SM1"
    form = urllib.parse.parse_qs(http.calls[0]["body"].decode("ascii"))
    assert "StatusCallback" not in form


def test_send_sms_default_api_base() -> None:
    http = FakeHttp(_json(201, {"sid": "SM1"}))
    _sender(http, api_base="").send_sms("+12349013030", "hi")
    assert http.calls[0]["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/")


def test_send_sms_invalid_to_is_permanent() -> None:
    error = json.loads((EVENTS / "twilio_error_21211.json").read_text(encoding="utf-8"))
    http = FakeHttp(_json(400, error))
    with pytest.raises(TwilioApiError) as info:
        _sender(http).send_sms("+8613800138000", "hi")
    assert info.value.retryable is False
    assert info.value.status == 400
    assert info.value.code == 21211
    assert "Invalid 'To' Phone Number" in info.value.twilio_message
    assert "21211" in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_send_sms_throttled_or_server_error_is_retryable(status: int) -> None:
    http = FakeHttp(_json(status, {"code": 20429 if status == 429 else 20500, "message": "busy", "status": status}))
    with pytest.raises(TwilioApiError) as info:
        _sender(http).send_sms("+8613800138000", "hi")
    assert info.value.retryable is True
    assert info.value.status == status


def test_send_sms_error_with_unexpected_json() -> None:
    with pytest.raises(TwilioApiError) as info:
        _sender(FakeHttp(_json(400, ["odd"]))).send_sms("+8613800138000", "hi")
    assert info.value.code is None
    assert info.value.retryable is False
    assert "odd" in info.value.twilio_message


@pytest.mark.parametrize("status", [401, 403, 404])
def test_send_sms_other_client_errors_are_permanent(status: int) -> None:
    http = FakeHttp(HttpResponse(status, b"<html>nope</html>"))
    with pytest.raises(SendError) as info:
        _sender(http).send_sms("+8613800138000", "hi")
    assert info.value.retryable is False
    assert "nope" in str(info.value)


def test_send_sms_network_failure_is_retryable() -> None:
    with pytest.raises(SendError) as info:
        _sender(FakeHttp(TimeoutError("timed out"))).send_sms("+8613800138000", "hi")
    assert info.value.retryable is True
    passthrough = SendError("connection reset", retryable=True)
    with pytest.raises(SendError) as info2:
        _sender(FakeHttp(passthrough)).send_sms("+8613800138000", "hi")
    assert info2.value is passthrough


@pytest.mark.parametrize("answer", [HttpResponse(201, b"not json"), _json(201, {"status": "queued"}), _json(200, [])])
def test_send_sms_success_without_sid_is_not_retried(answer: HttpResponse) -> None:
    with pytest.raises(SendError) as info:
        _sender(FakeHttp(answer)).send_sms("+8613800138000", "hi")
    assert info.value.retryable is False


@pytest.mark.parametrize(("to", "body"), [("not a number", "hi"), ("+8613800138000", "")])
def test_send_sms_refuses_bad_input_without_calling(to: str, body: str) -> None:
    http = FakeHttp()
    with pytest.raises(SendError) as info:
        _sender(http).send_sms(to, body)
    assert info.value.retryable is False
    assert http.calls == []
