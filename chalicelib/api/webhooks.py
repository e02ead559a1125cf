"""Channel webhooks: verify, parse, one idempotent write through intake, answer at once."""
from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from ..channels import generic
from ..wiring import get_container
from .errors import json_errors, json_response, raw_body

bp = Blueprint(__name__)
JSON_TYPES = ["application/json", "text/plain", "application/octet-stream"]


@bp.route("/webhooks/generic/{source}", methods=["POST"], content_types=JSON_TYPES)
@json_errors
def generic_webhook(source: str) -> Response:
    container = get_container()
    request = bp.current_request
    body = raw_body(request)
    now = container.clock.now()
    generic.verify(
        container.settings.webhook_secrets,
        source,
        dict(request.headers),
        body,
        now,
        container.settings.webhook_clock_skew,
    )
    message = generic.parse(source, body, now)
    result = container.intake.receive(message)
    answer: dict[str, Any] = {
        "ticket_id": result.ticket_id,
        "message_id": result.message_id,
        "duplicate": result.duplicate,
    }
    if result.public_token:
        answer["status_url"] = (
            f"{container.settings.public_base_url}/public/tickets/{result.ticket_id}?token={result.public_token}"
        )
    return json_response(answer)
