"""Staff in-app notifications: GET /api/notifications (the signed-in member's, newest first), POST …/{id}/read."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..domain.errors import ValidationError
from ..wiring import get_container
from .auth import ANY_STAFF, TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:
    from ..services.tickets import Actor

bp = Blueprint(__name__)


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor() -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), ANY_STAFF)


@bp.route("/api/notifications", methods=["GET"])
@json_errors
def list_notifications() -> Response:
    actor = _actor()
    params: Mapping[str, str] = bp.current_request.query_params or {}
    limit_text = params.get("limit", "20")
    if not limit_text.isdigit():
        raise ValidationError("limit must be a whole number")
    page = get_container().notifications.list(actor.id, limit=int(limit_text), cursor=params.get("cursor"))
    return json_response({"items": [n.to_json() for n in page.items], "next_cursor": page.next_cursor})


@bp.route("/api/notifications/{notification_id}/read", methods=["POST"])
@json_errors
def read_notification(notification_id: str) -> Response:
    actor = _actor()
    json_body(raw_body(bp.current_request))  # an empty body or a JSON object; anything else is a 400
    return json_response(get_container().notifications.mark_read(actor.id, notification_id).to_json())
