"""Tests of the priority rules table: defaults, first-match order, custom tables and JSON validation."""
from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.ticket import CATEGORIES, PRIORITIES, TIERS
from chalicelib.domain.triage import classify, decide_priority, detect_urgency
from chalicelib.domain.triage.priority import (
    PRIORITY_RULES,
    PriorityDecision,
    PriorityRule,
    rules_from_json,
    rules_to_json,
)


@pytest.mark.parametrize(
    ("kwargs", "priority", "rule"),
    [
        ({"category": "consultation", "tier": "normal", "urgent": True}, "P0", "urgent"),
        (
            {"category": "consultation", "tier": "normal", "urgent": False, "urgency_reasons": ("safety",)},
            "P0",
            "critical_reason",
        ),
        (
            {"category": "suggestion", "tier": "normal", "urgent": False, "urgency_reasons": ("media",)},
            "P0",
            "critical_reason",
        ),
        (
            {"category": "after_sales", "tier": "member", "urgent": False, "urgency_reasons": ("legal",)},
            "P0",
            "critical_reason",
        ),
        ({"category": "complaint", "tier": "vip", "urgent": False}, "P0", "vip_complaint"),
        ({"category": "complaint", "tier": "normal", "urgent": False}, "P1", "complaint"),
        ({"category": "complaint", "tier": "member", "urgent": False}, "P1", "complaint"),
        ({"category": "after_sales", "tier": "normal", "urgent": False}, "P1", "after_sales"),
        ({"category": "consultation", "tier": "vip", "urgent": False}, "P1", "vip"),
        ({"category": "suggestion", "tier": "vip", "urgent": False}, "P1", "vip"),
        ({"category": "consultation", "tier": "normal", "urgent": False, "order_value": 5e3}, "P1", "high_value_order"),
        ({"category": "consultation", "tier": "normal", "urgent": False, "order_value": 4999.99}, "P2", "default"),
        ({"category": "consultation", "tier": "normal", "urgent": False}, "P2", "default"),
        ({"category": "suggestion", "tier": "member", "urgent": False}, "P2", "default"),
        (
            {"category": "consultation", "tier": "normal", "urgent": False, "urgency_reasons": ("repeat_complaint",)},
            "P2",
            "default",
        ),
    ],
)
def test_default_table(kwargs: dict[str, Any], priority: str, rule: str) -> None:
    assert decide_priority(**kwargs) == PriorityDecision(priority, rule)


def test_every_combination_gets_a_priority() -> None:
    for category in CATEGORIES:
        for tier in TIERS:
            for urgent in (False, True):
                decision = decide_priority(category=category, tier=tier, urgent=urgent)
                assert decision.priority in PRIORITIES
                assert decision.rule_name != "fallback"
                if urgent:
                    assert decision.priority == "P0"
                if tier == "vip" or category in ("complaint", "after_sales"):
                    assert decision.priority in ("P0", "P1")


def test_acceptance_vip_complaint_on_wechat_with_exposure_is_p0_and_urgent() -> None:
    text = "你们的客服太敷衍了,再不给我解决我就去网上曝光你们"
    classification = classify(text, hint="")
    assert classification.category == "complaint"
    urgency = detect_urgency(text, category=classification.category, tier="vip")
    assert urgency.urgent
    assert "media" in urgency.reasons and "vip_complaint" in urgency.reasons
    decision = decide_priority(
        category=classification.category, tier="vip", urgent=urgency.urgent, urgency_reasons=urgency.reasons
    )
    assert decision == PriorityDecision("P0", "urgent")


def test_first_match_wins_in_a_custom_table() -> None:
    rules = (
        PriorityRule("suggestions_low", "P2", categories=("suggestion",)),
        PriorityRule("urgent", "P0", urgent=True),
        PriorityRule("rest", "P1"),
    )
    assert decide_priority(category="suggestion", tier="vip", urgent=True, rules=rules) == PriorityDecision(
        "P2", "suggestions_low"
    )
    assert decide_priority(category="complaint", tier="normal", urgent=True, rules=rules).rule_name == "urgent"
    assert decide_priority(category="complaint", tier="normal", urgent=False, rules=rules).rule_name == "rest"


