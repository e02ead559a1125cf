"""Handlers behind app.py's event sources: parse the event, call the service, report partial failures."""
from __future__ import annotations

import logging
from typing import Any

from ..channels.generic_sender import GenericCallbackSender
from ..channels.http import UrllibHttpClient
from ..services.clocks import Breach
from ..services.outbox import OutboxService
from ..wiring import get_container
from .events import sqs_bodies, stream_changes

logger = logging.getLogger("kefu.jobs")
OUTBOX_MAX_RECEIVES = 4  # matches the queue's redrive maxReceiveCount (resources.QUEUES)


def table_stream(event: dict[str, Any]) -> dict[str, Any]:
    handled = get_container().effects.dispatch(stream_changes(event))
    return {"handled": handled}


def clock_events(event: dict[str, Any]) -> dict[str, Any]:
    failures = []
    container = get_container()
    for message_id, body in sqs_bodies(event):
        try:
            if body.get("type") == "clock.breached":
                container.escalation.on_breach(Breach.from_message(body))
        except Exception:
            logger.exception("clock event %s failed", message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _outbox() -> OutboxService:
    container = get_container()
    settings = container.settings
    fallback = GenericCallbackSender(settings.webhook_callbacks, settings.webhook_secrets, UrllibHttpClient())
    return OutboxService(container.tickets, {}, fallback)


def outbox_sender(event: dict[str, Any]) -> dict[str, Any]:
    failures = []
    outbox = _outbox()
    for record in event.get("Records", []):
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        message_id, body = next(sqs_bodies({"Records": [record]}))
        try:
            outcome = outbox.deliver(
                str(body["ticket_id"]), str(body["message_id"]), final_attempt=receives >= OUTBOX_MAX_RECEIVES
            )
            if outcome.delivery == "retry":
                failures.append({"itemIdentifier": message_id})
        except Exception:
            logger.exception("outbox message %s failed", message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def reconcile_clocks() -> dict[str, Any]:
    fired = get_container().sweep.run()
    return {"fired": [f"{b.ticket_id}-{b.clock}-{b.version}" for b in fired]}
