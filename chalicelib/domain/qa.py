"""Quality assurance: the daily ≥ 10 % sample of resolved tickets and the reviewer's three scores (每日抽检≥10%)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConflictError, ValidationError

SAMPLE_RATIO = 0.10
PENDING, DONE = "pending", "done"
STATES = (PENDING, DONE)
# 诉求理解准确率 / 解决方案有效性 / 服务态度评分, each scored 1–5.
CRITERIA = {"understanding": "诉求理解准确率", "effectiveness": "解决方案有效性", "attitude": "服务态度评分"}
SCORES = range(1, 6)
MAX_COMMENT = 2000
DAY = re.compile(r"^\d{8}$")


class ReviewClosed(ConflictError):
    """The review was already given (HTTP 409)."""

    code = "review_closed"


@dataclass(frozen=True)
class QaReview:
    """One sampled ticket of one day, and (once reviewed) its scores."""

    day: str
    ticket_id: str
    state: str
    sampled_at: str
    reviewer: str = ""  # the qa member it was dealt to ("" when nobody holds the role)
    agent: str = ""  # who handled the ticket (its assignee when sampled)
    scores: dict[str, int] = field(default_factory=dict)
    comment: str = ""
    reviewed_at: str = ""
    reviewed_by: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "day": self.day,
            "ticket_id": self.ticket_id,
            "state": self.state,
            "sampled_at": self.sampled_at,
            "reviewer": self.reviewer or None,
            "agent": self.agent or None,
        }
        if self.state == DONE:
            body.update(
                scores=dict(self.scores),
                average=round(sum(self.scores.values()) / len(self.scores), 2) if self.scores else None,
                comment=self.comment,
                reviewed_at=self.reviewed_at,
                reviewed_by=self.reviewed_by,
            )
        return body


def sample_size(resolved: int) -> int:
    """At least 10 % (rounded up): one of any non-empty day."""
    return math.ceil(resolved * SAMPLE_RATIO) if resolved > 0 else 0


def choose(ticket_ids: Sequence[str], day: str) -> list[str]:
    """The day's sample: a fixed draw for the day (a rerun draws the same), in ticket order."""
    population = sorted(set(ticket_ids))
    drawn = random.Random(f"kefu-qa:{day}").sample(population, sample_size(len(population)))
    return sorted(drawn)


def check_day(day: str) -> str:
    if not isinstance(day, str) or not DAY.match(day):
        raise ValidationError("'day' must be a business day as YYYYMMDD")
    return day


def parse_review(body: Any) -> tuple[dict[str, int], str]:
    """`{"understanding": 1-5, "effectiveness": 1-5, "attitude": 1-5, "comment": "…"}` → (scores, comment)."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = set(body) - {*CRITERIA, "comment"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    scores: dict[str, int] = {}
    for name, label in CRITERIA.items():
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
            raise ValidationError(f"'{name}' ({label}) must be a whole number from 1 to 5")
        scores[name] = value
    comment = body.get("comment") or ""
    if not isinstance(comment, str):
        raise ValidationError("'comment' must be text")
    if len(comment) > MAX_COMMENT:
        raise ValidationError(f"'comment' is longer than {MAX_COMMENT} characters")
    return scores, comment.strip()
