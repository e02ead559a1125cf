"""DynamoDB items and store for satisfaction surveys (pk SURVEY#{token}); due ones are found on gsi_due."""

from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, UpdateError

from ...domain import surveys as rules
from ...domain.errors import NotFound
from ...domain.surveys import Survey, SurveyClosed
from ...domain.ticket import iso
from .models import DueIndex, KefuItem, put_if_absent

SURVEY_DUE_PARTITION = "SURVEYDUE"  # gsi_due partition of scheduled surveys (clocks use their own)


class SurveyItem(KefuItem, discriminator="survey"):
    """One survey (pk SURVEY#{token}, sk SURVEY); while scheduled it sits on gsi_due under SURVEYDUE."""

    token = UnicodeAttribute()
    ticket_id = UnicodeAttribute()
    resolution = UnicodeAttribute()
    state = UnicodeAttribute()
    due_at = UnicodeAttribute()
    channel = UnicodeAttribute(null=True)
    sent_at = UnicodeAttribute(null=True)
    score = NumberAttribute(null=True)
    comment = UnicodeAttribute(null=True)
    answered_at = UnicodeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True)
    due_sk = UnicodeAttribute(null=True)
    by_due = DueIndex()


def _survey(item: SurveyItem) -> Survey:
    return Survey(
        token=item.token,
        ticket_id=item.ticket_id,
        resolution=item.resolution,
        state=item.state,
        due_at=item.due_at,
        channel=item.channel or "",
        sent_at=item.sent_at or "",
        score=int(item.score) if item.score is not None else None,
        comment=item.comment or "",
        answered_at=item.answered_at or "",
    )


class DynamoSurveyStore:
    """SurveyStore: PutItem/GetItem/conditional UpdateItem on the survey item, due ones by one gsi_due Query."""

    @staticmethod
    def _item(token: str) -> SurveyItem:
        return SurveyItem(pk=f"SURVEY#{token}", sk="SURVEY")

    def schedule(self, survey: Survey) -> bool:
        """Stores a scheduled survey; False when it already exists (a redelivered resolution)."""
        item = SurveyItem(
            pk=f"SURVEY#{survey.token}",
            sk="SURVEY",
            token=survey.token,
            ticket_id=survey.ticket_id,
            resolution=survey.resolution,
            state=rules.SCHEDULED,
            due_at=survey.due_at,
            channel=survey.channel or None,
            due_pk=SURVEY_DUE_PARTITION,
            due_sk=f"{survey.due_at}#{survey.token}",
        )
        return put_if_absent(item)

    def get(self, token: str) -> Survey:
        try:
            return _survey(SurveyItem.get(f"SURVEY#{token}", "SURVEY", consistent_read=True))
        except DoesNotExist:
            raise NotFound("no such survey") from None

    def due(self, now: datetime, limit: int = 100) -> list[Survey]:
        found = SurveyItem.by_due.query(SURVEY_DUE_PARTITION, SurveyItem.due_sk <= f"{iso(now)}#~", limit=limit)
        return [_survey(item) for item in found]

    def _transition(self, token: str, to: str, actions: list[object], expected: tuple[str, ...]) -> None:
        condition = SurveyItem.pk.exists() & SurveyItem.state.is_in(*expected)
        try:
            self._item(token).update(actions=[SurveyItem.state.set(to), *actions], condition=condition)  # type: ignore[list-item]
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            current = self.get(token)  # NotFound when it never existed
            raise SurveyClosed(f"the survey is {current.state}") from None

    def mark_sent(self, token: str, at: datetime) -> None:
        self._transition(
            token,
            rules.SENT,
            [SurveyItem.sent_at.set(iso(at)), SurveyItem.due_pk.remove(), SurveyItem.due_sk.remove()],
            (rules.SCHEDULED,),
        )

    def cancel(self, token: str) -> None:
        self._transition(
            token, rules.CANCELLED, [SurveyItem.due_pk.remove(), SurveyItem.due_sk.remove()], (rules.SCHEDULED,)
        )

    def answer(self, token: str, score: int, comment: str, at: datetime) -> Survey:
        """Records the customer's answer once; a second answer is a ConflictError."""
        actions: list[object] = [SurveyItem.score.set(score), SurveyItem.answered_at.set(iso(at))]
        if comment:
            actions.append(SurveyItem.comment.set(comment))
        self._transition(token, rules.ANSWERED, actions, (rules.SENT,))
        return self.get(token)
