"""Knowledge-base routes: staff edit articles under /api/kb; customers ask the FAQ bot at /public/bot/ask."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

KB_EDITORS = frozenset({"admin", "product_ops", "supervisor", "senior_agent"})


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor(roles: Iterable[str] = ANY_STAFF) -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), roles)


def _body() -> dict[str, object]:
    return json_body(raw_body(bp.current_request))


def _params() -> Mapping[str, str]:
    return bp.current_request.query_params or {}


def _whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValidationError(f"'{name}' must be a whole number")
    return int(text)


@bp.route("/api/kb/articles", methods=["GET"])
@json_errors
def list_articles() -> Response:
    _actor()
    params = _params()
    items, next_cursor = get_container().knowledge.list(
        q=params.get("q", "").strip(),
        status=params.get("status", ""),
        category=params.get("category", ""),
        limit=_whole(params.get("limit", "50"), "limit"),
        cursor=params.get("cursor") or None,
    )
    return json_response({"items": items, "next_cursor": next_cursor})


@bp.route("/api/kb/articles", methods=["POST"])
@json_errors
def create_article() -> Response:
    actor = _actor(KB_EDITORS)
    return json_response(get_container().knowledge.create(_body(), actor.id).to_json(), 201)


@bp.route("/api/kb/articles/{article_id}", methods=["GET"])
@json_errors
def get_article(article_id: str) -> Response:
    _actor()
    service = get_container().knowledge
    article = service.get(article_id)
    return json_response({**article.to_json(), "history": service.history(article_id)})


@bp.route("/api/kb/articles/{article_id}", methods=["PUT"])
@json_errors
def update_article(article_id: str) -> Response:
    actor = _actor(KB_EDITORS)
    return json_response(get_container().knowledge.update(article_id, _body(), actor.id).to_json())


@bp.route("/api/kb/articles/{article_id}", methods=["DELETE"])
@json_errors
def archive_article(article_id: str) -> Response:
    actor = _actor(KB_EDITORS)
    version_text = _params().get("version", "")
    version = _whole(version_text, "version") if version_text else None
    return json_response(get_container().knowledge.archive(article_id, actor.id, version).to_json())


@bp.route("/public/bot/ask", methods=["POST"])
@json_errors
def bot_ask() -> Response:
    """No staff token: a customer's question → an answer from a published article, or a hand-off ticket."""
    return json_response(get_container().knowledge.ask(_body()))
