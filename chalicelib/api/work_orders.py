"""The after-sales API: work orders from tickets, scheduling, status, parts, completion, devices and stock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response

from ..domain.errors import ValidationError
from ..domain.routing import ENGINEER
from ..domain.routing import WORK_ORDER_MANAGERS as MANAGERS
from ..wiring import get_container
from .auth import TokenVerifier, require
from .errors import json_body, json_errors, json_response, raw_body

if TYPE_CHECKING:  # the service (and the work-order domain) loads with the container, on the first request
    from ..services.tickets import Actor
    from ..services.work_orders import Outcome, WorkOrderService

bp = Blueprint(__name__)

AFTER_SALES = MANAGERS | {ENGINEER}  # engineers: only the orders assigned to them (checked by the service)
STOCK_KEEPERS = frozenset({"after_sales", "admin"})


@lru_cache(maxsize=1)
def _verifier() -> TokenVerifier:
    return TokenVerifier(get_container().settings)


def _actor(roles: Iterable[str] = AFTER_SALES) -> Actor:
    return require(_verifier(), dict(bp.current_request.headers), roles)


def _body() -> dict[str, object]:
    return json_body(raw_body(bp.current_request))


def _service() -> WorkOrderService:
    return get_container().work_orders


def _outcome(outcome: Outcome, status: int = 200) -> Response:
    body = _service().render(outcome.order)
    body["low_stock"] = [p.to_json() for p in outcome.low_stock]
    return json_response(body, status)


@bp.route("/api/tickets/{ticket_id}/work-orders", methods=["POST"])
@json_errors
def create_work_order(ticket_id: str) -> Response:
    actor = _actor(MANAGERS)
    service = _service()
    return json_response(service.render(service.create(ticket_id, actor, _body())), 201)


@bp.route("/api/work-orders", methods=["GET"])
@json_errors
def list_work_orders() -> Response:
    actor = _actor()
    params: Mapping[str, str] = bp.current_request.query_params or {}
    limit_text = params.get("limit", "50")
    if not limit_text.isdigit():
        raise ValidationError("limit must be a whole number")
    service = _service()
    page = service.list_page(
        actor,
        status=params.get("status", ""),
        engineer=params.get("engineer", ""),
        ticket_id=params.get("ticket", ""),
        limit=int(limit_text),
        cursor=params.get("cursor"),
    )
    return json_response({"items": [service.summary(o) for o in page.items], "next_cursor": page.next_cursor})


@bp.route("/api/work-orders/{work_order_id}", methods=["GET"])
@json_errors
def get_work_order(work_order_id: str) -> Response:
    return json_response(_service().view(work_order_id, _actor()))


@bp.route("/api/work-orders/{work_order_id}/schedule", methods=["POST"])
@json_errors
def schedule(work_order_id: str) -> Response:
    actor = _actor(MANAGERS)
    service = _service()
    return json_response(service.render(service.schedule(work_order_id, actor, _body())))


@bp.route("/api/work-orders/{work_order_id}/status", methods=["POST"])
@json_errors
def set_status(work_order_id: str) -> Response:
    actor = _actor()
    service = _service()
    return json_response(service.render(service.set_status(work_order_id, actor, _body())))


@bp.route("/api/work-orders/{work_order_id}/parts", methods=["POST"])
@json_errors
def reserve_parts(work_order_id: str) -> Response:
    actor = _actor()
    return _outcome(_service().reserve(work_order_id, actor, _body()), 201)


@bp.route("/api/work-orders/{work_order_id}/complete", methods=["POST"])
@json_errors
def complete(work_order_id: str) -> Response:
    actor = _actor()
    return _outcome(_service().complete(work_order_id, actor, _body()))


@bp.route("/api/devices/{serial}", methods=["GET"])
@json_errors
def get_device(serial: str) -> Response:
    _actor()
    service = _service()
    return json_response(service.device(serial).to_json(service.clock.now().astimezone(service.zone).date()))


@bp.route("/api/devices/{serial}", methods=["PUT"])
@json_errors
def put_device(serial: str) -> Response:
    _actor(MANAGERS)
    service = _service()
    device = service.put_device(serial, _body())
    return json_response(service.device(device.serial).to_json(service.clock.now().astimezone(service.zone).date()))


@bp.route("/api/parts", methods=["GET"])
@json_errors
def list_parts() -> Response:
    _actor()
    return json_response({"items": [p.to_json() for p in _service().store.list_parts()]})


@bp.route("/api/parts/{part_no}", methods=["GET"])
@json_errors
def get_part(part_no: str) -> Response:
    _actor()
    return json_response(_service().part(part_no).to_json())


@bp.route("/api/parts/{part_no}", methods=["PUT"])
@json_errors
def put_part(part_no: str) -> Response:
    _actor(STOCK_KEEPERS)
    return json_response(_service().put_part(part_no, _body()).to_json())


@bp.route("/public/tickets/{ticket_id}/work-order", methods=["GET"])
@json_errors
def public_progress(ticket_id: str) -> Response:
    """The customer's work order progress, behind the same token as GET /public/tickets/{id}."""
    params: Mapping[str, str] = bp.current_request.query_params or {}
    return json_response(_service().progress(ticket_id, params.get("token", "")))
