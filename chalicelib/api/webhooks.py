"""Channel webhooks: verify, parse, one idempotent write through intake, answer at once."""
from __future__ import annotations

import urllib.parse
from typing import Any

from chalice.app import Blueprint, Response

from ..channels import generic, twilio, wechat
from ..domain.errors import AuthenticationError, PermissionDenied, ValidationError
from ..wiring import get_container
from .errors import json_errors, json_response, raw_body

bp = Blueprint(__name__)
JSON_TYPES = ["application/json", "text/plain", "application/octet-stream"]


@bp.route("/webhooks/generic/{source}", methods=["POST"], content_types=JSON_TYPES)
@json_errors
def generic_webhook(source: str) -> Response:
    container = get_container()
    request = bp.current_request
    body = raw_body(request)
    now = container.clock.now()
    generic.verify(
        container.settings.webhook_secrets,
        source,
        dict(request.headers),
        body,
        now,
        container.settings.webhook_clock_skew,
    )
    message = generic.parse(source, body, now)
    result = container.intake.receive(message)
    answer: dict[str, Any] = {
        "ticket_id": result.ticket_id,
        "message_id": result.message_id,
        "duplicate": result.duplicate,
    }
    if result.public_token:
        answer["status_url"] = (
            f"{container.settings.public_base_url}/public/tickets/{result.ticket_id}?token={result.public_token}"
        )
    return json_response(answer)


# --- WeChat Official Account (docs/CHANNELS.md) --------------------------------------------------
XML_TYPES = ["text/xml", "application/xml", "text/plain"]
FORM_TYPES = ["application/x-www-form-urlencoded"]
TEXT = "text/plain; charset=utf-8"
TWIML = "text/xml; charset=utf-8"


def _query() -> dict[str, str]:
    params = bp.current_request.query_params
    return {str(name): str(params[name]) for name in params} if params else {}


def _text(body: str) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": TEXT, "Cache-Control": "no-store"})


def _twiml(body: str) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": TWIML, "Cache-Control": "no-store"})


@bp.route("/webhooks/wechat", methods=["GET"])
@json_errors
def wechat_verify() -> Response:
    settings = get_container().settings
    query = _query()
    signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    if not wechat.verify_url_signature(settings.wechat_token, signature, timestamp, nonce):
        raise AuthenticationError("wechat: bad or missing signature", code="bad_signature")
    echostr = query.get("echostr", "")
    if not echostr:
        raise ValidationError("wechat: echostr is required")
    return _text(echostr)


@bp.route("/webhooks/wechat", methods=["POST"], content_types=XML_TYPES)
@json_errors
def wechat_push() -> Response:
    container = get_container()
    settings = container.settings
    query = _query()
    if not settings.wechat_token or not settings.wechat_app_id:
        raise AuthenticationError("wechat is not configured", code="channel_not_configured")
    if (query.get("encrypt_type") or "").lower() == "aes" and len(settings.wechat_encoding_aes_key) != 43:
        raise AuthenticationError("wechat safe mode is not configured", code="channel_not_configured")
    message = wechat.parse_push(
        query,
        raw_body(bp.current_request),
        token=settings.wechat_token,
        app_id=settings.wechat_app_id,
        encoding_aes_key=settings.wechat_encoding_aes_key,
        received_at=container.clock.now(),
    )
    if message.kind == "event":
        container.channel_events.handle(message)
    else:
        container.intake.receive(message)
    return _text("success")


# --- Twilio: SMS and the voice hotline ------------------------------------------------------------
SMS_PATH = "/webhooks/twilio/sms"
VOICE_PATH = "/webhooks/twilio/voice"
RECORDING_PATH = "/webhooks/twilio/voice/recording"


def _twilio_params(path: str) -> dict[str, list[str]]:
    """The verified form parameters; the signed URL is KEFU_PUBLIC_BASE_URL + path + query (CONTRACT.md)."""
    container = get_container()
    request = bp.current_request
    params = twilio.parse_form_multi(raw_body(request))
    query = request.query_params
    pairs = [(name, value) for name in query for value in query.getlist(name)] if query else []
    url = container.settings.public_base_url + path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    signature = headers.get(twilio.SIGNATURE_HEADER.lower(), "")
    if not twilio.validate_signature(container.settings.twilio_auth_token, url, params, signature):
        raise PermissionDenied("X-Twilio-Signature does not match this request", code="bad_signature")
    return params


def _param(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[-1].strip()


@bp.route(SMS_PATH, methods=["POST"], content_types=FORM_TYPES)
@json_errors
def twilio_sms() -> Response:
    container = get_container()
    message = twilio.parse_sms(_twilio_params(SMS_PATH), container.clock.now())
    if not message.text.strip() and not message.attachments:
        return _twiml(twilio.twiml_message(None))  # nothing to keep (an empty SMS)
    result = container.intake.receive(message)
    reply = f"您好，我们已收到您的消息，工单号 {result.ticket_id}，客服会尽快回复。" if result.created else None
    return _twiml(twilio.twiml_message(reply))


@bp.route(VOICE_PATH, methods=["POST"], content_types=FORM_TYPES)
@json_errors
def twilio_voice() -> Response:
    container = get_container()
    params = _twilio_params(VOICE_PATH)
    base = container.settings.public_base_url
    if not _param(params, "Digits"):
        return _twiml(twilio.ivr_menu_twiml(base + VOICE_PATH))
    now = container.clock.now()
    message = twilio.parse_call(params, now)
    result = container.intake.receive(message)
    call_sid = _param(params, "CallSid")
    container.channel_store.put_pointer("CALL", call_sid, result.ticket_id, now)
    return _twiml(
        twilio.ivr_choice_twiml(base + RECORDING_PATH, base + RECORDING_PATH, category=message.category_hint)
    )


@bp.route(RECORDING_PATH, methods=["POST"], content_types=FORM_TYPES)
@json_errors
def twilio_recording() -> Response:
    container = get_container()
    params = _twilio_params(RECORDING_PATH)
    if _param(params, "RecordingSid") or _param(params, "TranscriptionSid"):
        container.call_recordings.attach(twilio.parse_recording(params))
    # The <Record> action itself (no RecordingSid yet) only needs the goodbye.
    return _twiml(twilio.ivr_thanks_twiml())
