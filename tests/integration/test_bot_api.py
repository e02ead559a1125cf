"""POST /public/bot/ask: answers from published articles, or hands off to a human with exactly one ticket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.test import Client


def _ask(client: Any, body: Any) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return client.http.post("/public/bot/ask", body=raw, headers={"Content-Type": "application/json"})


def _json(response: Any) -> Any:
    return json.loads(response.body)


@pytest.fixture
def client(moto_stack: Any) -> Any:
    import app as kefu_app
    from chalicelib.services.knowledge import seed_demo_articles

    seed_demo_articles(moto_stack.container)
    with Client(kefu_app.app) as c:
        yield c


def _tickets(moto_stack: Any) -> list[Any]:
    return moto_stack.container.actions.list(status="", assignee="", limit=50, cursor=None).items


def test_a_known_question_is_answered_with_its_article(moto_stack: Any, client: Any) -> None:
    answer = _ask(client, {"question": "请问会员积分可以换优惠券吗?"})
    assert answer.status_code == 200, answer.body
    body = _json(answer)
    assert body["handoff"] is None and body["session_id"]
    assert body["answer"]["article_id"] == "faq-member-points"
    assert 0.45 <= body["answer"]["confidence"] <= 1.0 and "积分" in body["answer"]["text"]
    english = _json(_ask(client, {"question": "I forgot my password and cannot log in", "channel": "APP"}))
    assert english["answer"]["article_id"] == "faq-account-login"
    assert _tickets(moto_stack) == []


def test_hand_off_creates_exactly_one_ticket_even_when_retried(moto_stack: Any, client: Any) -> None:
    customer = {"phone": "+8613800138000", "name": "张三"}
    request = {"question": "我要转人工", "session_id": "sess-42", "customer": customer}
    first = _ask(client, request)
    assert first.status_code == 200, first.body
    handoff = _json(first)["handoff"]
    assert _json(first)["answer"] is None and handoff["reason"] == "asked_for_human"
    ticket_id = handoff["ticket_id"]
    assert ticket_id.startswith("WEBCHAT-20261123-")
    again = _json(_ask(client, request))
    assert again["handoff"]["ticket_id"] == ticket_id and again["handoff"]["status_url"] == handoff["status_url"]
    assert [t.id for t in _tickets(moto_stack)] == [ticket_id]

    ticket = moto_stack.container.actions.get(ticket_id)
    assert ticket.source == "bot" and [m.text for m in ticket.messages] == ["我要转人工"]
    assert [e.action for e in ticket.timeline].count("bot_handoff") == 1
    assert len(ticket.notes) == 1 and "asked_for_human" in ticket.notes[0].text

    status = client.http.get(handoff["status_url"].split("8000", 1)[1])
    assert status.status_code == 200 and _json(status)["id"] == ticket_id


def test_low_confidence_hands_off_with_the_bots_attempts_recorded(moto_stack: Any, client: Any) -> None:
    answer = _json(_ask(client, {"question": "你们公司的股票代码是多少", "channel": "miniprogram"}))
    assert answer["answer"] is None and answer["handoff"]["reason"] == "low_confidence"
    ticket = moto_stack.container.actions.get(answer["handoff"]["ticket_id"])
    assert ticket.channel == "MINIPROGRAM"
    customer = moto_stack.container.customers.get(ticket.customer_id)
    assert f"bot:{answer['session_id']}" in customer.identities  # an anonymous asker is their session
    assert "股票代码" in ticket.notes[0].text


def test_two_unanswered_questions_in_a_session_go_to_a_human(moto_stack: Any, client: Any) -> None:
    session = {"session_id": "web-7"}
    first = _json(_ask(client, {"question": "怎么申请退货", **session}))
    assert first["answer"]["article_id"] == "faq-returns"
    retried = _json(_ask(client, {"question": "怎么申请退货", **session}))
    assert retried["answer"]["article_id"] == "faq-returns"  # a retry is not a second question
    second = _json(_ask(client, {"question": "还是不行,退货到底怎么操作", **session}))
    assert second["answer"]["article_id"] == "faq-returns"  # first unanswered
    third = _json(_ask(client, {"question": "退货流程是什么,没看懂", **session}))
    assert third["answer"] is None and third["handoff"]["reason"] == "unresolved"
    ticket = moto_stack.container.actions.get(third["handoff"]["ticket_id"])
    assert ticket.notes[0].text.count("faq-returns") >= 2
    later = _json(_ask(client, {"question": "门店几点开门", **session}))
    assert later["handoff"]["ticket_id"] == ticket.id and later["handoff"]["reason"] == "already_handed_off"
    assert len(_tickets(moto_stack)) == 1


def test_draft_and_archived_articles_never_answer(moto_stack: Any, client: Any) -> None:
    knowledge = moto_stack.container.knowledge
    knowledge.create(
        {
            "id": "draft-drone",
            "title": "无人机飞行执照怎么考",
            "body": "草稿:还没审核的答案。",
            "questions": ["无人机飞行执照怎么考"],
        },
        "ops1",
    )
    answer = _json(_ask(client, {"question": "无人机飞行执照怎么考"}))
    assert answer["answer"] is None and answer["handoff"]["reason"] == "low_confidence"
    knowledge.archive("faq-store-hours", "ops1")
    hours = _json(_ask(client, {"question": "门店营业时间"}))
    assert hours["answer"] is None or hours["answer"]["article_id"] != "faq-store-hours"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "{broken",
        "[]",
        {},
        {"question": ""},
        {"question": "   "},
        {"question": "问" * 501},
        {"question": 42},
        {"question": "hi", "channel": "web chat!"},
        {"question": "hi", "session_id": "bad id with spaces"},
        {"question": "hi", "customer": "张三"},
        {"question": "hi", "customer": {"wechat": "x"}},
        {"question": "hi", "extra": True},
    ],
)
def test_bad_input_is_a_400(moto_stack: Any, client: Any, body: Any) -> None:
    answer = _ask(client, body)
    assert answer.status_code == 400, answer.body
    assert set(_json(answer)["error"]) == {"code", "message"}
    assert _tickets(moto_stack) == []
