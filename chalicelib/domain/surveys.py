"""Satisfaction surveys: one per resolution, sent after KEFU_SURVEY_DELAY, scored 1–5; 1–3 owes a callback."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from .errors import ConflictError, ValidationError

SCHEDULED, SENT, ANSWERED, CANCELLED = "scheduled", "sent", "answered", "cancelled"
STATES = (SCHEDULED, SENT, ANSWERED, CANCELLED)
SCORES = range(1, 6)
DISSATISFIED_MAX = 3  # 1–3 分为“不满意”：由服务主管跟进回访
MAX_COMMENT = 2000
QUESTION = "您对本次服务满意吗？请打分（1-5 分，5 分为非常满意）。"


class SurveyClosed(ConflictError):
    """The survey cannot take this step: it is already answered, cancelled, or not sent yet (HTTP 409)."""

    code = "survey_closed"


@dataclass(frozen=True)
class Survey:
    """The survey of one resolution of one ticket; `token` is its only public handle."""

    token: str
    ticket_id: str
    resolution: str  # the timeline key of the resolution it follows (at#seq)
    state: str
    due_at: str
    channel: str = ""
    sent_at: str = ""
    score: int | None = None
    comment: str = ""
    answered_at: str = ""

    def public_json(self) -> dict[str, Any]:
        """What the customer's survey page shows: no staff, notes or internal detail."""
        body: dict[str, Any] = {
            "ticket_id": self.ticket_id,
            "state": self.state,
            "question": QUESTION,
            "scale": {"min": SCORES.start, "max": SCORES.stop - 1},
        }
        if self.state == ANSWERED:
            body.update(score=self.score, comment=self.comment, answered_at=self.answered_at)
        return body


def survey_token(public_token: str, ticket_id: str, resolution: str) -> str:
    """Deterministic (a redelivered resolution schedules the same survey) and unguessable without the ticket's
    secret status token: HMAC-SHA256(public_token, ticket_id#resolution), 24 URL-safe characters."""
    digest = hmac.new(public_token.encode(), f"{ticket_id}#{resolution}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:24]


def parse_answer(body: Any) -> tuple[int, str]:
    """`{"score": 1..5, "comment": "…"}` → (score, comment), or a ValidationError naming the problem."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object with 'score' (1-5) and an optional 'comment'")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        raise ValidationError("'score' must be a whole number from 1 to 5")
    comment = body.get("comment", "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise ValidationError("'comment' must be text")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationError(f"'comment' is longer than {MAX_COMMENT} characters")
    unknown = set(body) - {"score", "comment"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return score, comment


def is_dissatisfied(score: int) -> bool:
    return score <= DISSATISFIED_MAX


def invitation(url: str) -> str:
    """The message that carries the survey link on the customer's own channel."""
    return f"您的问题已处理完毕，感谢您的耐心。{QUESTION}点击评价：{url}"
