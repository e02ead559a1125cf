"""Customer-facing routes: ticket status lookup with the token issued at creation, and satisfaction surveys."""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from chalice.app import Blueprint, Response

from ..domain.errors import NotFound
from ..domain.ticket import is_ticket_id
from ..wiring import get_container
from .errors import json_body, json_errors, json_response, raw_body

bp = Blueprint(__name__)


@bp.route("/public/tickets/{ticket_id}", methods=["GET"])
@json_errors
def ticket_status(ticket_id: str) -> Response:
    params: Mapping[str, str] = bp.current_request.query_params or {}
    token = params.get("token", "")
    ticket = get_container().tickets.find(ticket_id) if is_ticket_id(ticket_id) and token else None
    # A wrong token and a missing ticket answer the same, so ids cannot be probed.
    if ticket is None or not hmac.compare_digest(ticket.public_token.encode(), token.encode()):
        raise NotFound("no such ticket, or the link is not valid")
    return json_response(ticket.public_view())


@bp.route("/public/surveys/{token}", methods=["GET"])
@json_errors
def survey(token: str) -> Response:
    """The survey behind a link the customer received: its question, scale and state."""
    return json_response(get_container().surveys.view(token))


@bp.route("/public/surveys/{token}", methods=["POST"])
@json_errors
def answer_survey(token: str) -> Response:
    """`{"score": 1..5, "comment": "…"}`, once per survey."""
    body = json_body(raw_body(bp.current_request))
    return json_response(get_container().surveys.answer(token, body))

