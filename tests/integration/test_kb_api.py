"""Staff knowledge-base API: create, read, search, update with optimistic locking, archive; roles and audit."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from chalice.test import Client


def _auth(container: Any, staff_id: str = "ops1", roles: tuple[str, ...] = ("product_ops",)) -> dict[str, str]:
    token = jwt.encode(
        {"sub": staff_id, "cognito:groups": list(roles), "exp": int(time.time()) + 600},
        container.settings.local_jwt_secret,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _json(response: Any) -> Any:
    return json.loads(response.body)


ARTICLE = {
    "id": "faq-invoice",
    "title": "发票:如何开具电子发票",
    "body": "订单完成后在「订单详情-申请开票」开具电子发票,24 小时内发到邮箱。",
    "questions": ["怎么开发票", "how do i get an invoice"],
    "tags": ["发票", "invoice"],
    "category": "consultation",
    "channels": ["webchat", "APP"],
}


@pytest.fixture
def client(moto_stack: Any) -> Any:
    import app as kefu_app

    with Client(kefu_app.app) as c:
        yield c


def test_create_read_update_archive_with_audit(moto_stack: Any, client: Any) -> None:
    ops = _auth(moto_stack.container)
    created = client.http.post("/api/kb/articles", body=json.dumps(ARTICLE, ensure_ascii=False), headers=ops)
    assert created.status_code == 201, created.body
    article = _json(created)
    assert article["status"] == "draft" and article["version"] == 1 and article["channels"] == ["WEBCHAT", "APP"]
    assert article["created_by"] == article["updated_by"] == "ops1" and article["updated_at"].startswith("2026-11-23")

    again = client.http.post("/api/kb/articles", body=json.dumps(ARTICLE, ensure_ascii=False), headers=ops)
    assert again.status_code == 409 and _json(again)["error"]["code"] == "exists"

    moto_stack.clock.advance(minutes=5)
    senior = _auth(moto_stack.container, "senior1", ("senior_agent",))
    update = {"version": 1, "status": "published", "body": "电子发票在订单完成后 24 小时内发送到邮箱。"}
    raw = json.dumps(update, ensure_ascii=False)
    updated = client.http.put("/api/kb/articles/faq-invoice", body=raw, headers=senior)
    assert updated.status_code == 200, updated.body
    after = _json(updated)
    assert after["version"] == 2 and after["status"] == "published" and after["updated_by"] == "senior1"
    assert after["title"] == ARTICLE["title"] and after["created_by"] == "ops1"

    stale = client.http.put(
        "/api/kb/articles/faq-invoice", body=json.dumps({"version": 1, "title": "旧版本"}), headers=ops
    )
    assert stale.status_code == 409 and _json(stale)["error"]["code"] == "stale_version"

    archived = client.http.delete("/api/kb/articles/faq-invoice?version=2", headers=ops)
    assert archived.status_code == 200 and _json(archived)["status"] == "archived"
    assert _json(archived)["version"] == 3

    agent = _auth(moto_stack.container, "agent1", ("agent",))
    fetched = _json(client.http.get("/api/kb/articles/faq-invoice", headers=agent))
    assert fetched["status"] == "archived" and fetched["body"] == update["body"]  # kept, not destroyed
    assert [(h["revision"], h["action"], h["by"]) for h in fetched["history"]] == [
        (3, "archived", "ops1"),
        (2, "updated", "senior1"),
        (1, "created", "ops1"),
    ]
    listed = _json(client.http.get("/api/kb/articles", headers=agent))
    assert listed["items"] == []  # archived articles leave the default listing
    archived_list = _json(client.http.get("/api/kb/articles?status=archived", headers=agent))
    assert [a["id"] for a in archived_list["items"]] == ["faq-invoice"]


def test_roles_and_bad_input(moto_stack: Any, client: Any) -> None:
    body = json.dumps(ARTICLE, ensure_ascii=False)
    assert client.http.get("/api/kb/articles").status_code == 401
    assert client.http.post("/api/kb/articles", body=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    for role in ("agent", "qa", "engineer"):
        refused = client.http.post("/api/kb/articles", body=body, headers=_auth(moto_stack.container, "x", (role,)))
        assert refused.status_code == 403, role
    assert client.http.get("/api/kb/articles", headers=_auth(moto_stack.container, "qa1", ("qa",))).status_code == 200
    admin = _auth(moto_stack.container, "admin1", ("admin",))
    for bad in (
        {"title": "没有正文"},
        {"id": "Bad Id!", "title": "t", "body": "b"},
        {"title": "t", "body": "b", "category": "other"},
        {"title": "t", "body": "b", "status": "archived"},
        {"title": "t", "body": "b", "questions": "not a list"},
        {"title": "t", "body": "b", "channels": ["bad channel"]},
        {"title": "t", "body": "b", "colour": "blue"},
    ):
        answer = client.http.post("/api/kb/articles", body=json.dumps(bad, ensure_ascii=False), headers=admin)
        assert answer.status_code == 400 and "code" in _json(answer)["error"], (bad, answer.body)
    assert client.http.post("/api/kb/articles", body="{not json", headers=admin).status_code == 400
    assert client.http.get("/api/kb/articles/nope", headers=admin).status_code == 404
    assert client.http.put("/api/kb/articles/nope", body='{"version": 1}', headers=admin).status_code == 404
    created = client.http.post("/api/kb/articles", body=json.dumps({"title": "t", "body": "b"}), headers=admin)
    assert created.status_code == 201 and _json(created)["id"].startswith("kb-")
    article_id = _json(created)["id"]
    no_version = client.http.put(f"/api/kb/articles/{article_id}", body='{"title": "x"}', headers=admin)
    assert no_version.status_code == 400
    assert client.http.get("/api/kb/articles?limit=abc", headers=admin).status_code == 400
    assert client.http.get("/api/kb/articles?limit=0", headers=admin).status_code == 400
    assert client.http.get("/api/kb/articles?cursor=garbage!", headers=admin).status_code == 400
    assert client.http.get("/api/kb/articles?status=gone", headers=admin).status_code == 400


def test_search_and_pagination(moto_stack: Any, client: Any) -> None:
    from chalicelib.services.knowledge import seed_demo_articles

    assert len(seed_demo_articles(moto_stack.container)) == 12
    assert seed_demo_articles(moto_stack.container) == []  # idempotent
    agent = _auth(moto_stack.container, "agent1", ("agent",))
    found = _json(client.http.get("/api/kb/articles?q=积分怎么换优惠券", headers=agent))
    assert found["items"][0]["id"] == "faq-member-points" and found["next_cursor"] is None
    english = _json(client.http.get("/api/kb/articles?q=forgot%20my%20password", headers=agent))
    assert english["items"][0]["id"] == "faq-account-login"

    seen: list[str] = []
    cursor = ""
    for _page in range(10):
        page = _json(client.http.get(f"/api/kb/articles?limit=5{'&cursor=' + cursor if cursor else ''}", headers=agent))
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"] or ""
        if not cursor:
            break
    assert len(seen) == 12 and len(set(seen)) == 12
