"""Ticket routing as data: rules pick a team and eligible staff; the least-loaded online member gets it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ValidationError
from .ticket import CATEGORIES, TIERS

ROLES = (
    "agent",
    "senior_agent",
    "supervisor",
    "manager",
    "duty_manager",
    "after_sales",
    "engineer",
    "product_ops",
    "qa",
    "admin",
)
# After-sales work orders (docs/WORK_ORDERS.md): who runs them; engineers see and work only those assigned to them.
WORK_ORDER_MANAGERS = frozenset({"after_sales", "supervisor", "manager", "admin"})
ENGINEER = "engineer"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")

REASON_NO_ONE_ONLINE = "no_one_online"
REASON_VIP = "vip_account_manager"
REASON_URGENT = "urgent"


@dataclass(frozen=True)
class StaffMember:
    """A member of staff as routing sees them.

    `regions` empty = serves every region; `open_tickets` is their current load; `account_manager_for_vip`
    marks the fallback account managers told about VIP tickets whose customer has no named manager.
    """

    id: str
    name: str
    roles: tuple[str, ...]
    team: str
    regions: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    online: bool = False
    open_tickets: int = 0
    account_manager_for_vip: bool = False

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


@dataclass(frozen=True)
class RoutingFacts:
    """What routing knows of a ticket; `skills` are wanted tags, `account_manager` the customer's, if any."""

    category: str = "consultation"
    tier: str = "normal"
    urgent: bool = False
    channel: str = ""
    region: str = ""
    skills: tuple[str, ...] = ()
    account_manager: str | None = None


@dataclass(frozen=True)
class RoutingRule:
    """One row of the routing table. Empty match tuples (and `urgent=None`) match anything.

    A rule with a `team` routes: the first such rule that matches wins. A rule without a team is a
    modifier: when it matches, its notify flags apply and the search goes on (so "urgent" adds a
    duty-manager notification on top of the normal team routing instead of replacing it).
    """

    name: str
    categories: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    urgent: bool | None = None
    channels: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    team: str = ""
    roles: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    notify_account_manager: bool = False
    notify_duty_manager: bool = False

    def matches(self, facts: RoutingFacts) -> bool:
        return (
            (not self.categories or facts.category in self.categories)
            and (not self.tiers or facts.tier in self.tiers)
            and (self.urgent is None or facts.urgent == self.urgent)
            and (not self.channels or facts.channel in self.channels)
            and (not self.regions or facts.region in self.regions)
        )


@dataclass(frozen=True)
class RoutingDecision:
    """Where a ticket goes: team, assignee (None = waits in the team queue), who to tell and why."""

    team: str
    assignee: str | None
    notify: tuple[tuple[str, str], ...] = field(default=())
    reason: str = ""
    rule: str = ""


DEFAULT_RULES: tuple[RoutingRule, ...] = (
    RoutingRule(name="urgent", urgent=True, notify_duty_manager=True),
    RoutingRule(name="vip", tiers=("vip",), team="vip", roles=("senior_agent",), notify_account_manager=True),
    RoutingRule(name="complaint", categories=("complaint",), team="supervisors", roles=("supervisor",)),
    RoutingRule(name="after_sales", categories=("after_sales",), team="after_sales", roles=("after_sales",)),
    RoutingRule(name="suggestion", categories=("suggestion",), team="product_ops", roles=("product_ops",)),
    RoutingRule(name="consultation", categories=("consultation",), team="agents", roles=("agent",)),
)
# Used when no rule with a team matches (a table without a catch-all).
FALLBACK_RULE = RoutingRule(name="fallback", team="agents", roles=("agent",))


def _eligible(member: StaffMember, rule: RoutingRule, facts: RoutingFacts, wanted: frozenset[str]) -> bool:
    return (
        member.team == rule.team
        and (not rule.roles or member.has_role(*rule.roles))
        and (not member.regions or not facts.region or facts.region in member.regions)
        and wanted <= set(member.skills)
    )


def route(
    facts: RoutingFacts,
    staff: Sequence[StaffMember],
    rules: Sequence[RoutingRule] = DEFAULT_RULES,
    load: Callable[[str], int] | None = None,
) -> RoutingDecision:
    """Applies the rules to the facts and picks an assignee among `staff`.

    Eligible: in the rule's team, holding one of its roles (any role when the rule names none), serving
    the ticket's region (a member without regions serves all), with every skill the rule requires and
    the skills the ticket wants. If nobody online has the ticket's wanted skills, they are relaxed to the
    rule's own. Among the online eligible the one with the fewest open tickets wins, ties by id. Nobody
    online → no assignee and the team's supervisors (every supervisor when the team has none) are told.
    `load(staff_id)`, when given, counts the open tickets of the eligible only (instead of `open_tickets`).
    """
    notify: list[tuple[str, str]] = []
    chosen: RoutingRule | None = None
    modifiers: list[RoutingRule] = []
    for rule in rules:
        if not rule.matches(facts):
            continue
        if rule.team:
            chosen = rule
            break
        modifiers.append(rule)
    rule = chosen or FALLBACK_RULE
    applied = [*modifiers, rule]

    required = frozenset(rule.skills)
    wanted = required | frozenset(facts.skills)
    candidates = [m for m in staff if _eligible(m, rule, facts, wanted) and m.online]
    relaxed = False
    if not candidates and wanted != required:
        candidates = [m for m in staff if _eligible(m, rule, facts, required) and m.online]
        relaxed = bool(candidates)
    if load is not None:
        candidates = [replace(m, open_tickets=load(m.id)) for m in candidates]
    candidates.sort(key=lambda m: (m.open_tickets, m.id))
    assignee = candidates[0] if candidates else None

    who = "/".join(rule.roles) if rule.roles else "member"
    if assignee is not None:
        reason = (
            f"rule {rule.name!r}: least-loaded online {who} of team {rule.team!r} "
            f"({assignee.open_tickets} open tickets)" + ("; wanted skills relaxed" if relaxed else "")
        )
    else:
        reason = f"rule {rule.name!r}: no eligible {who} of team {rule.team!r} online; queued for the team"
        supervisors = [m for m in staff if m.team == rule.team and m.has_role("supervisor")]
        if not supervisors:
            supervisors = [m for m in staff if m.has_role("supervisor")]
        notify += [(m.id, REASON_NO_ONE_ONLINE) for m in sorted(supervisors, key=lambda m: m.id)]

    if any(r.notify_account_manager for r in applied):
        if facts.account_manager:
            notify.append((facts.account_manager, REASON_VIP))
        else:
            managers = sorted((m for m in staff if m.account_manager_for_vip), key=lambda m: m.id)
            notify += [(m.id, REASON_VIP) for m in managers]
    if any(r.notify_duty_manager for r in applied):
        duty = [m for m in staff if m.has_role("duty_manager")]
        on_duty = [m for m in duty if m.online] or duty
        notify += [(m.id, REASON_URGENT) for m in sorted(on_duty, key=lambda m: m.id)]

    unique = tuple(dict.fromkeys(notify))
    modifier_names = [m.name for m in modifiers]
    if modifier_names:
        reason += f" (+ {', '.join(modifier_names)})"
    return RoutingDecision(
        team=rule.team,
        assignee=assignee.id if assignee else None,
        notify=unique,
        reason=reason,
        rule=rule.name,
    )


