"""Handlers behind app.py's event sources: parse the event, call the service, report partial failures."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..wiring import get_container
from .events import sqs_bodies, stream_changes

if TYPE_CHECKING:
    from ..services.outbox import OutboxService

logger = logging.getLogger("kefu.jobs")
OUTBOX_MAX_RECEIVES = 4  # matches the queue's redrive maxReceiveCount (resources.QUEUES)
MAX_VISIBILITY = 900


def table_stream(event: dict[str, Any]) -> dict[str, Any]:
    handled = get_container().effects.dispatch(stream_changes(event))
    return {"handled": handled}


def clock_events(event: dict[str, Any]) -> dict[str, Any]:
    from ..services.clocks import Breach

    failures = []
    container = get_container()
    for message_id, body in sqs_bodies(event):
        try:
            if body.get("type") == "clock.breached":
                container.escalation.on_breach(Breach.from_message(body))
            elif body.get("type") in ("clock.warning", "clock.started"):
                container.escalation.on_notice(body)
        except Exception:
            logger.exception("clock event %s failed", message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _outbox() -> OutboxService:
    return get_container().outbox


def outbox_backoff(receives: int, base: int) -> int:
    """Seconds before the next try: base, 2·base, 4·base… (SQS caps a visibility timeout at 12 h; we at 15 min)."""
    return int(min(MAX_VISIBILITY, base * 2 ** max(0, receives - 1)))


def _delay_retry(record: dict[str, Any], seconds: int) -> None:
    """Keeps a failed message invisible for `seconds` (SQS then redelivers it, or dead-letters it)."""
    container = get_container()
    queue_name = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]
    try:
        container.aws.client("sqs").change_message_visibility(
            QueueUrl=container.aws.queue_url(queue_name),
            ReceiptHandle=record["receiptHandle"],
            VisibilityTimeout=seconds,
        )
    except Exception:  # the queue's own visibility timeout still applies: backoff is an optimisation
        logger.warning("could not delay outbox message %s", record.get("messageId"), exc_info=True)


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
                _delay_retry(record, outbox_backoff(receives, get_container().settings.outbox_backoff_base))
            elif outcome.dead_letter:  # retries exhausted: failing it once more hands it to the DLQ
                failures.append({"itemIdentifier": message_id})
                _delay_retry(record, 0)
        except Exception:
            logger.exception("outbox message %s failed", message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def reconcile_clocks() -> dict[str, Any]:
    fired = get_container().sweep.run()
    warned = get_container().sweep.last_warned
    return {"fired": [f"{b.ticket_id}-{b.clock}-{b.version}" for b in fired], "warned": warned}
