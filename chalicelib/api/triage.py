"""Triage and routing API: classification overrides, labelled data, rule tables, spend import, staff presence."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..domain.errors import NotFound, ValidationError
from ..wiring import get_container
from .auth import ANY_STAFF, TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:
    from ..services.tickets import Actor

bp = Blueprint(__name__)
# The triage and tier services (the classifier, rule tables…) are imported inside the views that use them,
# so registering these routes at a cold start costs nothing.

CLASSIFIERS = frozenset({"supervisor", "senior_agent", "manager", "admin", "agent"})
LABEL_READERS = frozenset({"admin", "qa"})
RULE_READERS = frozenset({"admin", "manager", "supervisor"})
RULE_EDITORS = frozenset({"admin"})
SPEND_IMPORTERS = frozenset({"admin", "manager", "product_ops"})
SPEND_TYPES = ["application/json", "text/csv", "text/plain"]
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor(roles: Iterable[str] = ANY_STAFF) -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), roles)


def _body() -> dict[str, object]:
    return json_body(raw_body(bp.current_request))


@bp.route("/api/tickets/{ticket_id}/classification", methods=["POST"])
@json_errors
def reclassify(ticket_id: str) -> Response:
    actor = _actor(CLASSIFIERS)
    return json_response(get_container().triage.reclassify(ticket_id, actor, _body()).to_json())


@bp.route("/api/triage/labels", methods=["GET"])
@json_errors
def labels() -> Response:
    _actor(LABEL_READERS)
    container = get_container()
    params: Mapping[str, str] = bp.current_request.query_params or {}
    month = params.get("month", "")
    if month:
        found = MONTH.match(month)
        if not found:
            raise ValidationError("month must be YYYY-MM")
        months = [found.group(1) + found.group(2)]
    else:
        from ..services.triage import LABEL_WINDOW_MONTHS, months_back

        months = months_back(container.clock.now(), LABEL_WINDOW_MONTHS)
    items = container.triage_store.labels(months)
    return json_response({"items": [label.to_json() for label in items], "months": months})


def _rules_response(name: str) -> Response:
    return json_response(get_container().rulebook.document(name))


def _replace_rules(name: str) -> Response:
    actor = _actor(RULE_EDITORS)
    body = _body()
    if "rules" not in body:
        raise ValidationError('body must be {"rules": [...]}')
    container = get_container()
    container.rulebook.replace(name, body["rules"], container.clock.now(), actor.id)
    return _rules_response(name)


@bp.route("/api/admin/routing-rules", methods=["GET"])
@json_errors
def get_routing_rules() -> Response:
    from ..services.triage import ROUTING_RULES

    _actor(RULE_READERS)
    return _rules_response(ROUTING_RULES)


@bp.route("/api/admin/routing-rules", methods=["PUT"])
@json_errors
def put_routing_rules() -> Response:
    from ..services.triage import ROUTING_RULES

    return _replace_rules(ROUTING_RULES)


@bp.route("/api/admin/priority-rules", methods=["GET"])
@json_errors
def get_priority_rules() -> Response:
    from ..services.triage import PRIORITY_RULES

    _actor(RULE_READERS)
    return _rules_response(PRIORITY_RULES)


@bp.route("/api/admin/priority-rules", methods=["PUT"])
@json_errors
def put_priority_rules() -> Response:
    from ..services.triage import PRIORITY_RULES

    return _replace_rules(PRIORITY_RULES)


@bp.route("/api/customers/spend", methods=["POST"], content_types=SPEND_TYPES)
@json_errors
def import_spend() -> Response:
    from ..services.tiers import parse_spend_body

    actor = _actor(SPEND_IMPORTERS)
    request = bp.current_request
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "application/json")
    records = parse_spend_body(raw_body(request), content_type)
    result = get_container().tiers.import_spend(records, actor)
    return json_response(result, 200 if result["duplicate"] else 201)


@bp.route("/api/staff/me/presence", methods=["PUT"])
@json_errors
def set_presence() -> Response:
    actor = _actor()
    online = _body().get("online")
    if not isinstance(online, bool):
        raise ValidationError("'online' must be true or false")
    container = get_container()
    container.triage_store.set_online(actor.id, online)
    member = container.staff.get(actor.id)
    if member is None:
        raise NotFound(f"no staff member {actor.id}")
    return json_response(member.to_json())
