"""Channel events that open no ticket (subscribe, unsubscribe, auto-replies, bounces) and call recordings."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..channels.email import parse_mime, parse_ses_notification, to_inbound
from ..channels.twilio import RecordingEvent
from ..domain.errors import NotFound, ValidationError
from ..domain.messages import InboundMessage
from ..domain.ticket import iso
from ..ports import Clock, CustomerRepository, DedupeRecord, TicketRepository
from .customers import AuditEntry, CustomerLedger, CustomerService

logger = logging.getLogger("kefu.channel_events")
EVENT_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class MailRef:
    """One mail of a ticket's email thread: its Message-ID (bare), direction and when."""

    ticket_id: str
    message_id: str
    direction: str  # in | out
    at: str
    address: str = ""  # the customer's address (From of an inbound mail, To of a reply)
    subject: str = ""
    kefu_message_id: str = ""  # the ticket message this mail carried


class ChannelStore(Protocol):
    """Pointers from channel references (Message-IDs, CallSids) to tickets, and once-only markers."""

    def put_pointer(self, kind: str, key: str, ticket_id: str, at: datetime) -> None: ...

    def find_pointer(self, kind: str, key: str) -> str | None: ...

    def record_mail(self, ref: MailRef) -> None: ...

    def ticket_for_mail_refs(self, refs: list[str] | tuple[str, ...]) -> str | None: ...

    def mail_thread(self, ticket_id: str, limit: int = 50) -> list[MailRef]: ...

    def claim(self, key: str, at: datetime, expires: datetime) -> bool: ...


@dataclass(frozen=True)
class EventOutcome:
    """What handling an event did."""

    handled: str  # subscribed | unsubscribed | auto_reply | bounce | ignored
    duplicate: bool = False
    customer_id: str = ""


class ChannelEventService:
    """Records channel events on the customer (attributes + audit note); never opens a ticket."""

    def __init__(
        self,
        customers: CustomerRepository,
        ledger: CustomerLedger,
        store: ChannelStore,
        tickets: TicketRepository,
        clock: Clock,
    ) -> None:
        self.identity = CustomerService(customers)
        self.ledger = ledger
        self.store = store
        self.tickets = tickets
        self.clock = clock

    def handle(self, msg: InboundMessage) -> EventOutcome:
        if msg.kind != "event":
            raise ValidationError("only events are handled here")
        if not msg.dedupe_key:
            raise ValidationError("event has no delivery id to deduplicate on")
        now = self.clock.now()
        if not self.store.claim(msg.dedupe_key, now, now + EVENT_RETENTION):
            return EventOutcome("ignored", duplicate=True)
        if msg.source == "wechat" and msg.event in ("subscribe", "unsubscribe"):
            return self._subscription(msg, now)
        if msg.event == "bounce":
            return self._bounce(msg, now)
        if msg.event == "auto_reply":
            return self._auto_reply(msg, now)
        return EventOutcome("ignored")

    def _subscription(self, msg: InboundMessage, now: datetime) -> EventOutcome:
        customer_id = self.identity.resolve(msg.customer, msg.source, now)
        subscribed = msg.event == "subscribe"
        self.ledger.update_profile(
            customer_id,
            attributes={"wechat_subscribed": subscribed, f"wechat_{msg.event}d_at": iso(now)},
        )
        detail: dict[str, Any] = {"channel": msg.channel}
        if msg.metadata.get("event_key"):
            detail["event_key"] = str(msg.metadata["event_key"])
        self.ledger.audit(AuditEntry(customer_id, iso(now), "customer", f"wechat_{msg.event}d", detail))
        return EventOutcome("subscribed" if subscribed else "unsubscribed", customer_id=customer_id)

    def _auto_reply(self, msg: InboundMessage, now: datetime) -> EventOutcome:
        ticket_id = self.store.ticket_for_mail_refs(list(msg.thread_refs))
        customer_id = self.identity.customers.find_by_identities([f"email:{msg.customer.email}"]) or ""
        if customer_id:
            self.ledger.audit(
                AuditEntry(
                    customer_id,
                    iso(now),
                    "system",
                    "email_auto_reply",
                    {"ticket": ticket_id or None, "subject": msg.subject[:200]},
                )
            )
        return EventOutcome("auto_reply", customer_id=customer_id)

    def _bounce(self, msg: InboundMessage, now: datetime) -> EventOutcome:
        """Best effort: the bounced reply is marked, and each bounced address is flagged on its customer."""
        reason = str(msg.metadata.get("auto_reason") or "bounce")
        ticket_id = self.store.ticket_for_mail_refs(list(msg.thread_refs))
        if ticket_id:
            self._mark_bounced_reply(ticket_id, set(msg.thread_refs), reason)
        flagged = ""
        for address in msg.metadata.get("bounced_recipients") or []:
            customer_id = self.identity.customers.find_by_identities([f"email:{str(address).lower()}"])
            if not customer_id:
                continue
            flagged = flagged or customer_id
            self.ledger.update_profile(
                customer_id, attributes={"email_bouncing": True, "email_bounced_at": iso(now)}
            )
            self.ledger.audit(
                AuditEntry(
                    customer_id, iso(now), "system", "email_bounced", {"address": str(address), "ticket": ticket_id}
                )
            )
        return EventOutcome("bounce", customer_id=flagged)

    def _mark_bounced_reply(self, ticket_id: str, refs: set[str], reason: str) -> None:
        try:
            ticket = self.tickets.get(ticket_id)
        except NotFound:
            return
        bounced = {
            ref.kefu_message_id
            for ref in self.store.mail_thread(ticket_id)
            if ref.direction == "out" and ref.message_id in refs and ref.kefu_message_id
        }
        for message in ticket.messages:
            if message.direction == "out" and message.id in bounced:
                self.tickets.update_delivery(  # type: ignore[attr-defined]
                    ticket_id, message, "bounced", f"{reason}: {message.delivery_detail}"
                )


