"""`chalice local` answering like the deployed API Gateway: an unknown route is a 404 in kefu's error shape."""

from __future__ import annotations

import sys
from typing import Any

import chalice.local as chalice_local

# The body infra/ configures as the gateway response for MISSING_AUTHENTICATION_TOKEN / INVALID_SIGNATURE.
NO_ROUTE_BODY = b'{"error": {"code": "not_found", "message": "no such route"}}'
UNKNOWN_ROUTE_MARKERS = (b"Missing Authentication Token", b"Authorization header requires")


class RouteNotFound(chalice_local.LocalGatewayException):
    """No route matches the method and path."""

    CODE = 404


def install() -> None:
    """Makes chalice.local's gateway answer an unmatched route with 404 and NO_ROUTE_BODY (idempotent)."""
    gateway: Any = chalice_local.LocalGateway
    if getattr(gateway, "kefu_route_not_found", False):
        return
    original = gateway.handle_request

    def handle_request(self: Any, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            return original(self, method, path, headers, body)
        except chalice_local.ForbiddenError as error:
            if error.body and any(marker in error.body for marker in UNKNOWN_ROUTE_MARKERS):
                raise RouteNotFound({"Content-Type": "application/json"}, NO_ROUTE_BODY) from None
            raise

    gateway.handle_request = handle_request
    gateway.kefu_route_not_found = True


def main(argv: list[str]) -> int:
    """`python -m local.api_server <chalice local options>`: `chalice local` with install() applied."""
    install()
    from chalice.cli import main as chalice_main

    sys.argv = ["chalice", "local", *argv]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
