"""Triage after intake (off the webhook path): category, urgency, tier and priority, then routing and SLA clocks."""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain import clock_rules
from ..domain import routing as routing_rules
from ..domain.errors import ConflictError, NotFound, ValidationError
from ..domain.sla import SlaPolicy
from ..domain.ticket import CATEGORIES, PRIORITIES, TIERS, Ticket, iso
from ..domain.triage import classifier as classifier_module
from ..domain.triage import priority as priority_rules
from ..domain.triage.urgency import detect_urgency
from ..ports import (
    Clock,
    CustomerRepository,
    Label,
    Publisher,
    StaffDirectory,
    StaffRecord,
    StoredConfig,
    TicketRepository,
    TriageStore,
)
from .notifications import Notification, NotificationStore, notification_id
from .tickets import Actor, change_ticket

logger = logging.getLogger("kefu.triage")

ROUTING_RULES = "routing_rules"
PRIORITY_RULES = "priority_rules"
STAFF_TOPIC = "kefu-staff-notifications"
COMPLAINT_WINDOW = timedelta(days=30)
LABEL_WINDOW_MONTHS = 12
# A member of staff with this skill is told about VIP tickets whose customer has no named account manager.
ACCOUNT_MANAGER_SKILL = "account_manager"
SYSTEM = "system"
OVERRIDE_FIELDS = ("category", "priority", "urgent")