# ----------------------------------------------------------------- JSON

_MATCH_KEYS = ("categories", "tiers", "urgent", "channels", "regions")
_RULE_KEYS = ("name", "match", "team", "roles", "skills", "notify_account_manager", "notify_duty_manager")


def rule_to_json(rule: RoutingRule) -> dict[str, Any]:
    """One rule as JSON: `{"name", "match": {…}, "team", "roles", "skills", "notify_*"}`."""
    return {
        "name": rule.name,
        "match": {
            "categories": list(rule.categories),
            "tiers": list(rule.tiers),
            "urgent": rule.urgent,
            "channels": list(rule.channels),
            "regions": list(rule.regions),
        },
        "team": rule.team or None,
        "roles": list(rule.roles),
        "skills": list(rule.skills),
        "notify_account_manager": rule.notify_account_manager,
        "notify_duty_manager": rule.notify_duty_manager,
    }


def rules_to_json(rules: Sequence[RoutingRule]) -> list[dict[str, Any]]:
    """The routing table as a JSON list (the inverse of rules_from_json)."""
    return [rule_to_json(rule) for rule in rules]


def _strings(data: Mapping[str, Any], key: str, where: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValidationError(f"{where}: {key} must be a list of non-empty strings")
    if allowed is not None:
        unknown = [item for item in value if item not in allowed]
        if unknown:
            raise ValidationError(f"{where}: unknown {key} {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    return tuple(dict.fromkeys(value))


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(f"{where}: {key} must be true or false")
    return value


def rule_from_json(data: Any, index: int = 0) -> RoutingRule:
    """Validates and builds one rule; errors name the rule's position and name."""
    where = f"rule {index + 1}"
    if not isinstance(data, Mapping):
        raise ValidationError(f"{where} must be an object")
    unknown = set(data) - set(_RULE_KEYS)
    if unknown:
        raise ValidationError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"{where}: name must be lower-case letters, digits, _ or - (1-64)")
    where = f"rule {index + 1} ({name})"
    match = data.get("match", {})
    if not isinstance(match, Mapping):
        raise ValidationError(f"{where}: match must be an object")
    unknown = set(match) - set(_MATCH_KEYS)
    if unknown:
        raise ValidationError(f"{where}: unknown match keys {', '.join(sorted(map(str, unknown)))}")
    urgent = match.get("urgent")
    if urgent is not None and not isinstance(urgent, bool):
        raise ValidationError(f"{where}: match.urgent must be true, false or null")
    team = data.get("team") or ""
    if not isinstance(team, str) or (team and not _NAME.match(team)):
        raise ValidationError(f"{where}: team must be lower-case letters, digits, _ or - (or null)")
    rule = RoutingRule(
        name=name,
        categories=_strings(match, "categories", where, CATEGORIES),
        tiers=_strings(match, "tiers", where, TIERS),
        urgent=urgent,
        channels=_strings(match, "channels", where),
        regions=_strings(match, "regions", where),
        team=team,
        roles=_strings(data, "roles", where, ROLES),
        skills=_strings(data, "skills", where),
        notify_account_manager=_flag(data, "notify_account_manager", where),
        notify_duty_manager=_flag(data, "notify_duty_manager", where),
    )
    if not rule.team and (rule.roles or rule.skills):
        raise ValidationError(f"{where}: roles and skills need a team")
    if not rule.team and not (rule.notify_account_manager or rule.notify_duty_manager):
        raise ValidationError(f"{where}: a rule without a team must notify someone, or it does nothing")
    return rule


def rules_from_json(data: Any) -> tuple[RoutingRule, ...]:
    """Validates an admin-edited routing table (a JSON list of rules); ValidationError when malformed."""
    if not isinstance(data, list) or not data:
        raise ValidationError("routing rules must be a non-empty list")
    if len(data) > 200:
        raise ValidationError("at most 200 routing rules")
    rules = tuple(rule_from_json(item, index) for index, item in enumerate(data))
    names = [rule.name for rule in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(f"duplicate rule names: {', '.join(duplicates)}")
    if not any(rule.team for rule in rules):
        raise ValidationError("at least one rule must route to a team")
    return rules
