"""Twilio channel: webhook signatures, SMS and voice-hotline (IVR) parsing, TwiML, and the SMS sender."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

from chalicelib.channels.http import HttpClient, HttpResponse, SendError
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.messages import Attachment, CustomerRef, InboundMessage

# A webhook's POST parameters: one value per name, or every value of a repeated name.
Params: TypeAlias = Mapping[str, str | Sequence[str]]

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
DEFAULT_API_BASE: Final = "https://api.twilio.com"
MAX_FORM_FIELDS: Final = 1000
MIN_NATIONAL_DIGITS: Final = 7
MAX_MEDIA: Final = 10  # Twilio attaches at most 10 media items to one message

SMS_CHANNEL: Final = "SMS"
SMS_SOURCE: Final = "twilio"
HOTLINE_CHANNEL: Final = "HOTLINE"
VOICE_SOURCE: Final = "twilio-voice"

# Hotline IVR: the digit a caller presses → the ticket category it hints.
IVR_MENU: Final[dict[str, str]] = {"1": "consultation", "2": "after_sales", "3": "complaint", "4": "suggestion"}
# How each category is spoken and written in Chinese.
IVR_LABELS: Final[dict[str, str]] = {
    "consultation": "咨询",
    "after_sales": "售后",
    "complaint": "投诉",
    "suggestion": "建议",
}
# Twilio transcribes <Record> recordings of at most two minutes; a longer maxLength disables it (warning 13615).
MAX_TRANSCRIBED_SECONDS: Final = 120

_STANDARD_PORTS: Final = {"https": 443, "http": 80}
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'


# --------------------------------------------------------------------------------------------
# Webhook security (X-Twilio-Signature)
# --------------------------------------------------------------------------------------------


def _values(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """Base64 HMAC-SHA1 (key: the auth token) of the URL followed by each POST name+value.

    Names are sorted (case-sensitive, by code point); a repeated name contributes each of its
    distinct values in sorted order, exactly as twilio-python's RequestValidator does.
    """
    data = url
    for name in sorted(params):
        for value in sorted(set(_values(params[name]))):
            data += name + value
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, plus the same URL with its scheme's standard port removed or added.

    Twilio may sign `https://host/path` or `https://host:443/path` for the same request. Only the
    standard port (443 for https, 80 for http) is added or removed; any other port is kept.
    """
    variants = [url]
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    standard = _STANDARD_PORTS.get(parts.scheme.lower())
    if standard is None or not parts.netloc:
        return variants
    if port is None:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc}:{standard}")))
    elif port == standard:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])))
    return variants


def validate_signature(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """True when `signature` (the X-Twilio-Signature header) matches the request, compared in constant time."""
    if not auth_token or not signature:
        return False
    given = signature.strip().encode("utf-8")
    matched = False
    for candidate in url_variants(url):
        expected = compute_signature(auth_token, candidate, params).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return matched


def _parse_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return urllib.parse.parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"undecodable form body: {exc}", code="invalid_form") from exc


def parse_form(body: bytes) -> dict[str, str]:
    """Decode an application/x-www-form-urlencoded UTF-8 body (blank values kept; last of a repeated name wins)."""
    return dict(_parse_pairs(body))


def parse_form_multi(body: bytes) -> dict[str, list[str]]:
    """Like parse_form, but every value of a repeated name is kept, in order: pass this to validate_signature."""
    out: dict[str, list[str]] = {}
    for name, value in _parse_pairs(body):
        out.setdefault(name, []).append(value)
    return out


# --------------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------------


def normalize_phone(raw: str, default_country_code: str = "86") -> str:
    """Normalise a phone number to E.164 (`+<country><number>`), or "" when it cannot be.

    Accepts `+` or `00` international prefixes, spaces, dashes, dots, parentheses, full-width
    digits and a `tel:` prefix. A number without a prefix is national: with country code 86, an
    11-digit mobile number (1[3-9]…) or a trunk-0 landline (010-12345678); otherwise the trunk 0
    (if any) is dropped and the default country code prepended to a national number of at least
    MIN_NATIONAL_DIGITS digits.
    """
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    if not text:
        return ""
    international = text.startswith("+")
    if international:
        text = text[1:]
    digits = re.sub(r"[\s\-.()/]", "", text)
    if not digits or not re.fullmatch(r"[0-9]+", digits):
        return ""
    cc = default_country_code.lstrip("+")
    if international:
        candidate = "+" + digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif cc == "86" and re.fullmatch(r"861[3-9][0-9]{9}", digits):
        candidate = "+" + digits  # 86 + mobile, written without the +
    elif cc == "86" and re.fullmatch(r"1[3-9][0-9]{9}", digits):
        candidate = "+86" + digits
    elif cc == "86":
        # Other Chinese national numbers: only a trunk-0 landline (0 + 2-3 digit area + 7-8 digits).
        candidate = "+86" + digits[1:] if re.fullmatch(r"0[1-9][0-9]{8,10}", digits) else ""
    else:
        national = digits[1:] if digits.startswith("0") else digits
        candidate = "+" + cc + national if len(national) >= MIN_NATIONAL_DIGITS else ""
    return candidate if _E164.fullmatch(candidate) else ""


