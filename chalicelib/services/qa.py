"""QA sampling and review: every day ≥ 10 % of the previous day's resolutions go to the qa staff for scoring."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..domain import qa as rules
from ..domain.errors import NotFound
from ..domain.qa import QaReview
from ..domain.ticket import Ticket, iso
from ..ports import Clock, StaffDirectory, TicketRepository
from .resolutions import ResolutionStore, day_of
from .tickets import Actor, change_ticket

JOB = "qa_sample"
QA_ROLE = "qa"


class QaStore(Protocol):
    """Where the day's sample and its reviews live (DynamoDB: QA#{day})."""

    def create(self, review: QaReview) -> bool: ...

    def of_day(self, day: str) -> list[QaReview]: ...

    def get(self, day: str, ticket_id: str) -> QaReview: ...

    def complete(
        self, day: str, ticket_id: str, scores: dict[str, int], comment: str, at: datetime, by: str
    ) -> QaReview: ...


class QaService:
    """质量监测：每日抽检≥10%的服务案例；检查诉求理解准确率、解决方案有效性、服务态度评分。"""

    def __init__(
        self,
        tickets: TicketRepository,
        resolutions: ResolutionStore,
        store: QaStore,
        staff: StaffDirectory,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self.tickets = tickets
        self.resolutions = resolutions
        self.store = store
        self.staff = staff
        self.clock = clock
        self.zone = zone

    # --- the daily job ----------------------------------------------------------------------------------
    def yesterday(self) -> str:
        return day_of(self.clock.now() - timedelta(days=1), self.zone)

    def sample_yesterday(self) -> dict[str, Any]:
        return self.sample_day(self.yesterday())

    def sample_day(self, day: str) -> dict[str, Any]:
        """Draws the day's sample and deals it to the qa staff in turn; a day already sampled is left alone."""
        rules.check_day(day)
        if self.resolutions.day_done(JOB, day):
            return {"day": day, "resolved": 0, "sampled": 0, "already_sampled": True}
        resolved = [r.ticket_id for r in self.resolutions.of_day(day)]
        chosen = rules.choose(resolved, day)
        reviewers = sorted(s.id for s in self.staff.all() if QA_ROLE in s.roles)
        now = iso(self.clock.now())
        sampled = 0
        for n, ticket_id in enumerate(chosen):
            ticket = self.tickets.find(ticket_id)
            review = QaReview(
                day=day,
                ticket_id=ticket_id,
                state=rules.PENDING,
                sampled_at=now,
                reviewer=reviewers[n % len(reviewers)] if reviewers else "",
                agent=ticket.assignee if ticket else "",
            )
            sampled += int(self.store.create(review))
        self.resolutions.mark_day_done(JOB, day, now)
        return {"day": day, "resolved": len(set(resolved)), "sampled": sampled, "already_sampled": False}

    # --- staff: list and review --------------------------------------------------------------------------
    def list(self, day: str, state: str = "") -> list[QaReview]:
        rules.check_day(day)
        if state and state not in rules.STATES:
            from ..domain.errors import ValidationError

            raise ValidationError(f"'state' must be one of {', '.join(rules.STATES)}")
        return [r for r in self.store.of_day(day) if not state or r.state == state]

    def review(self, day: str, ticket_id: str, actor: Actor, body: Any) -> QaReview:
        """Records the scores once; the ticket's timeline gets a `qa_reviewed` entry (who, scores)."""
        rules.check_day(day)
        scores, comment = rules.parse_review(body)
        review = self.store.complete(day, ticket_id, scores, comment, self.clock.now(), actor.id)
        self._record_on_ticket(review)
        return review

    def _record_on_ticket(self, review: QaReview) -> None:
        def change(ticket: Ticket) -> None:
            ticket.record(
                self.clock.now(),
                review.reviewed_by,
                "qa_reviewed",
                day=review.day,
                scores=dict(review.scores),
                comment=review.comment,
            )

        try:
            change_ticket(self.tickets, review.ticket_id, change)
        except NotFound:
            return
