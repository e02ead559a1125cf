"""The generic signed webhook (app, mini-program, web chat, stores, kiosks, IVR, platforms): verify + parse."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..domain.errors import AuthenticationError, ValidationError
from ..domain.messages import Attachment, CustomerRef, InboundMessage

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,30}$")
# Webhook source -> ticket channel code; any other configured source uses its upper-cased name.
SOURCE_CHANNELS = {
    "app": "APP",
    "miniprogram": "MINIPROGRAM",
    "webchat": "WEBCHAT",
    "store": "STORE",
    "kiosk": "KIOSK",
    "ivr": "HOTLINE",
    "hotline": "HOTLINE",
    "douyin": "DOUYIN",
    "tmall": "TMALL",
    "jd": "JD",
    "social": "SOCIAL",
}
MAX_BODY = 256 * 1024


def channel_for(source: str) -> str:
    """The ticket channel code of a webhook source."""
    return SOURCE_CHANNELS.get(source, re.sub(r"[^A-Z0-9_]", "_", source.upper()))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` — used to verify and to sign callbacks."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secrets: Mapping[str, str],
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: int = 300,
) -> None:
    """Raises AuthenticationError unless the body is signed with the source's secret, recently."""
    lowered = {k.lower(): v for k, v in headers.items()}
    secret = secrets.get(source) if SOURCE_NAME.match(source) else None
    if not secret:
        raise AuthenticationError(f"unknown webhook source {source!r}", code="unknown_source")
    timestamp = lowered.get("x-kefu-timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise AuthenticationError("X-Kefu-Timestamp must be unix seconds", code="bad_timestamp")
    if abs(now.timestamp() - int(timestamp)) > tolerance:
        raise AuthenticationError(f"X-Kefu-Timestamp is more than {tolerance} s from now", code="stale_timestamp")
    expected = sign(secret, timestamp, body)
    offered = [part.strip() for part in lowered.get("x-kefu-signature", "").split(",")]
    if not any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in offered if candidate):
        raise AuthenticationError("X-Kefu-Signature does not match", code="bad_signature")


def string_field(data: Mapping[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError(f"'{key}' must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise ValidationError(f"'{key}' is longer than {limit} characters")
    return text



def customer_ref(customer: Mapping[str, Any]) -> CustomerRef:
    """The `customer` object of a request → CustomerRef; at least one identity, a plausible email."""
    ref = CustomerRef(
        external_id=string_field(customer, "external_id"),
        name=string_field(customer, "name"),
        phone=string_field(customer, "phone", 40),
        email=string_field(customer, "email", 254).lower(),
        union_id=string_field(customer, "union_id"),
        member_id=string_field(customer, "member_id"),
    )
    if not any((ref.external_id, ref.phone, ref.email, ref.union_id, ref.member_id)):
        raise ValidationError("'customer' needs at least one of external_id, phone, email, union_id, member_id")
    if ref.email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", ref.email):
        raise ValidationError("'customer.email' is not an email address")
    return ref

def parse(source: str, body: bytes, received_at: datetime) -> InboundMessage:
    """The JSON body of CONTRACT.md → InboundMessage; ValidationError (400) on anything malformed."""
    if len(body) > MAX_BODY:
        raise ValidationError(f"body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object")
    event_id = string_field(data, "event_id")
    if not event_id:
        raise ValidationError("'event_id' is required")
    customer = data.get("customer") or {}
    message = data.get("message") or {}
    if not isinstance(customer, dict) or not isinstance(message, dict):
        raise ValidationError("'customer' and 'message' must be objects")
    ref = customer_ref(customer)
    text = message.get("text", "")
    if not isinstance(text, str):
        raise ValidationError("'message.text' must be a string")
    raw_attachments = message.get("attachments") or []
    if not isinstance(raw_attachments, list) or len(raw_attachments) > 20:
        raise ValidationError("'message.attachments' must be a list of at most 20 items")
    attachments = []
    for item in raw_attachments:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"].strip():
            raise ValidationError("each attachment needs a 'url'")
        if not item["url"].startswith(("https://", "http://", "s3://")):
            raise ValidationError("attachment 'url' must be http(s) or s3")
        attachments.append(
            Attachment(url=item["url"], type=str(item.get("type") or "file"), name=str(item.get("name") or ""))
        )
    if not text.strip() and not attachments:
        raise ValidationError("'message' needs text or attachments")
    urgent = data.get("urgent", False)
    if not isinstance(urgent, bool):
        raise ValidationError("'urgent' must be true or false")
    return InboundMessage(
        channel=channel_for(source),
        source=source,
        dedupe_key=f"{source}:{event_id}",
        customer=ref,
        text=text.strip(),
        received_at=received_at,
        attachments=tuple(attachments),
        urgent=urgent,
        region=string_field(data, "region", 64),
        order_id=string_field(data, "order_id", 64),
        category_hint=string_field(data, "category", 32),
        subject=string_field(data, "subject", 300),
        ticket_hint=string_field(data, "ticket_id", 40),
    )