class CallRecordings:
    """Adds a hotline voicemail's recording and transcription to the call's ticket, each exactly once."""

    def __init__(self, tickets: TicketRepository, store: ChannelStore, clock: Clock) -> None:
        self.tickets = tickets
        self.store = store
        self.clock = clock

    def attach(self, event: RecordingEvent) -> tuple[str, bool]:
        """(ticket id, duplicate) — raises NotFound when the call opened no ticket."""
        seen = self.tickets.get_dedupe(event.dedupe_key)
        if seen:
            return seen.ticket_id, True
        ticket_id = self.store.find_pointer("CALL", event.call_sid) if event.call_sid else None
        if not ticket_id:
            raise NotFound(f"no ticket for call {event.call_sid or '(no CallSid)'}")
        for _attempt in range(3):
            ticket = self.tickets.get(ticket_id)
            now = self.clock.now()
            if event.kind == "transcription":
                text = f"[留言转写] {event.transcription_text}" if event.transcription_text else "[留言转写失败]"
                attachments: list[dict[str, str]] = []
            else:
                text = f"[电话留言] {event.duration} 秒"
                url = f"{event.recording_url}.mp3" if event.recording_url else ""
                attachments = [{"url": url, "type": "voice", "name": f"{event.recording_sid}.mp3"}] if url else []
            message = ticket.add_message("in", text, now, "customer", attachments=attachments)
            ticket.record(now, "customer", event.kind, call_sid=event.call_sid, message_id=message.id)
            try:
                self.tickets.save(
                    ticket,
                    dedupe=DedupeRecord(event.dedupe_key, ticket.id, message.id),
                    dedupe_ttl=int((now + EVENT_RETENTION).timestamp()),
                )
                return ticket.id, False
            except Exception as error:  # a lost race or a concurrent duplicate: look again
                seen = self.tickets.get_dedupe(event.dedupe_key)
                if seen:
                    return seen.ticket_id, True
                logger.info("recording %s: retrying after %s", event.dedupe_key, error)
        raise NotFound(f"could not add the recording to ticket {ticket_id}")


class FileStore(Protocol):
    """Where attachment bytes go (S3), and where an SES S3 action left a mail."""

    def put(self, prefix: str, filename: str, content: bytes, content_type: str) -> str: ...

    def read(self, bucket: str, key: str) -> bytes: ...


class MessageIntake(Protocol):
    """IntakeService.receive, as the email intake needs it."""

    def receive(self, msg: InboundMessage) -> Any: ...


def attachment_kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0].lower()
    return {"image": "image", "audio": "voice", "video": "video"}.get(major, "file")


class EmailIntake:
    """SES receipt notification → raw MIME → attachments in S3 → threaded, deduplicated intake."""

    def __init__(
        self,
        intake: MessageIntake,
        events: ChannelEventService,
        store: ChannelStore,
        files: FileStore,
        tickets: TicketRepository,
        clock: Clock,
    ) -> None:
        self.intake = intake
        self.events = events
        self.store = store
        self.files = files
        self.tickets = tickets
        self.clock = clock

    def receive(self, notification: str | dict[str, Any]) -> dict[str, Any]:
        ses = parse_ses_notification(notification)
        if ses.is_spam_or_virus:
            logger.warning("inbound mail %s dropped: spam or virus verdict FAIL", ses.message_id)
            return {"dropped": "spam_or_virus", "ses_message_id": ses.message_id}
        raw = ses.raw_mime if ses.raw_mime is not None else self.files.read(ses.bucket_name, ses.object_key)
        parsed = parse_mime(raw)
        now = self.clock.now()
        message = to_inbound(parsed, now)
        if message.kind == "event":
            message = replace(
                message, metadata={**message.metadata, "bounced_recipients": list(parsed.bounced_recipients)}
            )
            outcome = self.events.handle(message)
            return {"event": outcome.handled, "duplicate": outcome.duplicate}
        seen = self.tickets.get_dedupe(message.dedupe_key)
        if seen is None:
            prefix = f"email/{now.strftime('%Y/%m/%d')}/{parsed.raw_sha256[:32]}"
            stored = [
                (
                    self.files.put(f"{prefix}/{i}", a.filename, a.content, a.content_type),
                    attachment_kind(a.content_type),
                    a.filename,
                )
                for i, a in enumerate(parsed.attachments, start=1)
            ]
            message = to_inbound(parsed, now, stored)
            threaded = self.store.ticket_for_mail_refs(list(message.thread_refs))
            if threaded:
                message = replace(message, ticket_hint=threaded)
            result = self.intake.receive(message)
            ticket_id, message_id, duplicate = result.ticket_id, result.message_id, result.duplicate
        else:
            ticket_id, message_id, duplicate = seen.ticket_id, seen.message_id, True
        # Repeated on duplicates too: a crash between intake and this write must not lose the pointer.
        self.store.record_mail(
            MailRef(
                ticket_id=ticket_id,
                message_id=parsed.message_id,
                direction="in",
                at=iso(now),
                address=parsed.from_address,
                subject=parsed.subject,
                kefu_message_id=message_id,
            )
        )
        return {"ticket_id": ticket_id, "message_id": message_id, "duplicate": duplicate}