def months_back(now: datetime, count: int) -> list[str]:
    """The YYYYMM keys of the `count` months ending with the month of `now`, oldest first."""
    year, month = now.year, now.month
    keys = []
    for _ in range(count):
        keys.append(f"{year:04d}{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return keys[::-1]


class RuleBook:
    """The routing and priority tables in force: the admin-stored ones (cached briefly), else the defaults."""

    def __init__(
        self, store: TriageStore, ttl_seconds: float = 30.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = build()
        with self._lock:
            self._cache[name] = (now, value)
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def routing(self) -> tuple[routing_rules.RoutingRule, ...]:
        def build() -> tuple[routing_rules.RoutingRule, ...]:
            stored = self.store.get_config(ROUTING_RULES)
            if stored is None:
                return routing_rules.DEFAULT_RULES
            try:
                return routing_rules.rules_from_json(stored.data)
            except ValidationError:
                logger.exception("stored routing rules are invalid; using the defaults")
                return routing_rules.DEFAULT_RULES

        rules: tuple[routing_rules.RoutingRule, ...] = self._cached(ROUTING_RULES, build)
        return rules

    def priority(self) -> tuple[priority_rules.PriorityRule, ...]:
        def build() -> tuple[priority_rules.PriorityRule, ...]:
            stored = self.store.get_config(PRIORITY_RULES)
            if stored is None:
                return priority_rules.PRIORITY_RULES
            try:
                return priority_rules.rules_from_json(stored.data)
            except ValidationError:
                logger.exception("stored priority rules are invalid; using the defaults")
                return priority_rules.PRIORITY_RULES

        rules: tuple[priority_rules.PriorityRule, ...] = self._cached(PRIORITY_RULES, build)
        return rules

    def document(self, name: str) -> dict[str, Any]:
        """The table as the admin API shows it: rules, whether stored or default, and who changed it last."""
        stored = self.store.get_config(name)
        if stored is None:
            default = (
                routing_rules.rules_to_json(routing_rules.DEFAULT_RULES)
                if name == ROUTING_RULES
                else priority_rules.rules_to_json(priority_rules.PRIORITY_RULES)
            )
            return {"rules": default, "source": "default", "updated_at": None, "updated_by": None}
        return {
            "rules": stored.data,
            "source": "stored",
            "updated_at": stored.updated_at,
            "updated_by": stored.updated_by,
        }

    def replace(self, name: str, data: Any, at: datetime, actor: str) -> StoredConfig:
        """Validates and stores a new table (normalised JSON); the cache is dropped at once in this container."""
        if isinstance(data, Mapping) and set(data) == {"rules"}:
            data = data["rules"]
        if name == ROUTING_RULES:
            normalised = routing_rules.rules_to_json(routing_rules.rules_from_json(data))
        elif name == PRIORITY_RULES:
            normalised = priority_rules.rules_to_json(priority_rules.rules_from_json(data))
        else:
            raise ValidationError(f"unknown rule table {name!r}")
        stored = self.store.put_config(name, normalised, at, actor)
        self.invalidate()
        return stored


class ClassifierSource:
    """The classifier triage uses: the packaged model plus staff-labelled examples, rebuilt now and then."""

    def __init__(
        self,
        store: TriageStore,
        clock: Clock,
        ttl_seconds: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl_seconds
        self._monotonic = monotonic
        self._built: tuple[float, classifier_module.Classifier] | None = None
        self._lock = threading.Lock()

    def get(self) -> classifier_module.Classifier:
        now = self._monotonic()
        with self._lock:
            if self._built and now - self._built[0] < self.ttl:
                return self._built[1]
        built = self.retrained()
        with self._lock:
            self._built = (now, built)
        return built

    def invalidate(self) -> None:
        with self._lock:
            self._built = None

    def retrained(self) -> classifier_module.Classifier:
        """`Classifier(TRAINING_EXAMPLES).train(labels of the last 12 months)`, or the default when none."""
        labels = self.store.labels(months_back(self.clock.now(), LABEL_WINDOW_MONTHS))
        if not labels:
            return classifier_module.default_classifier()
        from ..domain.triage.training_data import TRAINING_EXAMPLES

        model = classifier_module.Classifier(TRAINING_EXAMPLES)
        model.train([(label.text, label.category) for label in labels if label.text.strip()])
        return model


@dataclass(frozen=True)
class TriageOutcome:
    """What triage decided for a ticket."""

    ticket_id: str
    category: str
    priority: str
    urgent: bool
    tier: str
    team: str
    assignee: str | None
    notify: tuple[tuple[str, str], ...] = field(default=())


def _order_value(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def customer_text(ticket: Ticket) -> str:
    """What the customer said first: the subject and the first inbound message."""
    inbound = sorted((m for m in ticket.messages + ticket.new_messages if m.direction == "in"), key=lambda m: m.at)
    parts = [ticket.subject.strip(), inbound[0].text.strip() if inbound else ""]
    return "\n".join(p for p in parts if p)


REASON_TITLES = {
    routing_rules.REASON_VIP: "您的 VIP 客户有新工单",
    routing_rules.REASON_NO_ONE_ONLINE: "团队无人在线，工单在队列等待",
    routing_rules.REASON_URGENT: "紧急工单",
}


def routing_title(ticket_id: str, reason: str, detail: Mapping[str, Any]) -> str:
    """The one-line notice a routing notification carries (in-app title and SNS subject)."""
    what = REASON_TITLES.get(reason, reason)
    where = f"已分派给 {detail['assignee']}" if detail.get("assignee") else f"队列 {detail.get('team', '')}"
    return f"{ticket_id}：{what}（{detail.get('priority', '')}，{where}）"


def was_triaged(ticket: Ticket) -> bool:
    return any(entry.action == "triaged" for entry in ticket.timeline + ticket.new_timeline)


def _detail(image: Mapping[str, Any]) -> dict[str, Any]:
    raw = image.get("detail") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return dict(raw) if isinstance(raw, Mapping) else {}


class TriageService:
    """Runs once per new ticket from the table stream; staff overrides and tier changes re-prioritise."""

    def __init__(
        self,
        tickets: TicketRepository,
        customers: CustomerRepository,
        staff: StaffDirectory,
        store: TriageStore,
        rules: RuleBook,
        classifiers: ClassifierSource,
        publisher: Publisher,
        clock: Clock,
        policy: SlaPolicy,
        attempts: int = 3,
        inbox: NotificationStore | None = None,
    ) -> None:
        self.inbox = inbox
        self.tickets = tickets
        self.customers = customers
        self.staff = staff
        self.store = store
        self.rules = rules
        self.classifiers = classifiers
        self.publisher = publisher
        self.clock = clock
        self.policy = policy
        self.attempts = attempts

    # --- stream handlers ------------------------------------------------------------------------
    def on_created(self, image: dict[str, Any]) -> None:
        """EffectsDispatcher handler for the timeline action "created"."""
        self.triage(str(image["ticket_id"]))

    def on_routed(self, image: dict[str, Any]) -> None:
        """EffectsDispatcher handler for "routed": tells the people the routing decision names.

        Each becomes an in-app notification (once per entry and person) and an SNS push; a redelivered
        entry pushes nothing twice when the notification store is wired in.
        """
        ticket_id, at = str(image["ticket_id"]), str(image.get("at", ""))
        detail = _detail(image)
        entry_key = f"{at}#{int(image.get('seq', 0)):04d}"
        for target in detail.get("notify") or []:
            if not isinstance(target, Mapping) or not target.get("to"):
                continue
            staff_id, reason = str(target["to"]), str(target.get("reason", ""))
            title = routing_title(ticket_id, reason, detail)
            message = {
                "type": "ticket.routed",
                "ticket_id": ticket_id,
                "to": staff_id,
                "reason": reason,
                "title": title,
                "team": detail.get("team"),
                "assignee": detail.get("assignee"),
                "category": detail.get("category"),
                "priority": detail.get("priority"),
                "urgent": bool(detail.get("urgent")),
                "tier": detail.get("tier"),
                "at": at,
            }
            notice = None
            if self.inbox is not None and at:
                notice = Notification(
                    id=notification_id(at, ticket_id, entry_key, staff_id),
                    staff_id=staff_id,
                    at=at,
                    kind="routed",
                    title=title,
                    ticket_id=ticket_id,
                    detail={k: v for k, v in message.items() if k not in ("type", "ticket_id", "to", "title", "at")},
                )
                if not self.inbox.add(notice):
                    continue
            self.publisher.publish(STAFF_TOPIC, message, subject=title)
            if self.inbox is not None and notice is not None:
                self.inbox.mark_pushed(staff_id, notice.id)

    # --- triage ---------------------------------------------------------------------------------
    def triage(self, ticket_id: str) -> TriageOutcome | None:
        """Classifies, prioritises and routes a new ticket once; a replayed event finds it triaged and stops."""
        for _attempt in range(self.attempts):
            ticket = self.tickets.find(ticket_id)
            if ticket is None or was_triaged(ticket):
                return None
            outcome = self._triage(ticket)
            try:
                self.tickets.save(ticket)
            except ConflictError:
                continue
            return outcome
        raise ConflictError(f"ticket {ticket_id} kept changing while it was triaged")

    def _customer(self, customer_id: str) -> tuple[str, str]:
        try:
            customer = self.customers.get(customer_id)
        except NotFound:
            return "normal", ""
        tier = customer.tier if customer.tier in TIERS else "normal"
        manager = customer.attributes.get("account_manager")
        return tier, manager if isinstance(manager, str) else ""

    def recent_complaints(self, ticket: Ticket, now: datetime) -> int:
        """The customer's other complaint tickets created in the last 30 days (gsi_customer Query)."""
        since = now - COMPLAINT_WINDOW
        return sum(
            1
            for other in self.store.customer_tickets_since(ticket.customer_id, since)
            if other.id != ticket.id and other.category == "complaint"
        )

    def _triage(self, ticket: Ticket) -> TriageOutcome:
        now = self.clock.now()
        text = customer_text(ticket)
        tier, account_manager = self._customer(ticket.customer_id)
        if ticket.attributes.get("category_source") == "hint" and ticket.category in CATEGORIES:
            category, confidence, source = ticket.category, 1.0, "hint"
        else:
            classification = self.classifiers.get().classify(text)
            category, confidence, source = classification.category, classification.confidence, classification.source
        channel_flag = ticket.urgent
        recent = self.recent_complaints(ticket, now)
        urgency = detect_urgency(
            text, category=category, tier=tier, channel_flag=channel_flag, recent_complaints=recent
        )
        order_value = _order_value(ticket.attributes.get("order_value"))
        decision = priority_rules.decide_priority(
            category=category,
            tier=tier,
            urgent=urgency.urgent,
            urgency_reasons=urgency.reasons,
            order_value=order_value,
            rules=self.rules.priority(),
        )
        ticket.category, ticket.priority, ticket.urgent, ticket.tier = category, decision.priority, urgency.urgent, tier
        ticket.attributes["triage"] = {
            "reasons": list(urgency.reasons),
            "channel_flag": channel_flag,
            "recent_complaints": recent,
            "order_value": order_value,
        }
        ticket.record(
            now,
            SYSTEM,
            "triaged",
            category=category,
            priority=decision.priority,
            urgent=urgency.urgent,
            tier=tier,
            reasons=list(urgency.reasons),
            evidence=list(urgency.evidence),
            confidence=round(confidence, 4),
            source=source,
            rule=decision.rule_name,
        )
        team, assignee = ticket.team, ticket.assignee or None
        notify: tuple[tuple[str, str], ...] = ()
        if ticket.status == "new" and not ticket.assignee:
            team, assignee, notify = self._route(ticket, now, account_manager)
        clock_rules.on_triaged(ticket, now, self.policy)
        return TriageOutcome(ticket.id, category, decision.priority, urgency.urgent, tier, team, assignee, notify)

    def staff_members(self) -> list[routing_rules.StaffMember]:
        """The directory as routing sees it (loads are counted by `route` for the eligible only)."""
        return [self._member(record) for record in self.staff.all()]

    def _member(self, record: StaffRecord) -> routing_rules.StaffMember:
        return routing_rules.StaffMember(
            id=record.id,
            name=record.name,
            roles=tuple(record.roles),
            team=record.team,
            regions=tuple(record.regions),
            skills=tuple(record.skills),
            online=record.online,
            account_manager_for_vip=ACCOUNT_MANAGER_SKILL in record.skills,
        )

    def _route(
        self, ticket: Ticket, now: datetime, account_manager: str
    ) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
        wanted = ticket.attributes.get("skills")
        facts = routing_rules.RoutingFacts(
            category=ticket.category,
            tier=ticket.tier,
            urgent=ticket.urgent,
            channel=ticket.channel,
            region=ticket.region,
            skills=tuple(str(s) for s in wanted) if isinstance(wanted, list) else (),
            account_manager=account_manager or None,
        )
        decision = routing_rules.route(
            facts, self.staff_members(), self.rules.routing(), load=self.store.open_ticket_count
        )
        ticket.team = decision.team
        if decision.assignee:
            ticket.apply(
                "assign", now, SYSTEM, assignee=decision.assignee, previous=None, reason="routing", rule=decision.rule
            )
            ticket.assignee = decision.assignee
            clock_rules.on_assigned(ticket, now, self.policy)
        ticket.record(
            now,
            SYSTEM,
            "routed",
            team=decision.team,
            assignee=decision.assignee,
            rule=decision.rule,
            reason=decision.reason,
            notify=[{"to": who, "reason": why} for who, why in decision.notify],
            category=ticket.category,
            priority=ticket.priority,
            urgent=ticket.urgent,
            tier=ticket.tier,
        )
        return decision.team, decision.assignee, decision.notify

    # --- re-prioritisation ----------------------------------------------------------------------
    def _reprioritise(self, ticket: Ticket) -> str:
        """Priority from the ticket's current facts (rules in force); urgency never drops on its own."""
        stored = ticket.attributes.get("triage")
        facts: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
        reasons = [str(r) for r in facts.get("reasons", []) if r != "vip_complaint"]
        if ticket.tier == "vip" and ticket.category == "complaint":
            reasons.append("vip_complaint")
        if reasons and ticket.attributes.get("urgent_source") != "staff":
            ticket.urgent = True
        facts = {**facts, "reasons": reasons}
        ticket.attributes["triage"] = facts
        decision = priority_rules.decide_priority(
            category=ticket.category,
            tier=ticket.tier,
            urgent=ticket.urgent,
            urgency_reasons=reasons,
            order_value=_order_value(facts.get("order_value")),
            rules=self.rules.priority(),
        )
        return decision.priority

    def _change(self, ticket_id: str, change: Callable[[Ticket], bool]) -> Ticket:
        return change_ticket(self.tickets, ticket_id, change, self.attempts)

    def reclassify(self, ticket_id: str, actor: Actor, body: Mapping[str, Any]) -> Ticket:
        """Staff override of category / priority / urgent: recorded, stored as a label, clocks re-armed."""
        unknown = sorted(set(body) - set(OVERRIDE_FIELDS))
        if unknown:
            raise ValidationError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(OVERRIDE_FIELDS)}")
        if not any(body.get(name) is not None for name in OVERRIDE_FIELDS):
            raise ValidationError("give at least one of category, priority, urgent")
        category, priority, urgent = body.get("category"), body.get("priority"), body.get("urgent")
        if category is not None and category not in CATEGORIES:
            raise ValidationError(f"'category' must be one of {', '.join(CATEGORIES)}")
        if priority is not None and priority not in PRIORITIES:
            raise ValidationError(f"'priority' must be one of {', '.join(PRIORITIES)}")
        if urgent is not None and not isinstance(urgent, bool):
            raise ValidationError("'urgent' must be true or false")
        before: dict[str, Any] = {}

        def change(t: Ticket) -> bool:
            now = self.clock.now()
            before.update(category=t.category, text=customer_text(t))
            changes: dict[str, dict[str, Any]] = {}
            if category is not None and category != t.category:
                changes["category"] = {"from": t.category, "to": category}
                t.category = str(category)
                t.attributes["category_source"] = "staff"
            if urgent is not None and urgent != t.urgent:
                changes["urgent"] = {"from": t.urgent, "to": urgent}
                t.urgent = bool(urgent)
                t.attributes["urgent_source"] = "staff"
            new_priority = t.priority
            if priority is not None:
                new_priority = str(priority)
                if priority != t.priority:
                    t.attributes["priority_source"] = "staff"
            elif changes and t.attributes.get("priority_source") != "staff":
                new_priority = self._reprioritise(t)
            if new_priority != t.priority:
                changes["priority"] = {"from": t.priority, "to": new_priority}
                t.priority = new_priority
            if not changes:
                return False
            t.record(now, actor.id, "reclassified", changes=changes, **{k: v["to"] for k, v in changes.items()})
            if "priority" in changes or "urgent" in changes:
                clock_rules.on_triaged(t, now, self.policy)
            return True

        ticket = self._change(ticket_id, change)
        if category is not None and before.get("text"):
            self.store.add_label(
                Label(
                    ticket_id=ticket.id,
                    text=str(before["text"]),
                    category=str(category),
                    previous=str(before.get("category", "")),
                    at=iso(self.clock.now()),
                    actor=actor.id,
                )
            )
            self.classifiers.invalidate()
        return ticket

    def apply_tier(self, ticket_id: str, tier: str) -> Ticket:
        """A customer's tier changed: the open ticket takes it and its priority is recomputed (clocks re-armed)."""

        def change(t: Ticket) -> bool:
            if t.tier == tier or not t.is_open:
                return False
            now = self.clock.now()
            previous_tier, t.tier = t.tier, tier
            detail: dict[str, Any] = {"tier": {"from": previous_tier, "to": tier}}
            if was_triaged(t) and t.attributes.get("priority_source") != "staff":
                new_priority = self._reprioritise(t)
                if new_priority != t.priority:
                    detail["priority"] = {"from": t.priority, "to": new_priority}
                    t.priority = new_priority
            t.record(now, SYSTEM, "tier_changed", changes=detail)
            if "priority" in detail:
                clock_rules.on_triaged(t, now, self.policy)
            return True

        return self._change(ticket_id, change)
