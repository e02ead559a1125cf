"""Requests staff log by hand (walk-ins at a store, calls taken on a desk phone): validate → InboundMessage."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..domain.errors import ValidationError
from ..domain.messages import InboundMessage
from ..domain.ticket import CATEGORIES, CHANNEL_CODE
from .generic import customer_ref, string_field

MAX_TEXT = 20_000


def parse_staff_ticket(
    body: Mapping[str, Any], actor_id: str, received_at: datetime, idempotency_key: str = ""
) -> InboundMessage:
    """`{"channel", "customer": {...}, "text", "category"?, "urgent"?, "subject"?, "region"?, "order_id"?}`."""
    channel = string_field(body, "channel", 20).upper()
    if not CHANNEL_CODE.match(channel):
        raise ValidationError("'channel' must be a channel code such as STORE, HOTLINE, KIOSK, EMAIL")
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise ValidationError("'customer' must be an object")
    ref = customer_ref(customer)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("'text' (what the customer asked) is required")
    if len(text) > MAX_TEXT:
        raise ValidationError(f"'text' is longer than {MAX_TEXT} characters")
    category = string_field(body, "category", 32)
    if category and category not in CATEGORIES:
        raise ValidationError(f"'category' must be one of {', '.join(CATEGORIES)}")
    urgent = body.get("urgent", False)
    if not isinstance(urgent, bool):
        raise ValidationError("'urgent' must be true or false")
    key = idempotency_key.strip()[:100] or secrets.token_hex(12)
    return InboundMessage(
        channel=channel,
        source="staff",
        dedupe_key=f"staff:{actor_id}:{key}",
        customer=ref,
        text=text.strip(),
        received_at=received_at,
        urgent=urgent,
        region=string_field(body, "region", 64),
        order_id=string_field(body, "order_id", 64),
        category_hint=category,
        subject=string_field(body, "subject", 300),
        metadata={"logged_by": actor_id},
    )