# --------------------------------------------------------------------------------------------
# Inbound SMS
# --------------------------------------------------------------------------------------------


def _raw(params: Params, name: str) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):  # a parse_form_multi result: the last value wins, as in parse_form
        value = value[-1] if value else ""
    return value


def _get(params: Params, name: str) -> str:
    return _raw(params, name).strip()


def _attachment_type(content_type: str) -> str:
    major = content_type.split("/", 1)[0].strip().lower()
    return {"image": "image", "audio": "voice", "video": "video"}.get(major, "file")


def _customer(params: Params) -> CustomerRef:
    raw = _get(params, "From")
    if not raw:
        raise ValidationError("Twilio request without From", code="invalid_twilio_request")
    phone = normalize_phone(raw)
    # Short codes and alphanumeric sender ids are not phone numbers: keep them as the channel id.
    return CustomerRef(external_id=phone or raw, phone=phone, name=_get(params, "CallerName"))


def _geo_metadata(params: Params, metadata: dict[str, Any]) -> None:
    for key, name in (("from_city", "FromCity"), ("from_state", "FromState"), ("from_country", "FromCountry")):
        value = _get(params, name)
        if value:
            metadata[key] = value


def parse_sms(params: Params, received_at: datetime) -> InboundMessage:
    """Parse Twilio's incoming-message webhook parameters into an InboundMessage (channel SMS)."""
    sid = _get(params, "MessageSid")
    if not sid:
        raise ValidationError("Twilio SMS webhook without MessageSid", code="invalid_twilio_request")
    customer = _customer(params)
    try:
        num_media = int(_get(params, "NumMedia") or "0")
    except ValueError as exc:
        raise ValidationError("Twilio SMS webhook with a non-numeric NumMedia", code="invalid_twilio_request") from exc
    attachments: list[Attachment] = []
    for i in range(max(0, min(num_media, MAX_MEDIA))):
        url = _get(params, f"MediaUrl{i}")
        if url:
            attachments.append(Attachment(url=url, type=_attachment_type(_get(params, f"MediaContentType{i}"))))
    metadata: dict[str, Any] = {"to": _get(params, "To"), "account_sid": _get(params, "AccountSid")}
    _geo_metadata(params, metadata)
    messaging_service = _get(params, "MessagingServiceSid")
    if messaging_service:
        metadata["messaging_service_sid"] = messaging_service
    return InboundMessage(
        channel=SMS_CHANNEL,
        source=SMS_SOURCE,
        dedupe_key=f"twilio:{sid}",
        customer=customer,
        text=_raw(params, "Body"),
        received_at=received_at,
        attachments=tuple(attachments),
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# TwiML
# --------------------------------------------------------------------------------------------


# What xml.sax.saxutils.escape/quoteattr-style escaping does, without importing xml.sax.saxutils (which pulls in
# urllib.request, http.client and email at import time).
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def _text(value: str) -> str:
    return _XML_ILLEGAL.sub("", value).translate(_TEXT_ESCAPES)


def _attr(value: str) -> str:
    return _XML_ILLEGAL.sub("", value).translate(_ATTR_ESCAPES)


def _element(tag: str, attrs: Mapping[str, str] | None = None, body: str | None = None) -> str:
    """`<tag a="v">body</tag>`; attribute values are escaped here, `body` must already be TwiML."""
    rendered = "".join(f' {name}="{_attr(value)}"' for name, value in (attrs or {}).items() if value != "")
    return f"<{tag}{rendered}/>" if body is None else f"<{tag}{rendered}>{body}</{tag}>"


def _response(*verbs: str) -> str:
    return _XML_DECLARATION + (_element("Response", body="".join(verbs)) if verbs else "<Response/>")


def twiml_message(text: str | None) -> str:
    """A messaging TwiML reply: `<Message>` with `text`, or an empty `<Response/>` (no reply) for None or ""."""
    if not text:
        return _response()
    return _response(_element("Message", body=_text(text)))


def _say(text: str, language: str, voice: str) -> str:
    return _element("Say", {"language": language, "voice": voice}, _text(text))


def ivr_menu_text() -> str:
    """The spoken hotline menu, built from IVR_MENU."""
    options = "，".join(f"{IVR_LABELS.get(category, category)}请按{digit}" for digit, category in IVR_MENU.items())
    return f"您好，欢迎致电客服热线。{options}。"


def ivr_menu_twiml(
    action_url: str,
    *,
    language: str = "zh-CN",
    voice: str = "alice",
    timeout: int = 5,
    redirect_url: str = "",
) -> str:
    """The hotline's first TwiML: a one-digit DTMF <Gather> (POSTed to `action_url`) around the spoken menu.

    With no key pressed, Twilio falls through to the next verb: a short notice and a <Redirect>
    (POST) to `redirect_url`, by default `action_url`, which then arrives without Digits.
    """
    gather = _element(
        "Gather",
        {"input": "dtmf", "numDigits": "1", "action": action_url, "method": "POST", "timeout": str(timeout)},
        _say(ivr_menu_text(), language, voice),
    )
    return _response(
        gather,
        _say("我们没有收到您的选择。", language, voice),
        _element("Redirect", {"method": "POST"}, _text(redirect_url or action_url)),
    )


def ivr_choice_twiml(
    record_action_url: str,
    transcribe_callback_url: str,
    *,
    recording_status_callback_url: str = "",
    category: str = "",
    language: str = "zh-CN",
    voice: str = "alice",
    max_length: int = MAX_TRANSCRIBED_SECONDS,
) -> str:
    """TwiML after the menu choice: a <Say> prompt, then a transcribed voicemail <Record>.

    Twilio POSTs RecordingUrl/RecordingDuration/Digits to `record_action_url` when the caller
    finishes, the transcription to `transcribe_callback_url`, and the recording's status to
    `recording_status_callback_url` (default: the transcribe callback; parse_recording tells the
    two apart). An empty recording skips the action: the trailing <Say>/<Hangup> then run.
    """
    if not 1 < max_length <= MAX_TRANSCRIBED_SECONDS:
        raise ValueError(f"max_length must be 2..{MAX_TRANSCRIBED_SECONDS} seconds for transcription")
    label = IVR_LABELS.get(category, "")
    chosen = f"您选择了{label}。" if label else ""
    record = _element(
        "Record",
        {
            "action": record_action_url,
            "method": "POST",
            "maxLength": str(max_length),
            "finishOnKey": "#",
            "playBeep": "true",
            "transcribe": "true",
            "transcribeCallback": transcribe_callback_url,
            "recordingStatusCallback": recording_status_callback_url or transcribe_callback_url,
            "recordingStatusCallbackMethod": "POST",
            "recordingStatusCallbackEvent": "completed",
        },
    )
    return _response(
        _say(f"{chosen}请在提示音后留言，说明您的问题，按井号键结束。", language, voice),
        record,
        _say("我们没有收到您的留言，再见。", language, voice),
        _element("Hangup"),
    )


def ivr_thanks_twiml(*, language: str = "zh-CN", voice: str = "alice") -> str:
    """TwiML for the <Record> action URL: thank the caller and hang up."""
    return _response(_say("感谢您的留言，我们会尽快与您联系，再见。", language, voice), _element("Hangup"))


# --------------------------------------------------------------------------------------------
# Inbound voice: the Gather callback, recordings and transcriptions
# --------------------------------------------------------------------------------------------


def parse_call(params: Params, received_at: datetime) -> InboundMessage:
    """Parse the <Gather> action callback of the hotline menu into an InboundMessage (channel HOTLINE)."""
    call_sid = _get(params, "CallSid")
    if not call_sid:
        raise ValidationError("Twilio voice webhook without CallSid", code="invalid_twilio_request")
    customer = _customer(params)
    digits = _get(params, "Digits")
    category = IVR_MENU.get(digits, "")
    if category:
        choice = IVR_LABELS.get(category, category)
    elif digits:
        choice = f"{digits}（无效按键）"
    else:
        choice = "未选择"
    metadata: dict[str, Any] = {
        "to": _get(params, "To"),
        "account_sid": _get(params, "AccountSid"),
        "call_status": _get(params, "CallStatus"),
        "digits": digits,
    }
    _geo_metadata(params, metadata)
    return InboundMessage(
        channel=HOTLINE_CHANNEL,
        source=VOICE_SOURCE,
        dedupe_key=f"twilio-voice:{call_sid}",
        customer=customer,
        text=f"[热线来电] 选择: {choice}",
        received_at=received_at,
        category_hint=category,
        metadata=metadata,
    )


@dataclass(frozen=True)
class RecordingEvent:
    """A hotline voicemail's recording (RecordingStatusCallback) or transcription (transcribeCallback).

    `recording_url` has no extension (append .mp3/.wav); fetching it may need HTTP Basic auth.
    """

    call_sid: str
    recording_sid: str
    recording_url: str
    duration: int
    transcription_text: str
    transcription_status: str
    kind: str  # "recording" | "transcription"
    dedupe_key: str
    transcription_sid: str = ""
    recording_status: str = ""
    account_sid: str = ""


def parse_recording(params: Params) -> RecordingEvent:
    """Parse a RecordingStatusCallback or a transcribeCallback parameter set (told apart by TranscriptionSid)."""
    recording_sid = _get(params, "RecordingSid")
    if not recording_sid:
        raise ValidationError("Twilio recording callback without RecordingSid", code="invalid_twilio_request")
    transcription_sid = _get(params, "TranscriptionSid")
    is_transcription = bool(transcription_sid or _get(params, "TranscriptionStatus"))
    if is_transcription and not transcription_sid:
        raise ValidationError("Twilio transcription callback without TranscriptionSid", code="invalid_twilio_request")
    raw_duration = _get(params, "RecordingDuration")
    try:
        duration = int(raw_duration) if raw_duration else 0
    except ValueError as exc:
        raise ValidationError("Twilio recording callback with a non-numeric duration") from exc
    return RecordingEvent(
        call_sid=_get(params, "CallSid"),
        recording_sid=recording_sid,
        recording_url=_get(params, "RecordingUrl"),
        duration=duration,
        transcription_text=_get(params, "TranscriptionText"),
        transcription_status=_get(params, "TranscriptionStatus"),
        kind="transcription" if is_transcription else "recording",
        dedupe_key=f"twilio-transcription:{transcription_sid}"
        if is_transcription
        else f"twilio-recording:{recording_sid}",
        transcription_sid=transcription_sid,
        recording_status=_get(params, "RecordingStatus"),
        account_sid=_get(params, "AccountSid"),
    )


# --------------------------------------------------------------------------------------------
# Outbound SMS (Messages REST API)
# --------------------------------------------------------------------------------------------


class TwilioApiError(SendError):
    """Twilio answered a send with an error: HTTP status, Twilio's error code and message."""

    def __init__(self, status: int, code: int | None, message: str, *, retryable: bool) -> None:
        super().__init__(f"Twilio HTTP {status} (code {code}): {message}", retryable=retryable)
        self.status = status
        self.code = code
        self.twilio_message = message


def _error_details(response: HttpResponse) -> tuple[int | None, str]:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return None, response.body[:200].decode("utf-8", "replace")
    if not isinstance(data, dict):
        return None, str(data)[:200]
    code = data.get("code")
    return (code if isinstance(code, int) else None), str(data.get("message") or "")


class TwilioSender:
    """Sends SMS through Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json)."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str, http: HttpClient) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self.http = http

    @property
    def messages_url(self) -> str:
        sid = urllib.parse.quote(self.account_sid, safe="")
        return f"{self.api_base}/2010-04-01/Accounts/{sid}/Messages.json"

    def _headers(self) -> dict[str, str]:
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        return {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }

    def send_sms(self, to: str, body: str, *, status_callback: str = "") -> str:
        """Send one SMS and return its Message SID; raises SendError (retryable for 429, 5xx, network)."""
        recipient = normalize_phone(to)
        if not recipient:
            raise SendError(f"not a phone number: {to!r}", retryable=False)
        if not body:
            raise SendError("refusing to send an empty SMS", retryable=False)
        form = {"To": recipient, "From": self.from_number, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        try:
            response = self.http.request(
                "POST", self.messages_url, body=urllib.parse.urlencode(form).encode("utf-8"), headers=self._headers()
            )
        except SendError:
            raise
        except (OSError, TimeoutError) as exc:
            raise SendError(f"Twilio unreachable: {exc}", retryable=True) from exc
        if 200 <= response.status < 300:
            try:
                sid = response.json().get("sid")
            except (ValueError, UnicodeDecodeError, AttributeError):
                sid = None
            if not isinstance(sid, str) or not sid:
                # The message may well have been created: retrying could send it twice.
                raise SendError(f"Twilio HTTP {response.status} without a Message SID", retryable=False)
            return sid
        code, message = _error_details(response)
        retryable = response.status == 429 or response.status >= 500
        raise TwilioApiError(response.status, code, message, retryable=retryable)


__all__ = [
    "DEFAULT_API_BASE",
    "IVR_LABELS",
    "IVR_MENU",
    "SIGNATURE_HEADER",
    "RecordingEvent",
    "TwilioApiError",
    "TwilioSender",
    "compute_signature",
    "ivr_choice_twiml",
    "ivr_menu_text",
    "ivr_menu_twiml",
    "ivr_thanks_twiml",
    "normalize_phone",
    "parse_call",
    "parse_form",
    "parse_form_multi",
    "parse_recording",
    "parse_sms",
    "twiml_message",
    "url_variants",
    "validate_signature",
]
