"""The outbox: delivers queued outbound messages on the customer's channel and records the outcome."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..channels.http import SendError
from ..domain.ticket import Message, Ticket
from ..ports import TicketRepository


class ChannelSender(Protocol):
    """Sends one outbound message of a ticket; returns a delivery reference or raises SendError."""

    def send(self, ticket: Ticket, message: Message) -> str: ...


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one outbound message."""

    delivery: str  # sent | failed | retry
    detail: str


class OutboxService:
    """Picks the sender for the ticket's channel; retryable failures go back to the queue until the last try."""

    def __init__(self, tickets: TicketRepository, senders: dict[str, ChannelSender], fallback: ChannelSender) -> None:
        self.tickets = tickets
        self.senders = senders
        self.fallback = fallback

    def deliver(self, ticket_id: str, message_id: str, *, final_attempt: bool) -> DeliveryOutcome:
        ticket = self.tickets.get(ticket_id)
        message = next((m for m in ticket.messages if m.id == message_id), None)
        if message is None or message.direction != "out":
            return DeliveryOutcome("failed", f"no outbound message {message_id}")
        if message.delivery == "sent":
            return DeliveryOutcome("sent", "already sent")
        sender = self.senders.get(ticket.channel, self.fallback)
        try:
            reference = sender.send(ticket, message)
        except SendError as error:
            if error.retryable and not final_attempt:
                self.tickets.update_delivery(ticket_id, message, "retrying", str(error))  # type: ignore[attr-defined]
                return DeliveryOutcome("retry", str(error))
            self.tickets.update_delivery(ticket_id, message, "failed", str(error))  # type: ignore[attr-defined]
            return DeliveryOutcome("failed", str(error))
        self.tickets.update_delivery(ticket_id, message, "sent", reference)  # type: ignore[attr-defined]
        return DeliveryOutcome("sent", reference)
