"""Shared fixtures: in-process moto with every kefu resource, a controllable clock, and a wired container."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

# Never reach real AWS from a test, whatever the developer's shell has.
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", TZ="UTC"
)


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@dataclass
class MotoStack:
    """In-process moto with kefu's resources bootstrapped, and a container wired to it."""

    container: Any
    stack: Any
    clock: FixedClock
    aws: Any

    def pump(self, handlers: dict[str, Any] | None = None) -> Any:
        """An EventPump over this stack calling app.py's handlers (import app lazily)."""
        import app as kefu_app
        from chalicelib import resources
        from local.pump import EventPump

        names = ("table_stream", "inbound_email", *{q.handler for q in resources.QUEUES}, *resources.SCHEDULES)
        table = handlers or {n: getattr(kefu_app, n) for n in names if hasattr(kefu_app, n)}
        return EventPump(self.aws, self.stack, table)


def make_settings(**overrides: Any) -> Any:
    from chalicelib.config import Settings

    base: dict[str, Any] = {
        "region": "us-east-1",
        "account_id": "123456789012",
        "auth_mode": "local",
        "local_jwt_secret": "test-jwt-secret-that-is-long-enough",
        "webhook_secrets": {"app": "test-secret-app", "store": "test-secret-store", "douyin": "test-secret-douyin"},
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai, a Monday


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_api(base: str, path: str, body: dict[str, Any] | None = None) -> None:
    import json
    import urllib.request

    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(
        base + path, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server per test process (server mode: it has DynamoDB Streams, which in-process moto lacks)."""
    from moto.server import ThreadedMotoServer

    from local.moto_speedups import install

    install()  # moto without whole-table copies and sorts per request (this process's, so the server's too)
    port = _free_port()
    os.environ["MOTO_PORT"] = str(port)  # Step Functions service integrations call back to this port
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_stack(moto_server: str, clock: FixedClock, request: pytest.FixtureRequest) -> Iterator[MotoStack]:
    """A fresh moto (reset per test) with every kefu resource, Step Functions execution on, and a container.

    Override settings with @pytest.mark.settings(...)."""
    from chalicelib.adapters.aws import AwsClients
    from chalicelib.wiring import Container, set_container
    from local.bootstrap import bootstrap

    _moto_api(moto_server, "/moto-api/reset")
    _moto_api(moto_server, "/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
    marker = request.node.get_closest_marker("settings")
    settings = make_settings(endpoint_url=moto_server, **(marker.kwargs if marker else {}))
    aws = AwsClients(settings.region, settings.endpoint_url, settings.account_id)
    stack = bootstrap(aws, settings.table_name)
    container = Container(settings, clock)
    set_container(container)
    try:
        yield MotoStack(container, stack, clock, aws)
    finally:
        set_container(None)
