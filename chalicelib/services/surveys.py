"""Satisfaction surveys: scheduled on resolution, sent on the customer's channel, answered on a public link."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..domain import clock_rules
from ..domain import surveys as rules
from ..domain.errors import ConflictError, NotFound
from ..domain.sla import SlaPolicy
from ..domain.surveys import Survey
from ..domain.ticket import Ticket, iso, parse_iso
from ..ports import Clock, StaffDirectory, StaffRecord, TicketRepository
from .tickets import change_ticket

logger = logging.getLogger(__name__)

SYSTEM = "system"
CLOSED_STATUSES = ("resolved", "closed")


class SurveyStore(Protocol):
    """Where surveys live (DynamoDB: pk SURVEY#{token}, due ones on gsi_due)."""

    def schedule(self, survey: Survey) -> bool: ...

    def get(self, token: str) -> Survey: ...

    def due(self, now: datetime, limit: int = 100) -> list[Survey]: ...

    def mark_sent(self, token: str, at: datetime) -> None: ...

    def cancel(self, token: str) -> None: ...

    def answer(self, token: str, score: int, comment: str, at: datetime) -> Survey: ...


class SurveyService:
    """资源闭环：结果反馈后发送满意度调研；1–3 分标记“不满意”，由服务主管回访（callback clock）。"""

    def __init__(
        self,
        tickets: TicketRepository,
        store: SurveyStore,
        staff: StaffDirectory,
        clock: Clock,
        policy: SlaPolicy,
        delay: timedelta,
        public_base_url: str,
    ) -> None:
        self.tickets = tickets
        self.store = store
        self.staff = staff
        self.clock = clock
        self.policy = policy
        self.delay = delay
        self.public_base_url = public_base_url.rstrip("/")

    # --- scheduling (table stream: the resolution's timeline entry) -------------------------------------
    def on_resolved(self, image: dict[str, Any]) -> bool:
        """A `resolve` timeline entry was committed: schedule its survey (idempotent per resolution)."""
        ticket_id = str(image["ticket_id"])
        resolution = f"{image['at']}#{int(image.get('seq', 0)):04d}"
        ticket = self.tickets.find(ticket_id)
        if ticket is None or not ticket.public_token:
            return False
        survey = Survey(
            token=rules.survey_token(ticket.public_token, ticket_id, resolution),
            ticket_id=ticket_id,
            resolution=resolution,
            state=rules.SCHEDULED,
            due_at=iso(parse_iso(str(image["at"])) + self.delay),
            channel=ticket.channel,
        )
        return self.store.schedule(survey)

    # --- sending (the send_surveys job) ------------------------------------------------------------------
    def url(self, token: str) -> str:
        return f"{self.public_base_url}/public/surveys/{token}"

    def send_due(self, limit: int = 100) -> dict[str, int]:
        """Sends every survey whose time has come, on its ticket's channel; a reopened ticket's is cancelled."""
        now = self.clock.now()
        sent = cancelled = 0
        for survey in self.store.due(now, limit):
            try:
                if self._send(survey):
                    sent += 1
                else:
                    cancelled += 1
            except ConflictError:
                continue  # another run took it, or the ticket kept changing: the next run retries
        return {"sent": sent, "cancelled": cancelled}

    def _send(self, survey: Survey) -> bool:
        resolved_at = survey.resolution.split("#", 1)[0]
        current = True

        def change(ticket: Ticket) -> bool:
            nonlocal current
            # Reopened (and maybe resolved again since): the latest resolution brings its own survey.
            current = ticket.status in CLOSED_STATUSES and ticket.resolved_at == resolved_at
            done = [str(t) for t in ticket.attributes.get("surveys_sent", [])]
            if not current or survey.token in done:  # a retried run: the invitation is already on the ticket
                return False
            now = self.clock.now()
            message = ticket.add_message("out", rules.invitation(self.url(survey.token)), now, SYSTEM)
            ticket.attributes["surveys_sent"] = [*done, survey.token]
            ticket.record(now, SYSTEM, "survey_sent", message_id=message.id, survey=survey.token)
            return True

        try:
            change_ticket(self.tickets, survey.ticket_id, change)
        except NotFound:
            current = False
        if not current:
            self.store.cancel(survey.token)
            return False
        self.store.mark_sent(survey.token, self.clock.now())
        return True

    # --- the customer's answer (public link) ---------------------------------------------------------------
    def view(self, token: str) -> dict[str, Any]:
        return self.store.get(self._checked(token)).public_json()

    def answer(self, token: str, body: Any) -> dict[str, Any]:
        score, comment = rules.parse_answer(body)
        survey = self.store.answer(self._checked(token), score, comment, self.clock.now())
        return survey.public_json()

    @staticmethod
    def _checked(token: str) -> str:
        if not token or len(token) > 64 or not all(c.isalnum() or c in "-_" for c in token):
            raise NotFound("no such survey")
        return token

    # --- follow-up (table stream: the survey item turned answered) ----------------------------------------
    def on_answered(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        """Records the score on the ticket; 1–3 opens a callback task for a supervisor (once per survey)."""
        if new.get("state") != rules.ANSWERED or old.get("state") == rules.ANSWERED:
            return False
        token, score = str(new["token"]), int(new["score"])
        recorded = False

        def change(ticket: Ticket) -> bool:
            nonlocal recorded
            done = [str(t) for t in ticket.attributes.get("surveys_answered", [])]
            recorded = token not in done
            if not recorded:
                return False
            now = self.clock.now()
            ticket.attributes["surveys_answered"] = [*done, token]
            ticket.attributes["satisfaction"] = score
            comment = str(new.get("comment") or "")
            ticket.record(now, "customer", "survey_answered", survey=token, score=score, comment=comment)
            if rules.is_dissatisfied(score):
                supervisor = self._supervisor(ticket)
                clock = clock_rules.on_callback_task(ticket, now, self.policy)
                detail: dict[str, Any] = {"clock": clock_rules.CALLBACK, "score": score, "due_at": clock.due_at}
                if supervisor is not None:
                    detail["to"] = supervisor.id
                ticket.record(now, SYSTEM, "callback_task", **detail)
            return True

        try:
            change_ticket(self.tickets, str(new["ticket_id"]), change)
        except NotFound:
            return False
        return recorded

    def _supervisor(self, ticket: Ticket) -> StaffRecord | None:
        supervisors = sorted((s for s in self.staff.all() if "supervisor" in s.roles), key=lambda s: s.id)
        same_team = [s for s in supervisors if ticket.team and s.team == ticket.team]
        online = [s for s in same_team or supervisors if s.online]
        chosen = online or same_team or supervisors
        return chosen[0] if chosen else None
