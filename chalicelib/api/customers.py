"""Staff API for the unified customer: profile and tickets, merge/un-merge, and ticket link/unlink."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..config import Settings
from ..wiring import get_container
from .auth import ANY_STAFF, ASSIGNERS, WORKERS, TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:
    from ..services.tickets import Actor

bp = Blueprint(__name__)
# Merging people is a judgement call: senior agents and those who assign work.
MERGERS = ASSIGNERS | {"senior_agent"}
_verifiers: dict[int, tuple[Settings, TokenVerifier]] = {}


def _actor(roles: Iterable[str] = ANY_STAFF) -> Actor:
    settings = get_container().settings
    cached = _verifiers.get(id(settings))
    if cached is None or cached[0] is not settings:
        cached = (settings, TokenVerifier(settings))  # one per settings: the Cognito JWKS stays cached
        _verifiers.clear()
        _verifiers[id(settings)] = cached
    return require(cached[1], dict(bp.current_request.headers), roles)


def _body() -> dict[str, object]:
    return json_body(raw_body(bp.current_request))


@bp.route("/api/customers/{customer_id}", methods=["GET"])
@json_errors
def get_customer(customer_id: str) -> Response:
    _actor()
    return json_response(get_container().customer_admin.view(customer_id))


@bp.route("/api/customers/{customer_id}/merge", methods=["POST"])
@json_errors
def merge_customer(customer_id: str) -> Response:
    actor = _actor(MERGERS)
    return json_response(get_container().customer_admin.merge(customer_id, _body().get("into"), actor.id))


@bp.route("/api/customers/{customer_id}/unmerge", methods=["POST"])
@json_errors
def unmerge_customer(customer_id: str) -> Response:
    actor = _actor(MERGERS)
    _body()
    return json_response(get_container().customer_admin.unmerge(customer_id, actor.id))


@bp.route("/api/tickets/{ticket_id}/link", methods=["POST"])
@json_errors
def link_ticket(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    ticket = get_container().customer_admin.link(ticket_id, _body().get("ticket_id"), actor.id)
    return json_response(ticket.to_json())


@bp.route("/api/tickets/{ticket_id}/unlink", methods=["POST"])
@json_errors
def unlink_ticket(ticket_id: str) -> Response:
    actor = _actor(WORKERS)
    ticket = get_container().customer_admin.unlink(ticket_id, _body().get("ticket_id"), actor.id)
    return json_response(ticket.to_json())
