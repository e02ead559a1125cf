"""Parsing of Lambda event shapes (DynamoDB stream, SQS, SNS) into plain Python values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer

    from ..services.effects import Change


@cache
def _deserializer() -> TypeDeserializer:
    """boto3's attribute-value decoder, made on the first stream batch (boto3 is not imported with the app)."""
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB Decimals → int/float so the services see ordinary numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return value


def _image(raw: dict[str, Any] | None) -> dict[str, Any]:
    return {k: _plain(_deserializer().deserialize(v)) for k, v in (raw or {}).items()}


def stream_changes(event: dict[str, Any]) -> list[Change]:
    """A DynamoDB stream event → Changes (the same shape Lambda and the local pump deliver)."""
    from ..services.effects import Change

    changes = []
    for record in event.get("Records", []):
        data = record.get("dynamodb", {})
        changes.append(
            Change(
                event=record.get("eventName", ""), new=_image(data.get("NewImage")), old=_image(data.get("OldImage"))
            )
        )
    return changes


def sqs_bodies(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(messageId, JSON body) per SQS record; an SNS envelope (non-raw delivery) is unwrapped."""
    for record in event.get("Records", []):
        body = json.loads(record["body"])
        if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
            body = json.loads(body["Message"])
        yield record["messageId"], body
