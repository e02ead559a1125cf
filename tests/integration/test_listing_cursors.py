"""Every paged listing refuses a cursor it did not issue with a 400, before it reaches DynamoDB."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from chalice.test import Client


def _cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


FOREIGN = [
    _cursor({}),  # decodes, but is no start key at all
    _cursor({"pk": {"S": "TICKET#X"}, "sk": {"S": "META"}}),  # a table key where an index key is needed, or vice versa
    _cursor({"pk": {"S": "STAFF#someone-else"}, "sk": {"S": "NOTIFY#1"}, "x": {"N": "1"}}),
]


def _auth(container: Any, staff_id: str, roles: list[str]) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": roles, "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("cursor", FOREIGN)
@pytest.mark.parametrize(
    ("path", "staff_id", "roles"),
    [
        ("/api/tickets", "admin1", ["admin"]),
        ("/api/work-orders", "aftersales1", ["after_sales"]),
        ("/api/work-orders?status=open", "aftersales1", ["after_sales"]),
        ("/api/notifications", "agent1", ["agent"]),
    ],
)
def test_a_cursor_this_api_did_not_issue_is_a_400(
    moto_stack: Any, path: str, staff_id: str, roles: list[str], cursor: str
) -> None:
    import app as kefu_app

    separator = "&" if "?" in path else "?"
    with Client(kefu_app.app) as client:
        answer = client.http.get(
            f"{path}{separator}cursor={cursor}", headers=_auth(moto_stack.container, staff_id, roles)
        )
    assert answer.status_code == 400, answer.body
    assert json.loads(answer.body)["error"]["code"] == "invalid_input"
