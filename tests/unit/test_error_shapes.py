"""Answers no view writes (unknown route, wrong method, unsupported Content-Type) have kefu's error shape too."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chalice.test import Client

from local.api_server import install


@pytest.fixture
def client() -> Iterator[Client]:
    import app

    install()  # what `make run` serves with: the deployed gateway's answer for an unknown route
    with Client(app.app) as test_client:
        yield test_client


def error_of(body: bytes) -> dict[str, str]:
    parsed = json.loads(body)
    assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message"}, parsed
    return dict(parsed["error"])


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/nope", {}), ("/api/nope/deeper", {}), ("/api/tickets/x/unknown-action", {"Authorization": "Bearer x"})],
)
def test_an_unknown_route_is_404_not_found(client: Client, path: str, headers: dict[str, str]) -> None:
    response = client.http.get(path, headers=headers)
    assert response.status_code == 404
    assert error_of(response.body)["code"] == "not_found"


def test_a_wrong_method_is_405_with_allow(client: Client) -> None:
    response = client.http.delete("/api/tickets")
    assert response.status_code == 405
    assert error_of(response.body)["code"] == "method_not_allowed"
    assert "GET" in response.headers.get("Allow", "")
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path", ["/api/tickets", "/webhooks/generic/app", "/public/bot/ask"])
def test_an_unsupported_content_type_is_415(client: Client, path: str) -> None:
    response = client.http.post(path, headers={"Content-Type": "application/xml"}, body=b"<x/>")
    assert response.status_code == 415
    assert error_of(response.body)["code"] == "unsupported_media_type"


def test_install_is_idempotent() -> None:
    import chalice.local

    install()
    handler = chalice.local.LocalGateway.handle_request
    install()
    assert chalice.local.LocalGateway.handle_request is handler
