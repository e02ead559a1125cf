"""Tests of the triage classifier: hints, rules, model, determinism, retraining and the evaluation floor."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.ticket import CATEGORIES
from chalicelib.domain.triage.classifier import (
    Classification,
    Classifier,
    KeywordRule,
    classify,
    default_classifier,
    evaluate,
    is_chinese,
    is_negated,
    normalise,
    resolve_hint,
    tokenise,
)
from chalicelib.domain.triage.training_data import TRAINING_EXAMPLES

ROOT = Path(__file__).resolve().parents[3]
EVAL_FILE = ROOT / "tests" / "data" / "triage_eval.jsonl"
DOC_FILE = ROOT / "docs" / "TRIAGE.md"

# Measured 0.936 overall (0.946 zh, 0.900 en) — see docs/TRIAGE.md. The floors sit a little below.
ACCURACY_FLOOR = 0.90
ZH_ACCURACY_FLOOR = 0.90
EN_ACCURACY_FLOOR = 0.85


def load_eval() -> list[dict[str, object]]:
    return [json.loads(line) for line in EVAL_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the evaluation set ---------------------------------------------------------------------------------


def test_eval_set_is_large_enough_and_well_formed() -> None:
    rows = load_eval()
    zh = [r for r in rows if is_chinese(str(r["text"]))]
    en = [r for r in rows if not is_chinese(str(r["text"]))]
    assert len(zh) >= 200
    assert len(en) >= 50
    for row in rows:
        assert set(row) == {"text", "category", "urgent"}
        assert row["category"] in CATEGORIES
        assert isinstance(row["urgent"], bool)
        assert str(row["text"]).strip()
    for category in CATEGORIES:  # every class is represented in both languages
        assert sum(r["category"] == category for r in zh) >= 40
        assert sum(r["category"] == category for r in en) >= 10


def test_eval_set_is_independent_of_the_training_data() -> None:
    training = {normalise(text).strip() for text, _ in TRAINING_EXAMPLES}
    texts = [normalise(str(r["text"])).strip() for r in load_eval()]
    assert len(set(texts)) == len(texts), "duplicate texts in the eval set"
    assert not training & set(texts), "eval examples copied from training_data.py"


def test_accuracy_does_not_drop_below_the_recorded_floor() -> None:
    rows = load_eval()
    report = evaluate(rows)
    zh = evaluate([r for r in rows if is_chinese(str(r["text"]))])
    en = evaluate([r for r in rows if not is_chinese(str(r["text"]))])
    assert report.total == len(rows)
    assert report.accuracy >= ACCURACY_FLOOR, report.format()
    assert zh.accuracy >= ZH_ACCURACY_FLOOR, zh.format()
    assert en.accuracy >= EN_ACCURACY_FLOOR, en.format()
    for category, metrics in report.per_class.items():
        assert metrics.precision >= 0.8, (category, report.format())
        assert metrics.recall >= 0.8, (category, report.format())


def test_the_floor_matches_the_figure_documented_in_triage_md() -> None:
    doc = DOC_FILE.read_text(encoding="utf-8")
    match = re.search(r"ACCURACY_FLOOR = ([0-9.]+)", doc)
    assert match, "docs/TRIAGE.md must state the ACCURACY_FLOOR"
    assert float(match.group(1)) == ACCURACY_FLOOR


def test_evaluate_computes_precision_recall_and_counts() -> None:
    report = evaluate(
        [
            ("我要投诉你们的快递员", "complaint"),
            ("请问怎么申请退货", "after_sales"),
            ("建议增加夜间模式", "complaint"),  # predicted suggestion: a miss for complaint
        ]
    )
    assert report.total == 3
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.per_class["complaint"].count == 2
    assert report.per_class["complaint"].recall == pytest.approx(0.5)
    assert report.per_class["complaint"].precision == pytest.approx(1.0)
    assert report.per_class["suggestion"].precision == 0.0
    assert report.per_class["consultation"].count == 0
    assert report.confusion["complaint"]["suggestion"] == 1
    assert "accuracy 0.667 on 3 examples" in report.format()


# --- hints ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("complaint", "complaint"),
        ("after_sales", "after_sales"),
        (" Suggestion ", "suggestion"),
        ("投诉", "complaint"),
        ("售后", "after_sales"),
        ("咨询", "consultation"),
        ("建议", "suggestion"),
    ],
)
def test_a_valid_hint_wins_with_full_confidence(hint: str, expected: str) -> None:
    result = classify("我要投诉,你们的空调坏了三次", hint=hint)
    assert result == Classification(expected, 1.0, "hint", {c: float(c == expected) for c in CATEGORIES})


@pytest.mark.parametrize("hint", ["", "billing", "9", "complaints", "P0"])
def test_an_unknown_hint_is_ignored(hint: str) -> None:
    assert resolve_hint(hint) is None
    result = classify("请问你们周末几点开门", hint=hint)
    assert result.source in ("rules", "model")
    assert result.category == "consultation"


# --- rules and model ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我要投诉,买的空调坏了三次都没修好", "complaint"),  # explicit complaint outranks the repair
        ("请问怎么申请退货", "after_sales"),  # a how-to question about a return is after-sales
        ("空调不制冷,麻烦派师傅上门维修", "after_sales"),
        ("退款到现在还没到账", "after_sales"),
        ("客服态度太差了,一直敷衍我", "complaint"),
        ("给你们差评,欺骗消费者", "complaint"),
        ("建议app增加一个深色模式", "suggestion"),
        ("能不能增加一个按销量排序的功能", "suggestion"),
        ("请问这款电视多少钱", "consultation"),
        ("你们有没有儿童款", "consultation"),
        ("I want to complain: the repair took a month and it's still broken.", "complaint"),
        ("How do I return an item I bought online?", "after_sales"),
        ("Could you add a dark mode to the app?", "suggestion"),
        ("How much does the premium plan cost?", "consultation"),
        ("My kettle stopped working, I need a replacement.", "after_sales"),
    ],
)
def test_typical_messages(text: str, expected: str) -> None:
    result = classify(text)
    assert result.category == expected, result
    assert result.source in ("rules", "model")
    assert 0.0 < result.confidence <= 1.0


def test_a_negated_complaint_keyword_does_not_count_as_a_complaint() -> None:
    text = "我不是要投诉,只是想问问你们几点开门"
    assert is_negated(normalise(text), normalise(text).index("投诉"))
    assert classify(text).category == "consultation"
    assert classify("I'm not complaining, I just wonder how much the blue one is.").category == "consultation"


def test_an_explicit_complaint_is_confident_and_decided_by_the_rules() -> None:
    result = classify("我要投诉,买的空调坏了三次都没修好")
    assert result.source == "rules"
    assert result.confidence > 0.9
    assert result.scores["complaint"] > result.scores["after_sales"] > result.scores["suggestion"]


def test_scores_are_a_distribution_over_all_categories() -> None:
    result = classify("洗衣机漏水了怎么办")
    assert set(result.scores) == set(CATEGORIES)
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert result.confidence == max(result.scores.values())


def test_text_with_no_signal_falls_back_to_the_model_prior() -> None:
    for text in ("", "   ", "!!!", "12345"):
        result = classify(text)
        assert result.category in CATEGORIES
        assert result.source == "model"
        assert result.confidence == pytest.approx(0.25, abs=0.05)


def test_tokenise_uses_jieba_words_english_stems_and_bigrams() -> None:
    tokens = tokenise("空调坏了 Refunds")
    assert "w:空调" in tokens
    assert "b:调坏" in tokens
    assert "e:refund" in tokens
    assert tokenise("ＡＢＣ  hello") == ["e:abc", "e:hello"]  # full-width folded, no jieba for pure English


def test_classification_is_deterministic() -> None:
    rows = load_eval()[:80]
    first = [classify(str(r["text"])) for r in rows]
    fresh = Classifier(TRAINING_EXAMPLES)
    again = [fresh.classify(str(r["text"])) for r in rows]
    assert first == again
    assert classify("请问怎么申请退货") == classify("请问怎么申请退货")


def test_the_default_instance_is_built_once() -> None:
    assert default_classifier() is default_classifier()
    assert default_classifier().size == len(TRAINING_EXAMPLES)


# --- training -------------------------------------------------------------------------------------------


def test_train_adds_staff_overrides() -> None:
    model = Classifier(TRAINING_EXAMPLES, rules=())
    text = "宝宝奶瓶的奶嘴漏奶"
    before = model.classify(text)
    added = model.train([{"text": "奶嘴漏奶", "category": "after_sales"}] * 5 + [("奶瓶奶嘴漏奶了", "after_sales")])
    assert added == 6
    assert model.size == len(TRAINING_EXAMPLES) + 6
    after = model.classify(text)
    assert after.category == "after_sales"
    assert after.scores["after_sales"] > before.scores["after_sales"]


def test_an_untrained_classifier_still_answers_from_the_rules() -> None:
    model = Classifier()
    assert model.size == 0
    assert model.classify("我要投诉").category == "complaint"
    assert model.classify("hello").category in CATEGORIES


@pytest.mark.parametrize(
    "bad",
    [("text", "billing"), {"text": "hi"}, {"category": "complaint"}, (None, "complaint"), {"text": 3, "category": "x"}],
)
def test_train_rejects_malformed_examples(bad: object) -> None:
    with pytest.raises(ValidationError):
        Classifier().train([bad])  # type: ignore[list-item]


def test_custom_rules_are_validated_and_used() -> None:
    with pytest.raises(ValidationError):
        Classifier(rules=[KeywordRule("发票", "billing", 2.0)])
    model = Classifier(rules=[KeywordRule("发票", "suggestion", 5.0)])
    assert model.classify("发票").category == "suggestion"
    assert model.classify("发票").source == "rules"


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_classify_never_raises_and_returns_a_category(text: str) -> None:
    result = classify(text)
    assert result.category in CATEGORIES
    assert 0.0 <= result.confidence <= 1.0
    assert result.source in ("rules", "model")


_SIGNAL_CHARS = st.sampled_from(list("投诉退货建议请问坏了怎么急 ,.!?不没aZ"))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=_SIGNAL_CHARS, max_size=60), st.text(max_size=12))
def test_classify_with_any_hint_never_raises(text: str, hint: str) -> None:
    result = classify(text, hint=hint)
    assert result.category in CATEGORIES
    assert 0.0 <= result.confidence <= 1.0
