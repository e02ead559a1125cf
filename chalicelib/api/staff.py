"""The staff API under /api: tickets and their actions, the signed-in member, the staff directory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..channels.staff_logged import parse_staff_ticket
from ..domain.errors import PermissionDenied, ValidationError
from ..wiring import get_container
from .auth import ANY_STAFF, ASSIGNERS, WORKERS, TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:
    from ..services.tickets import Actor

bp = Blueprint(__name__)


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor(roles: Iterable[str] = ANY_STAFF) -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), roles)


@bp.route("/api/me", methods=["GET"])
@json_errors
def me() -> Response:
    actor = _actor()
    member = get_container().staff.get(actor.id)
    return json_response(
        {
            "id": actor.id,
            "roles": list(actor.roles),
            "name": member.name if member else actor.id,
            "team": member.team if member else "",
        }
    )


@bp.route("/api/staff", methods=["GET"])
@json_errors
def staff_list() -> Response:
    _actor()
    return json_response({"items": [s.to_json() for s in get_container().staff.all()]})


@bp.route("/api/tickets", methods=["GET"])
@json_errors
def list_tickets() -> Response:
    actor = _actor()
    params: Mapping[str, str] = bp.current_request.query_params or {}
    limit_text = params.get("limit", "50")
    if not limit_text.isdigit():
        raise ValidationError("limit must be a whole number")
    assignee = params.get("assignee", "")
    if assignee == "me":
        assignee = actor.id
    page = get_container().actions.list(
        status=params.get("status", ""), assignee=assignee, limit=int(limit_text), cursor=params.get("cursor")
    )
    return json_response({"items": [t.summary() for t in page.items], "next_cursor": page.next_cursor})


@bp.route("/api/tickets", methods=["POST"])
@json_errors
def create_ticket() -> Response:
    """A ticket logged by staff (walk-in, phone); `Idempotency-Key` makes a retried request land once."""
    actor = _actor(WORKERS)
    container = get_container()
    headers = {k.lower(): v for k, v in bp.current_request.headers.items()}
    message = parse_staff_ticket(_body(), actor.id, container.clock.now(), headers.get("idempotency-key", ""))
    result = container.intake.receive(message)
    return json_response(container.actions.get(result.ticket_id).to_json(), 200 if result.duplicate else 201)


@bp.route("/api/tickets/{ticket_id}", methods=["GET"])
@json_errors
def get_ticket(ticket_id: str) -> Response:
    _actor()
    return json_response(get_container().actions.get(ticket_id).to_json())


def _body() -> dict[str, object]:
    return json_body(raw_body(bp.current_request))


@bp.route("/api/tickets/{ticket_id}/ack", methods=["POST"])
@json_errors
def ack(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    _body()
    return json_response(get_container().actions.ack(ticket_id, actor).to_json())


@bp.route("/api/tickets/{ticket_id}/replies", methods=["POST"])
@json_errors
def reply(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    return json_response(get_container().actions.reply(ticket_id, actor, _body().get("text")).to_json(), 201)


@bp.route("/api/tickets/{ticket_id}/notes", methods=["POST"])
@json_errors
def note(ticket_id: str) -> Response:
    actor = _actor()
    return json_response(get_container().actions.note(ticket_id, actor, _body().get("text")).to_json(), 201)


@bp.route("/api/tickets/{ticket_id}/assign", methods=["POST"])
@json_errors
def assign(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    body = _body()
    if not ASSIGNERS.intersection(actor.roles) and body.get("assignee") != actor.id:
        raise PermissionDenied("only supervisors, managers and admins assign to others; you may take it yourself")
    return json_response(get_container().actions.assign(ticket_id, actor, body.get("assignee")).to_json())


@bp.route("/api/tickets/{ticket_id}/callback", methods=["POST"])
@json_errors
def callback_done(ticket_id: str) -> Response:
    """A survey scored 1–3 owes the customer a call from a supervisor: record its outcome."""
    actor = _actor(ASSIGNERS)
    return json_response(get_container().actions.callback_done(ticket_id, actor, _body().get("outcome")).to_json())


@bp.route("/api/tickets/{ticket_id}/status", methods=["POST"])
@json_errors
def set_status(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    return json_response(get_container().actions.set_status(ticket_id, actor, _body().get("status")).to_json())


@bp.route("/api/tickets/{ticket_id}/resolve", methods=["POST"])
@json_errors
def resolve(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    _body()
    return json_response(get_container().actions.resolve(ticket_id, actor).to_json())


@bp.route("/api/tickets/{ticket_id}/reopen", methods=["POST"])
@json_errors
def reopen(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    _body()
    return json_response(get_container().actions.reopen(ticket_id, actor).to_json())
