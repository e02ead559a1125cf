"""Outbound for generic sources: a signed POST to the source's configured callback URL."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from ..domain.ticket import Message, Ticket
from .generic import sign
from .http import HttpClient, SendError


class GenericCallbackSender:
    """POSTs `{"ticket_id", "message_id", "text", "at", "customer_id"}` signed like inbound webhooks."""

    def __init__(
        self,
        callbacks: Mapping[str, str],
        secrets: Mapping[str, str],
        http: HttpClient,
        unix_now: Callable[[], float] = time.time,
    ) -> None:
        self.callbacks = callbacks
        self.secrets = secrets
        self.http = http
        self.unix_now = unix_now

    def send(self, ticket: Ticket, message: Message) -> str:
        url = self.callbacks.get(ticket.source)
        if not url:
            # Pull channels (app, kiosk without a push hook) read replies through the status API.
            return f"stored for pull: no callback configured for source {ticket.source!r}"
        body = json.dumps(
            {
                "ticket_id": ticket.id,
                "message_id": message.id,
                "customer_id": ticket.customer_id,
                "text": message.text,
                "at": message.at,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(self.unix_now()))
        headers = {"Content-Type": "application/json", "X-Kefu-Timestamp": timestamp}
        secret = self.secrets.get(ticket.source, "")
        if secret:
            headers["X-Kefu-Signature"] = sign(secret, timestamp, body)
        response = self.http.request("POST", url, body=body, headers=headers)
        if response.status >= 500 or response.status == 429:
            raise SendError(f"callback answered {response.status}", retryable=True)
        if response.status >= 400:
            raise SendError(f"callback answered {response.status}", retryable=False)
        return f"callback {response.status}"