def test_no_match_falls_back_to_p2() -> None:
    rules = (PriorityRule("only_vip", "P0", tiers=("vip",)),)
    assert decide_priority(category="complaint", tier="normal", urgent=False, rules=rules) == PriorityDecision(
        "P2", "fallback"
    )


def test_min_order_value_needs_a_known_value() -> None:
    rule = PriorityRule("big", "P1", min_order_value=100.0)
    common: dict[str, Any] = {"category": "consultation", "tier": "normal", "urgent": False, "urgency_reasons": ()}
    assert not rule.matches(order_value=None, **common)
    assert not rule.matches(order_value=99.5, **common)
    assert rule.matches(order_value=100.0, **common)


def test_the_default_table_round_trips_through_json() -> None:
    data = json.loads(json.dumps(rules_to_json()))
    assert rules_from_json(data) == PRIORITY_RULES
    assert rules_from_json({"rules": data}) == PRIORITY_RULES
    assert data[0] == {"name": "urgent", "priority": "P0", "urgent": True}
    assert data[-1] == {"name": "default", "priority": "P2"}


def test_rules_from_json_builds_an_admin_table() -> None:
    rules = rules_from_json(
        [
            {"name": "safety", "priority": "P0", "reasons_any": ["safety", "safety"]},
            {"name": "big member orders", "priority": "P1", "tiers": ["member", "vip"], "min_order_value": 2000},
            {"name": "default", "priority": "P2"},
        ]
    )
    assert rules[0].reasons_any == ("safety",)
    assert rules[1].min_order_value == 2000.0
    decide = decide_priority(category="consultation", tier="member", urgent=False, order_value=2500, rules=rules)
    assert decide == PriorityDecision("P1", "big member orders")


_DEFAULT = {"name": "default", "priority": "P2"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "non-empty list"),
        ([], "non-empty list"),
        ({"rules": "x"}, "non-empty list"),
        ({"rules": [], "extra": 1}, "non-empty list"),
        (["P0"], "must be an object"),
        ([{"priority": "P0"}, _DEFAULT], "name"),
        ([{"name": " ", "priority": "P0"}, _DEFAULT], "name"),
        ([{"name": "x", "priority": "P3"}, _DEFAULT], "priority"),
        ([{"name": "x", "priority": "P0", "colour": "red"}, _DEFAULT], "unknown field"),
        ([{"name": "x", "priority": "P0", "categories": ["billing"]}, _DEFAULT], "categories"),
        ([{"name": "x", "priority": "P0", "categories": []}, _DEFAULT], "categories"),
        ([{"name": "x", "priority": "P0", "categories": "complaint"}, _DEFAULT], "categories"),
        ([{"name": "x", "priority": "P0", "tiers": ["gold"]}, _DEFAULT], "tiers"),
        ([{"name": "x", "priority": "P0", "urgent": "yes"}, _DEFAULT], "urgent"),
        ([{"name": "x", "priority": "P0", "min_order_value": "5000"}, _DEFAULT], "min_order_value"),
        ([{"name": "x", "priority": "P0", "min_order_value": True}, _DEFAULT], "min_order_value"),
        ([{"name": "x", "priority": "P0", "min_order_value": -1}, _DEFAULT], "negative"),
        ([{"name": "x", "priority": "P0", "min_order_value": float("nan")}, _DEFAULT], "min_order_value"),
        ([{"name": "x", "priority": "P0", "reasons_any": ["bored"]}, _DEFAULT], "reasons_any"),
        ([{"name": "default", "priority": "P0", "urgent": True}, _DEFAULT], "duplicate"),
        ([{"name": "x", "priority": "P0", "urgent": True}], "last priority rule"),
        ([_DEFAULT] * 101, "at most"),
    ],
)
def test_rules_from_json_rejects_bad_tables(data: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rules_from_json(data)
    assert message in caught.value.message
    assert caught.value.code == "invalid_input"
