"""The one shape every channel's inbound message is parsed into before intake."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CustomerRef:
    """What a channel tells us about who wrote: any subset of identities, plus display data."""

    external_id: str = ""  # the channel's own id for the person (OpenID, platform uid, phone for SMS…)
    name: str = ""
    phone: str = ""
    email: str = ""
    union_id: str = ""  # WeChat UnionID: the same person across one company's WeChat apps
    member_id: str = ""


@dataclass(frozen=True)
class Attachment:
    """A file that came with a message: a URL we can fetch (or an S3 URI once stored)."""

    url: str
    type: str = "file"  # image | voice | video | file | location | link
    name: str = ""


@dataclass(frozen=True)
class InboundMessage:
    """A verified, parsed inbound request from any channel.

    `channel` is the upper-case ticket channel code (WECHAT, SMS, EMAIL, APP, …); `source` the
    webhook source it came through (wechat, twilio, email, app, douyin, …). `dedupe_key` is unique
    per real-world message: a platform retry carries the same key.
    """

    channel: str
    source: str
    dedupe_key: str
    customer: CustomerRef
    text: str
    received_at: datetime
    attachments: tuple[Attachment, ...] = ()
    kind: str = "message"  # "message" opens or joins a ticket; "event" (e.g. WeChat subscribe) does not
    event: str = ""  # for kind == "event": subscribe, unsubscribe, …
    subject: str = ""
    urgent: bool = False
    region: str = ""
    order_id: str = ""
    category_hint: str = ""  # a channel-given category (IVR choice, form field), trusted over text
    thread_refs: tuple[str, ...] = ()  # email: In-Reply-To + References message ids
    ticket_hint: str = ""  # a ticket id the channel says this message belongs to
    metadata: dict[str, Any] = field(default_factory=dict)
