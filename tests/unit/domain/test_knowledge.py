"""The knowledge domain: BM25 ranking of paraphrased questions, confidence bounds, hand-off rules, validation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.knowledge import (
    Article,
    BotSession,
    KnowledgeIndex,
    Turn,
    apply_changes,
    decide,
    new_article,
    question_hash,
    says_unhelpful,
    wants_human,
)
from chalicelib.services.knowledge import DEMO_ARTICLES


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    articles = [new_article(str(d["id"]), {**d, "status": "published"}) for d in DEMO_ARTICLES]
    return KnowledgeIndex(articles)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("快递到哪了,三天没动静", "faq-logistics"),
        ("我买的东西怎么还没发出来", "faq-logistics"),
        ("积分能换什么东西", "faq-member-points"),
        ("衣服不合适想退掉", "faq-returns"),
        ("退款什么时候到账", "faq-returns"),
        ("洗衣机坏了保修吗", "faq-warranty"),
        ("公司报销需要开增值税发票", "faq-invoice"),
        ("空调买了什么时候来装", "faq-installation"),
        ("你们店晚上几点关门", "faq-store-hours"),
        ("地址写错了能改吗", "faq-change-address"),
        ("钱扣了两次", "faq-payment"),
        ("优惠券结算的时候用不了", "faq-coupons"),
        ("密码忘了登不上去", "faq-account-login"),
        ("我要投诉你们的服务", "faq-complaints"),
        ("Where is my package? It has not arrived", "faq-logistics"),
        ("How can I get my money back for a return?", "faq-returns"),
        ("What time does your store open on Sunday?", "faq-store-hours"),
        ("I forgot my password and cannot login", "faq-account-login"),
        ("Can I use two coupons on one order?", "faq-coupons"),
        ("Is the installation free of charge?", "faq-installation"),
        ("I need a VAT invoice for my company", "faq-invoice"),
    ],
)
def test_paraphrased_questions_rank_the_right_article(index: KnowledgeIndex, question: str, expected: str) -> None:
    matches = index.search(question)
    assert matches and matches[0].article.id == expected
    assert all(0.0 <= m.confidence <= 1.0 and 0.0 <= m.coverage <= 1.0 for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_close_paraphrases_clear_the_default_threshold(index: KnowledgeIndex) -> None:
    for question in ("退款什么时候到账", "优惠券结算的时候用不了", "how do I redeem my points", "你们店晚上几点关门"):
        assert index.search(question)[0].confidence >= 0.45, question


@pytest.mark.parametrize(
    "question",
    ["你们公司的股票代码是多少", "今天天气怎么样", "可以帮我写一首诗吗", "What is the meaning of life?", "asdfgh"],
)
def test_off_topic_questions_stay_below_the_threshold(index: KnowledgeIndex, question: str) -> None:
    matches = index.search(question)
    assert not matches or matches[0].confidence < 0.45


def test_confidence_bounds_and_edge_cases() -> None:
    empty = KnowledgeIndex([])
    assert empty.search("积分") == [] and len(empty) == 0
    one = KnowledgeIndex([Article(id="a1", title="积分兑换", body="积分兑换优惠券", questions=["积分怎么兑换"])])
    exact = one.search("积分兑换")
    assert exact[0].confidence == 1.0 and exact[0].coverage == 1.0
    twins = KnowledgeIndex(
        [Article(id=f"t{i}", title="积分兑换", body="积分兑换优惠券") for i in (1, 2)]
    ).search("积分兑换")
    assert 0.0 < twins[0].confidence < exact[0].confidence  # a tie with the runner-up lowers confidence
    assert one.search("的 了 吗") == []  # stop words only


def test_channel_restricted_articles_only_answer_on_their_channels() -> None:
    index = KnowledgeIndex([Article(id="app-only", title="积分兑换", body="积分兑换", channels=["APP"])])
    assert index.search("积分兑换", channel="APP")[0].article.id == "app-only"
    assert index.search("积分兑换", channel="WECHAT") == []


@pytest.mark.parametrize(
    "text",
    ["转人工", "我要人工客服!", "人工", "找客服", "帮我接人工", "能不能找个真人", "I want to talk to a human",
     "agent please", "Can I speak to a representative?", "转 人 工"[0:1] + "人工服务"],
)
def test_asking_for_a_human_is_detected(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize(
    "text",
    ["不用转人工,我自己看看", "不需要人工客服", "人工智能能帮我查物流吗", "安装要收人工费吗", "I don't need a human",
     "where is my parcel", "积分怎么兑换", "no agent needed"],
)
def test_not_asking_for_a_human(text: str) -> None:
    assert not wants_human(text)


def test_unhelpful_feedback() -> None:
    assert says_unhelpful("还是不行") and says_unhelpful("this didn't help") and says_unhelpful("答非所问")
    assert not says_unhelpful("谢谢,解决了") and not says_unhelpful("thanks, that helped")


def test_decide_follows_the_hand_off_rules(index: KnowledgeIndex) -> None:
    session = BotSession(id="s1")
    points = index.search("积分怎么兑换")
    assert decide(session, "积分怎么兑换", points, 0.45).handoff is False
    assert decide(session, "积分怎么兑换,转人工", points, 0.45).reason == "asked_for_human"
    unsure = [replace(points[0], confidence=0.3)]
    assert decide(session, "积分怎么兑换", unsure, 0.45).reason == "low_confidence"
    assert decide(session, "xyz", [], 0.45).reason == "low_confidence"
    given = Turn(question_hash="h1", question="积分怎么兑换", at="", outcome="answered", article_id="faq-member-points")
    session.turns.append(given)
    once = decide(session, "积分到底怎么换", points, 0.45)
    assert once.handoff is False and once.unanswered is True
    session.turns.append(Turn(question_hash="h2", question="q", at="", outcome="answered", unanswered=True,
                              article_id="faq-member-points"))
    assert decide(session, "积分到底怎么换啊", points, 0.45).reason == "unresolved"
    assert decide(BotSession(id="s2", ticket_id="WEBCHAT-20261123-000001"), "积分", points, 0.45).reason == (
        "already_handed_off"
    )


def test_question_hash_ignores_spacing_and_width() -> None:
    assert question_hash("积分 怎么兑换?") == question_hash("积分怎么兑换?")
    assert question_hash("积分怎么兑换") != question_hash("优惠券怎么用")


def test_article_validation() -> None:
    article = new_article("faq-x", {"title": "标题", "body": "正文", "channels": ["app"], "tags": ["a", "a", " "]})
    assert article.channels == ["APP"] and article.tags == ["a"] and article.status == "draft"
    with pytest.raises(ValidationError):
        new_article("X", {"title": "t", "body": "b"})
    with pytest.raises(ValidationError):
        new_article("faq-y", {"title": "t"})
    for bad in ({"status": "archived"}, {"category": "x"}, {"title": ""}, {"questions": [1]}, {"nope": 1},
                {"body": "x" * 10_001}, {"channels": ["no way"]}):
        with pytest.raises(ValidationError):
            apply_changes(article, bad)
    assert apply_changes(article, {"status": "published"}).status == "published" and article.status == "draft"
