"""QA review API: GET /api/qa/reviews?day= (the day's sample), POST /api/qa/reviews/{day}/{ticket_id} (scores)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..wiring import get_container
from .auth import TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:
    from ..services.tickets import Actor

bp = Blueprint(__name__)
QA_ROLES = frozenset({"qa", "supervisor", "manager", "admin"})


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor() -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), QA_ROLES)


@bp.route("/api/qa/reviews", methods=["GET"])
@json_errors
def list_reviews() -> Response:
    _actor()
    params: Mapping[str, str] = bp.current_request.query_params or {}
    qa = get_container().qa
    day = params.get("day") or qa.yesterday()
    reviews = qa.list(day, params.get("state", ""))
    return json_response({"day": day, "items": [r.to_json() for r in reviews]})


@bp.route("/api/qa/reviews/{day}/{ticket_id}", methods=["POST"])
@json_errors
def review(day: str, ticket_id: str) -> Response:
    actor = _actor()
    body = json_body(raw_body(bp.current_request))
    return json_response(get_container().qa.review(day, ticket_id, actor, body).to_json())
