"""The live stack for end-to-end tests: `python -m local.run` (what `make run` runs) on free ports."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "e2e-local-jwt-secret-at-least-32-bytes"
SECRETS = {s: f"e2e-secret-{s}" for s in ("app", "miniprogram", "webchat", "store", "kiosk", "ivr", "douyin")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveStack:
    """A running local stack and helpers to talk to it the way channels and staff do."""

    base_url: str
    moto_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def token(self, staff_id: str, roles: list[str], ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {"sub": staff_id, "cognito:groups": roles, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    def http(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], str]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = dict(headers or {})
        if body is not None and raw is None:
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def webhook(self, source: str, payload: dict[str, Any], secret: str | None = None) -> tuple[int, str]:
        raw = json.dumps(payload, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        key = (secret or SECRETS[source]).encode()
        signature = hmac.new(key, timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        status, _, text = self.http(
            "POST",
            f"/webhooks/generic/{source}",
            raw=raw,
            headers={
                "Content-Type": "application/json",
                "X-Kefu-Timestamp": timestamp,
                "X-Kefu-Signature": f"v1={signature}",
            },
        )
        return status, text

    def create_ticket(self, text: str, source: str = "app") -> str:
        status, body = self.webhook(
            source,
            {
                "event_id": "e2e-" + uuid.uuid4().hex,
                "customer": {"external_id": "e2e-" + uuid.uuid4().hex[:10], "name": "测试客户"},
                "message": {"text": text},
            },
        )
        assert status == 200, body
        return str(json.loads(body)["ticket_id"])


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    api_port, moto_port = _free_port(), _free_port()
    policy = tmp_path_factory.mktemp("policy") / "sla.json"
    policy.write_text(json.dumps({"ack": "PT3S"}))
    env = dict(
        os.environ,
        KEFU_LOCAL_API_PORT=str(api_port),
        KEFU_LOCAL_MOTO_PORT=str(moto_port),
        KEFU_PUBLIC_BASE_URL=f"http://127.0.0.1:{api_port}",
        KEFU_AUTH_MODE="local",
        KEFU_LOCAL_JWT_SECRET=JWT_SECRET,
        KEFU_WEBHOOK_SECRETS=json.dumps(SECRETS),
        KEFU_SLA_POLICY_FILE=str(policy),
    )
    env.pop("AWS_ENDPOINT_URL", None)
    log_path = tmp_path_factory.mktemp("stack") / "local-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = LiveStack(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{moto_port}", process, log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"local stack exited {process.returncode}:\n{log_path.read_text()[-3000:]}")
        if "kefu is running" in log_path.read_text(errors="replace"):
            break
        time.sleep(0.3)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"local stack did not start:\n{log_path.read_text()[-3000:]}")
    try:
        yield stack
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can explain a failure at teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
