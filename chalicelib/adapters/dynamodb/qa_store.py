"""DynamoDB items and store for QA reviews (pk QA#{day}, sk REVIEW#{ticket}): one Query lists a day's sample."""

from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import JSONAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from ...domain import qa as rules
from ...domain.errors import NotFound
from ...domain.qa import QaReview, ReviewClosed
from ...domain.ticket import iso
from .models import KefuItem, put_if_absent


class QaReviewItem(KefuItem, discriminator="qa_review"):
    """A sampled ticket of a day and, once reviewed, its three scores."""

    day = UnicodeAttribute()
    ticket_id = UnicodeAttribute()
    state = UnicodeAttribute()
    sampled_at = UnicodeAttribute()
    reviewer = UnicodeAttribute(null=True)
    agent = UnicodeAttribute(null=True)
    scores = JSONAttribute(null=True)
    comment = UnicodeAttribute(null=True)
    reviewed_at = UnicodeAttribute(null=True)
    reviewed_by = UnicodeAttribute(null=True)


def _review(item: QaReviewItem) -> QaReview:
    return QaReview(
        day=item.day,
        ticket_id=item.ticket_id,
        state=item.state,
        sampled_at=item.sampled_at,
        reviewer=item.reviewer or "",
        agent=item.agent or "",
        scores={str(k): int(v) for k, v in (item.scores or {}).items()},
        comment=item.comment or "",
        reviewed_at=item.reviewed_at or "",
        reviewed_by=item.reviewed_by or "",
    )


class DynamoQaStore:
    """QaStore: conditional PutItem per sampled ticket, one Query per day, a conditional UpdateItem per review."""

    def create(self, review: QaReview) -> bool:
        item = QaReviewItem(
            pk=f"QA#{review.day}",
            sk=f"REVIEW#{review.ticket_id}",
            day=review.day,
            ticket_id=review.ticket_id,
            state=rules.PENDING,
            sampled_at=review.sampled_at,
            reviewer=review.reviewer or None,
            agent=review.agent or None,
        )
        return put_if_absent(item)

    def of_day(self, day: str) -> list[QaReview]:
        return [_review(item) for item in QaReviewItem.query(f"QA#{day}", consistent_read=True)]

    def get(self, day: str, ticket_id: str) -> QaReview:
        try:
            return _review(QaReviewItem.get(f"QA#{day}", f"REVIEW#{ticket_id}", consistent_read=True))
        except DoesNotExist:
            raise NotFound(f"{ticket_id} is not in the QA sample of {day}") from None

    def complete(
        self, day: str, ticket_id: str, scores: dict[str, int], comment: str, at: datetime, by: str
    ) -> QaReview:
        item = QaReviewItem(pk=f"QA#{day}", sk=f"REVIEW#{ticket_id}")
        actions: list[Action] = [
            QaReviewItem.state.set(rules.DONE),
            QaReviewItem.scores.set(scores),
            QaReviewItem.reviewed_at.set(iso(at)),
            QaReviewItem.reviewed_by.set(by),
        ]
        if comment:
            actions.append(QaReviewItem.comment.set(comment))
        try:
            item.update(actions=actions, condition=QaReviewItem.pk.exists() & (QaReviewItem.state == rules.PENDING))
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            self.get(day, ticket_id)  # NotFound when it was never sampled
            raise ReviewClosed(f"{ticket_id} of {day} is already reviewed") from None
        return self.get(day, ticket_id)
