"""Tests of urgency detection: keyword reasons, negations, repeat/VIP complaints and the channel flag."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.triage.urgency import REASONS, URGENCY_KEYWORDS, Urgency, detect_urgency, keyword_reasons

EVAL_FILE = Path(__file__).resolve().parents[2] / "data" / "triage_eval.jsonl"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("家里的热水器起火了!", "safety"),
        ("插座一直冒烟,还有焦味", "safety"),
        ("洗衣机漏电,我被电了一下", "safety"),
        ("充电宝爆炸了", "safety"),
        ("孩子被货架砸伤了", "safety"),
        ("闻到很重的煤气味,怀疑燃气泄漏", "safety"),
        ("The charger caught fire last night", "safety"),
        ("There is smoke coming out of the dryer", "safety"),
        ("My son got an electric shock from the lamp", "safety"),
        ("Someone was injured by the falling shelf", "safety"),
        ("I smell a gas leak near the new boiler", "safety"),
        ("我已经找了律师", "legal"),
        ("再不退钱我就起诉你们", "legal"),
        ("我要打12315", "legal"),
        ("我去消协反映", "legal"),
        ("我会向工商局举报", "legal"),
        ("You'll hear from my lawyer.", "legal"),
        ("I am going to sue your company.", "legal"),
        ("我要在网上曝光你们", "media"),
        ("我会联系媒体和记者", "media"),
        ("我要发微博让大家看看", "media"),
        ("已经发到抖音上了,等着上热搜吧", "media"),
        ("I'm contacting a journalist about this.", "media"),
        ("I will go public with this on social media.", "media"),
        ("工厂停产了,每小时损失好几万", "major_loss"),
        ("Our production line is down because of your part.", "major_loss"),
        ("紧急!订单地址填错了", "explicit"),
        ("急急急,今天必须收到", "explicit"),
        ("我很着急,请快点回复", "explicit"),
        ("Urgent: please call me back", "explicit"),
        ("Need this fixed ASAP", "explicit"),
        ("This is an emergency", "explicit"),
    ],
)
def test_keyword_positives(text: str, reason: str) -> None:
    result = detect_urgency(text, category="complaint", tier="normal")
    assert result.urgent
    assert reason in result.reasons, result
    assert result.evidence


@pytest.mark.parametrize(
    "text",
    [
        "不急,你们慢慢处理就好",
        "这个不着急,下周回复也行",
        "事情并不紧急",
        "不是很急,有空再看",
        "没那么急",
        "没有冒烟,也没有起火,就是不转了",
        "没有人受伤,只是门坏了",
        "请问你们有官方客服电话吗",
        "建议增加夜间配送",
        "我想把外套换成大一码的",
        "Not urgent, whenever you have time.",
        "No rush, it's not an emergency.",
        "Nobody was hurt, but the shelf fell over.",
        "Could you tell me the price of the blue kettle?",
        "Please press the reset button for five seconds.",  # "press" is not the press
        "The fireplace screen arrived scratched.",  # "fire" only as a word of its own
    ],
)
def test_keyword_negatives(text: str) -> None:
    result = detect_urgency(text, category="consultation", tier="normal")
    assert result == Urgency(False, (), ()), result


def test_a_negated_mention_does_not_hide_a_real_one() -> None:
    result = detect_urgency("不急着回复我,但是插座冒烟了", category="after_sales", tier="normal")
    assert result.urgent
    assert result.reasons == ("safety",)


@pytest.mark.parametrize(
    ("kwargs", "urgent", "reasons"),
    [
        ({"recent_complaints": 2}, True, ("repeat_complaint",)),
        ({"recent_complaints": 5}, True, ("repeat_complaint",)),
        ({"recent_complaints": 1}, False, ()),
        ({"channel_flag": True}, True, ("channel_flag",)),
        ({"tier": "vip", "category": "complaint"}, True, ("vip_complaint",)),
        ({"tier": "vip", "category": "consultation"}, False, ()),
        ({"tier": "member", "category": "complaint"}, False, ()),
    ],
)
def test_context_reasons(kwargs: dict[str, object], urgent: bool, reasons: tuple[str, ...]) -> None:
    args: dict[str, object] = {"category": "after_sales", "tier": "normal", **kwargs}
    result = detect_urgency("订单什么时候发货", **args)  # type: ignore[arg-type]
    assert result.urgent is urgent
    assert result.reasons == reasons


def test_reasons_come_in_a_fixed_order_without_duplicates() -> None:
    result = detect_urgency(
        "紧急!热水器冒烟起火了,再不处理我就找记者曝光,还要起诉你们",
        category="complaint",
        tier="vip",
        channel_flag=True,
        recent_complaints=3,
    )
    assert result.reasons == (
        "safety",
        "legal",
        "media",
        "explicit",
        "repeat_complaint",
        "vip_complaint",
        "channel_flag",
    )
    assert set(result.reasons) <= set(REASONS)
    assert {"冒烟", "起火", "记者", "曝光", "起诉", "紧急"} <= set(result.evidence)


def test_acceptance_vip_complaint_on_wechat_with_exposure_threat() -> None:
    result = detect_urgency("你们再不处理我就去网上曝光", category="complaint", tier="vip")
    assert result.urgent
    assert result.reasons == ("media", "vip_complaint")


def test_unknown_category_or_tier_is_rejected() -> None:
    with pytest.raises(ValidationError):
        detect_urgency("x", category="billing", tier="normal")
    with pytest.raises(ValidationError):
        detect_urgency("x", category="complaint", tier="gold")


def test_every_reason_with_keywords_is_a_known_reason() -> None:
    assert set(URGENCY_KEYWORDS) <= set(REASONS)


def test_urgency_on_the_eval_set() -> None:
    rows = [json.loads(line) for line in EVAL_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    flagged = [(bool(keyword_reasons(r["text"])[0]), r["urgent"]) for r in rows]
    tp = sum(p and t for p, t in flagged)
    fp = sum(p and not t for p, t in flagged)
    fn = sum(t and not p for p, t in flagged)
    assert sum(t for _, t in flagged) >= 20
    assert tp / (tp + fp) >= 0.9, (tp, fp, fn)
    assert tp / (tp + fn) >= 0.9, (tp, fp, fn)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=-3, max_value=10), st.booleans())
def test_detect_urgency_never_raises(text: str, recent: int, flag: bool) -> None:
    result = detect_urgency(text, category="complaint", tier="normal", channel_flag=flag, recent_complaints=recent)
    assert result.urgent == bool(result.reasons)
    assert set(result.reasons) <= set(REASONS)
