"""The outbox: delivers queued outbound messages on the customer's channel and records the outcome."""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..channels.email import SesSender, build_reply
from ..channels.http import SendError
from ..channels.twilio import TwilioSender
from ..channels.wechat import WeChatSender
from ..domain.errors import DomainError, NotFound
from ..domain.ticket import Message, Ticket, iso
from ..ports import Customer, CustomerRepository
from .channel_events import ChannelStore, MailRef
from .customers import identity_value

MAX_REFERENCES = 10


class ChannelSender(Protocol):
    """Sends one outbound message of a ticket; returns a delivery reference or raises SendError."""

    def send(self, ticket: Ticket, message: Message) -> str: ...


class DeliveryLedger(Protocol):
    """What the outbox reads and writes: the ticket, and the delivery state of one of its messages."""

    def get(self, ticket_id: str) -> Ticket: ...

    def update_delivery(self, ticket_id: str, message: Message, delivery: str, detail: str = "") -> None: ...


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one outbound message; `dead_letter` = retries exhausted, hand it to the DLQ."""

    delivery: str  # sent | failed | retry
    detail: str
    dead_letter: bool = False


class ContactBook:
    """Where to reach a ticket's customer on a channel: the profile's identities (following merges)."""

    def __init__(self, customers: CustomerRepository) -> None:
        self.customers = customers

    def _profiles(self, customer_id: str) -> list[Customer]:
        found: list[Customer] = []
        current = customer_id
        while current and len(found) < 5 and current not in {c.id for c in found}:
            try:
                profile = self.customers.get(current)
            except NotFound:
                break
            found.append(profile)
            current = profile.merged_into
        return found

    def identity(self, customer_id: str, kind: str) -> str:
        for profile in self._profiles(customer_id):
            value = identity_value(profile.identities, kind)
            if value:
                return value
        return ""

    def phone(self, customer_id: str) -> str:
        return next((p.phone for p in self._profiles(customer_id) if p.phone), "") or self.identity(
            customer_id, "phone"
        )

    def email(self, customer_id: str) -> str:
        return next((p.email for p in self._profiles(customer_id) if p.email), "") or self.identity(
            customer_id, "email"
        )


class WeChatChannelSender:
    """A reply to a WeChat ticket: a customer-service text message to the customer's OpenID."""

    def __init__(self, wechat: WeChatSender, contacts: ContactBook) -> None:
        self.wechat = wechat
        self.contacts = contacts

    def send(self, ticket: Ticket, message: Message) -> str:
        open_id = self.contacts.identity(ticket.customer_id, "wechat")
        if not open_id:
            raise SendError(f"customer {ticket.customer_id} has no WeChat OpenID", retryable=False)
        return self.wechat.send_text(open_id, message.text)


class SmsChannelSender:
    """A reply to an SMS or hotline ticket: an SMS to the customer's phone through Twilio."""

    def __init__(self, twilio: TwilioSender, contacts: ContactBook) -> None:
        self.twilio = twilio
        self.contacts = contacts

    def send(self, ticket: Ticket, message: Message) -> str:
        phone = self.contacts.phone(ticket.customer_id)
        if not phone:
            raise SendError(f"customer {ticket.customer_id} has no phone number", retryable=False)
        return "twilio:" + self.twilio.send_sms(phone, message.text)


class EmailChannelSender:
    """A reply to an email ticket, threaded on the customer's last mail; its Message-IDs become MAILREFs."""

    def __init__(
        self,
        ses: SesSender,
        store: ChannelStore,
        contacts: ContactBook,
        sender_address: str,
        region: str,
        now: Callable[[], datetime],
        sender_name: str = "客服中心",
    ) -> None:
        self.ses = ses
        self.store = store
        self.contacts = contacts
        self.sender_address = sender_address
        self.region = region
        self.now = now
        self.sender_name = sender_name

    def send(self, ticket: Ticket, message: Message) -> str:
        thread = self.store.mail_thread(ticket.id)
        inbound = [ref for ref in thread if ref.direction == "in"]  # newest first
        last = inbound[0] if inbound else None
        to_address = (last.address if last else "") or self.contacts.email(ticket.customer_id)
        if not to_address:
            raise SendError(f"customer {ticket.customer_id} has no email address", retryable=False)
        references = [ref.message_id for ref in reversed(inbound)][-MAX_REFERENCES:]
        try:
            email = build_reply(
                from_address=self.sender_address,
                from_name=self.sender_name,
                to_address=to_address,
                subject=(last.subject if last else "") or ticket.subject or "您的服务请求",
                text=message.text,
                ticket_id=ticket.id,
                in_reply_to=last.message_id if last else "",
                references=references,
                domain=self.sender_address.rpartition("@")[2],
                now=self.now(),
            )
            ses_id = self.ses.send(email, source=self.sender_address, destinations=[to_address])
        except DomainError as error:
            raise SendError(f"email reply not built: {error.message}", retryable=False) from error
        at = iso(self.now())
        # SES replaces the Message-ID header with its own; record ours and both spellings of SES's.
        for message_id in (email.message_id, f"{ses_id}@email.amazonses.com", f"{ses_id}@{self.region}.amazonses.com"):
            self.store.record_mail(
                MailRef(
                    ticket_id=ticket.id,
                    message_id=message_id,
                    direction="out",
                    at=at,
                    address=to_address,
                    subject=email.subject,
                    kefu_message_id=message.id,
                )
            )
        return f"ses:{ses_id}"


class OutboxService:
    """Picks the sender for the ticket's channel; retryable failures go back to the queue until the last try."""

    def __init__(
        self,
        tickets: DeliveryLedger,
        senders: dict[str, ChannelSender],
        fallback: ChannelSender,
        callback_sources: Collection[str] = (),
    ) -> None:
        self.tickets = tickets
        self.senders = senders
        self.fallback = fallback
        self.callback_sources = frozenset(callback_sources)

    def sender_for(self, ticket: Ticket) -> ChannelSender:
        """A generic source with a configured callback gets it; otherwise the ticket channel's own sender."""
        if ticket.source in self.callback_sources:
            return self.fallback
        return self.senders.get(ticket.channel, self.fallback)

    def deliver(self, ticket_id: str, message_id: str, *, final_attempt: bool) -> DeliveryOutcome:
        ticket = self.tickets.get(ticket_id)
        message = next((m for m in ticket.messages if m.id == message_id), None)
        if message is None or message.direction != "out":
            return DeliveryOutcome("failed", f"no outbound message {message_id}")
        if message.delivery in ("sent", "failed", "bounced"):
            return DeliveryOutcome(message.delivery, f"already {message.delivery}")
        try:
            reference = self.sender_for(ticket).send(ticket, message)
        except SendError as error:
            if error.retryable and not final_attempt:
                self.tickets.update_delivery(ticket_id, message, "retrying", str(error))
                return DeliveryOutcome("retry", str(error))
            reason = f"gave up after retries: {error}" if error.retryable else str(error)
            self.tickets.update_delivery(ticket_id, message, "failed", reason)
            return DeliveryOutcome("failed", reason, dead_letter=error.retryable)
        self.tickets.update_delivery(ticket_id, message, "sent", reference)
        return DeliveryOutcome("sent", reference)
