"""Priority (P0/P1/P2) from an ordered rules table kept as data: the first matching rule wins."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ..ticket import CATEGORIES, PRIORITIES, TIERS
from .urgency import CRITICAL_REASONS, REASONS


@dataclass(frozen=True)
class PriorityRule:
    """One row of the table. Every condition that is set must hold; a rule with none set matches anything."""

    name: str
    priority: str
    categories: tuple[str, ...] | None = None
    tiers: tuple[str, ...] | None = None
    urgent: bool | None = None
    min_order_value: float | None = None
    reasons_any: tuple[str, ...] | None = None

    @property
    def is_catch_all(self) -> bool:
        return (
            self.categories is None
            and self.tiers is None
            and self.urgent is None
            and self.min_order_value is None
            and self.reasons_any is None
        )

    def matches(
        self,
        *,
        category: str,
        tier: str,
        urgent: bool,
        urgency_reasons: Sequence[str],
        order_value: float | None,
    ) -> bool:
        """True when the ticket meets every condition this rule sets."""
        if self.categories is not None and category not in self.categories:
            return False
        if self.tiers is not None and tier not in self.tiers:
            return False
        if self.urgent is not None and urgent != self.urgent:
            return False
        if self.min_order_value is not None and (order_value is None or order_value < self.min_order_value):
            return False
        return self.reasons_any is None or any(r in self.reasons_any for r in urgency_reasons)

    def to_json(self) -> dict[str, Any]:
        """The rule as JSON (conditions left unset are omitted); rules_from_json reads it back."""
        out: dict[str, Any] = {"name": self.name, "priority": self.priority}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.tiers is not None:
            out["tiers"] = list(self.tiers)
        if self.urgent is not None:
            out["urgent"] = self.urgent
        if self.min_order_value is not None:
            out["min_order_value"] = self.min_order_value
        if self.reasons_any is not None:
            out["reasons_any"] = list(self.reasons_any)
        return out


@dataclass(frozen=True)
class PriorityDecision:
    """The priority chosen and the name of the rule that chose it."""

    priority: str
    rule_name: str


HIGH_VALUE_ORDER = 5000.0

PRIORITY_RULES: tuple[PriorityRule, ...] = (
    PriorityRule("urgent", "P0", urgent=True),
    PriorityRule("critical_reason", "P0", reasons_any=CRITICAL_REASONS),
    PriorityRule("vip_complaint", "P0", categories=("complaint",), tiers=("vip",)),
    PriorityRule("complaint", "P1", categories=("complaint",)),
    PriorityRule("after_sales", "P1", categories=("after_sales",)),
    PriorityRule("vip", "P1", tiers=("vip",)),
    PriorityRule("high_value_order", "P1", min_order_value=HIGH_VALUE_ORDER),
    PriorityRule("default", "P2"),
)

FALLBACK = PriorityDecision("P2", "fallback")


def decide_priority(
    *,
    category: str,
    tier: str,
    urgent: bool,
    urgency_reasons: Sequence[str] = (),
    order_value: float | None = None,
    rules: Sequence[PriorityRule] = PRIORITY_RULES,
) -> PriorityDecision:
    """Walks `rules` in order and returns the first match (P2 "fallback" if none matches)."""
    for rule in rules:
        if rule.matches(
            category=category,
            tier=tier,
            urgent=urgent,
            urgency_reasons=urgency_reasons,
            order_value=order_value,
        ):
            return PriorityDecision(rule.priority, rule.name)
    return FALLBACK


_FIELDS = frozenset({"name", "priority", "categories", "tiers", "urgent", "min_order_value", "reasons_any"})
MAX_RULES = 100


def _names(value: Any, where: str, field_name: str, allowed: Sequence[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{where}: {field_name} must be a non-empty list")
    for item in value:
        if not isinstance(item, str) or item not in allowed:
            raise ValidationError(f"{where}: {field_name} has {item!r}; expected any of {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def _rule_from_json(index: int, item: Any) -> PriorityRule:
    where = f"rule {index + 1}"
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{where}: name must be a non-empty string")
    where = f"rule {index + 1} ({name})"
    priority = item.get("priority")
    if priority not in PRIORITIES:
        raise ValidationError(f"{where}: priority must be one of {', '.join(PRIORITIES)}")
    urgent = item.get("urgent")
    if urgent is not None and not isinstance(urgent, bool):
        raise ValidationError(f"{where}: urgent must be true or false")
    minimum = item.get("min_order_value")
    if minimum is not None:
        if isinstance(minimum, bool) or not isinstance(minimum, int | float) or not math.isfinite(minimum):
            raise ValidationError(f"{where}: min_order_value must be a number")
        if minimum < 0:
            raise ValidationError(f"{where}: min_order_value must not be negative")
        minimum = float(minimum)
    return PriorityRule(
        name=name.strip(),
        priority=str(priority),
        categories=_names(item.get("categories"), where, "categories", CATEGORIES),
        tiers=_names(item.get("tiers"), where, "tiers", TIERS),
        urgent=urgent,
        min_order_value=minimum,
        reasons_any=_names(item.get("reasons_any"), where, "reasons_any", REASONS),
    )


def rules_from_json(data: Any) -> tuple[PriorityRule, ...]:
    """Validates an admin-edited table (a list of rule objects, or {"rules": [...]}) and builds it.

    Names must be unique and the last rule must have no conditions, so every ticket gets a priority.
    """
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list) or not data:
        raise ValidationError("priority rules must be a non-empty list of rule objects")
    if len(data) > MAX_RULES:
        raise ValidationError(f"at most {MAX_RULES} priority rules are allowed")
    rules = tuple(_rule_from_json(i, item) for i, item in enumerate(data))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValidationError(f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)
    if not rules[-1].is_catch_all:
        raise ValidationError("the last priority rule must have no conditions (the default)")
    return rules


def rules_to_json(rules: Sequence[PriorityRule] = PRIORITY_RULES) -> list[dict[str, Any]]:
    """The table as JSON, e.g. to show the defaults in the admin page."""
    return [rule.to_json() for rule in rules]
