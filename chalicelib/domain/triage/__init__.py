"""Triage: classify a message into a category, detect urgency and decide the priority from a rules table."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .classifier import (
        Classification,
        Classifier,
        ClassMetrics,
        EvalReport,
        KeywordRule,
        classify,
        default_classifier,
        evaluate,
    )
    from .priority import (
        PRIORITY_RULES,
        PriorityDecision,
        PriorityRule,
        decide_priority,
        rules_from_json,
        rules_to_json,
    )
    from .urgency import REASONS, Urgency, detect_urgency

# Re-exports are resolved on first access, so `python -m chalicelib.domain.triage.classifier` runs cleanly
# and importing the package costs nothing until a name is used.
_EXPORTS = {
    "Classification": "classifier",
    "Classifier": "classifier",
    "ClassMetrics": "classifier",
    "EvalReport": "classifier",
    "KeywordRule": "classifier",
    "classify": "classifier",
    "default_classifier": "classifier",
    "evaluate": "classifier",
    "PRIORITY_RULES": "priority",
    "PriorityDecision": "priority",
    "PriorityRule": "priority",
    "decide_priority": "priority",
    "rules_from_json": "priority",
    "rules_to_json": "priority",
    "REASONS": "urgency",
    "Urgency": "urgency",
    "detect_urgency": "urgency",
}

__all__ = [
    "PRIORITY_RULES",
    "REASONS",
    "ClassMetrics",
    "Classification",
    "Classifier",
    "EvalReport",
    "KeywordRule",
    "PriorityDecision",
    "PriorityRule",
    "Urgency",
    "classify",
    "decide_priority",
    "default_classifier",
    "detect_urgency",
    "evaluate",
    "rules_from_json",
    "rules_to_json",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
