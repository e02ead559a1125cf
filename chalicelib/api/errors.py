"""The one place domain errors become HTTP answers: `{"error": {"code", "message"}}` with a 4xx status."""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from chalice.app import Response

from ..domain.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationError,
)

logger = logging.getLogger("kefu.api")

STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (ValidationError, 400),
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (ConflictError, 409),
)
JSON = "application/json; charset=utf-8"

F = TypeVar("F", bound=Callable[..., Any])


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with UTF-8 text (Chinese stays readable)."""
    return Response(
        body=json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers={"Content-Type": JSON, "Cache-Control": "no-store", **(headers or {})},
    )


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def status_of(error: DomainError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def json_errors(view: F) -> F:
    """Wraps a view: DomainError → its 4xx JSON; anything unexpected → a logged 500 JSON (never HTML)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except DomainError as error:
            status = status_of(error)
            headers = {"WWW-Authenticate": 'Bearer realm="kefu"'} if status == 401 else None
            return error_response(status, error.code, error.message, headers)
        except Exception:
            logger.exception("unhandled error in %s", view.__name__)
            return error_response(500, "internal_error", "something went wrong on our side; it has been logged")

    return wrapper  # type: ignore[return-value]


def raw_body(request: Any) -> bytes:
    """The request body as bytes, whatever Chalice handed over."""
    body = request.raw_body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def json_body(raw: bytes | None) -> dict[str, Any]:
    """Parses a request body that must be a JSON object (an empty body is `{}`)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(value, dict):
        raise ValidationError("body must be a JSON object")
    return value


# Chalice answers some requests itself, before any view runs, as {"Code", "Message"}: these are their codes here.
CHALICE_ERROR_CODES = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "bad_request",
    "InternalServerError": "internal_error",
}


def contract_error_shape(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own error answers (405 wrong method, 415 unsupported Content-Type, …) get the
    `{"error": {"code", "message"}}` body every other error has; other responses pass through untouched."""
    response = get_response(request)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = CHALICE_ERROR_CODES.get(str(body["Code"]), "error")
        headers = {k: str(v) for k, v in (response.headers or {}).items() if k.lower() != "content-type"}
        return error_response(response.status_code, code, str(body["Message"]), headers)
    return response

