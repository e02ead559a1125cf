"""Routing: rules as data, least-loaded online assignee, supervisors and managers notified."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.routing import (
    DEFAULT_RULES,
    ROLES,
    RoutingFacts,
    RoutingRule,
    StaffMember,
    route,
    rules_from_json,
    rules_to_json,
)
from chalicelib.domain.ticket import CATEGORIES, TIERS


def member(id: str, roles: tuple[str, ...], team: str, **kw: Any) -> StaffMember:
    return StaffMember(id=id, name=id.title(), roles=roles, team=team, **kw)


AGENT_A = member("a", ("agent",), "agents", online=True, open_tickets=3)
AGENT_B = member("b", ("agent",), "agents", online=True, open_tickets=1)
SUP = member("sup", ("supervisor",), "supervisors", online=True, open_tickets=2)
AGENT_SUP = member("agent-sup", ("supervisor", "agent"), "agents", online=False)
SENIOR_1 = member("s1", ("senior_agent",), "vip", online=False, open_tickets=0)
SENIOR_2 = member("s2", ("senior_agent",), "vip", online=True, open_tickets=4)
VIP_SUP = member("vip-sup", ("supervisor",), "vip", online=True)
AM = member("am", ("manager",), "sales", account_manager_for_vip=True)
DUTY = member("duty", ("duty_manager",), "managers", online=True)
DUTY_OFF = member("duty-off", ("duty_manager",), "managers", online=False)
STAFF = [AGENT_A, AGENT_B, SUP, AGENT_SUP, SENIOR_1, SENIOR_2, VIP_SUP, AM, DUTY, DUTY_OFF]


def test_consultation_goes_to_the_least_loaded_online_agent() -> None:
    decision = route(RoutingFacts(category="consultation"), STAFF)
    assert decision.team == "agents"
    assert decision.assignee == "b"
    assert decision.rule == "consultation"
    assert decision.notify == ()
    assert "1 open tickets" in decision.reason


def test_a_load_counter_is_asked_about_the_eligible_online_only() -> None:
    asked: list[str] = []

    def load(staff_id: str) -> int:
        asked.append(staff_id)
        return {"a": 0, "b": 7}[staff_id]

    decision = route(RoutingFacts(category="consultation"), STAFF, load=load)
    assert sorted(asked) == ["a", "b"]  # not the supervisors, seniors or the duty managers
    assert decision.assignee == "a"
    assert "0 open tickets" in decision.reason


def test_ties_are_broken_by_id() -> None:
    staff = [replace(AGENT_A, id="z", open_tickets=1), replace(AGENT_B, id="m", open_tickets=1)]
    assert route(RoutingFacts(), staff).assignee == "m"
    assert route(RoutingFacts(), list(reversed(staff))).assignee == "m"


def test_nobody_online_queues_for_the_team_and_tells_the_supervisor() -> None:
    staff = [replace(AGENT_A, online=False), replace(AGENT_B, online=False), AGENT_SUP, SUP]
    decision = route(RoutingFacts(category="consultation"), staff)
    assert decision.team == "agents"
    assert decision.assignee is None
    # the agents team's own supervisor, not the supervisors team
    assert decision.notify == (("agent-sup", "no_one_online"),)


def test_nobody_online_without_team_supervisor_tells_every_supervisor() -> None:
    staff = [replace(AGENT_A, online=False), SUP, VIP_SUP]
    decision = route(RoutingFacts(category="consultation"), staff)
    assert decision.assignee is None
    assert decision.notify == (("sup", "no_one_online"), ("vip-sup", "no_one_online"))


def test_vip_complaint_goes_to_an_online_senior_agent_and_tells_the_account_manager() -> None:
    facts = RoutingFacts(category="complaint", tier="vip", account_manager="am-7")
    decision = route(facts, STAFF)
    assert decision.team == "vip"
    assert decision.assignee == "s2"  # s1 has fewer tickets but is offline
    assert decision.rule == "vip"
    assert decision.notify == (("am-7", "vip_account_manager"),)


def test_vip_without_named_account_manager_tells_the_flagged_ones() -> None:
    decision = route(RoutingFacts(category="consultation", tier="vip"), STAFF)
    assert decision.notify == (("am", "vip_account_manager"),)


def test_normal_complaint_goes_to_supervisors() -> None:
    decision = route(RoutingFacts(category="complaint"), STAFF)
    assert (decision.team, decision.assignee) == ("supervisors", "sup")


def test_other_categories() -> None:
    staff = [
        member("as1", ("after_sales",), "after_sales", online=True),
        member("po1", ("product_ops",), "product_ops", online=True),
    ]
    assert route(RoutingFacts(category="after_sales"), staff).assignee == "as1"
    assert route(RoutingFacts(category="suggestion"), staff).assignee == "po1"
    assert route(RoutingFacts(category="suggestion"), staff).team == "product_ops"


def test_urgent_adds_the_duty_manager_without_changing_the_team() -> None:
    decision = route(RoutingFacts(category="consultation", urgent=True), STAFF)
    assert (decision.team, decision.assignee, decision.rule) == ("agents", "b", "consultation")
    assert decision.notify == (("duty", "urgent"),)  # only the online duty manager
    assert "urgent" in decision.reason
    # an urgent VIP: both the account manager and the duty manager
    decision = route(RoutingFacts(category="complaint", tier="vip", urgent=True, account_manager="am"), STAFF)
    assert decision.team == "vip"
    assert decision.notify == (("am", "vip_account_manager"), ("duty", "urgent"))
    # no duty manager online: all of them are told
    decision = route(RoutingFacts(urgent=True), [AGENT_B, replace(DUTY, online=False), DUTY_OFF])
    assert decision.notify == (("duty", "urgent"), ("duty-off", "urgent"))


def test_region_matching() -> None:
    north = member("north", ("agent",), "agents", regions=("north",), online=True, open_tickets=0)
    south = member("south", ("agent",), "agents", regions=("south",), online=True, open_tickets=5)
    anywhere = member("any", ("agent",), "agents", online=True, open_tickets=7)
    staff = [north, south, anywhere]
    assert route(RoutingFacts(region="south"), staff).assignee == "south"
    assert route(RoutingFacts(region="west"), staff).assignee == "any"
    assert route(RoutingFacts(region=""), staff).assignee == "north"  # no region: everyone qualifies


def test_skill_matching_and_relaxing() -> None:
    en = member("en", ("agent",), "agents", skills=("english", "billing"), online=True, open_tickets=5)
    zh = member("zh", ("agent",), "agents", skills=("billing",), online=True, open_tickets=0)
    staff = [en, zh]
    assert route(RoutingFacts(skills=("english",)), staff).assignee == "en"
    assert route(RoutingFacts(skills=("billing",)), staff).assignee == "zh"
    # nobody speaks French: the wanted skill is relaxed rather than leaving the ticket unassigned
    decision = route(RoutingFacts(skills=("french",)), staff)
    assert decision.assignee == "zh" and "relaxed" in decision.reason
    # a rule's required skills are never relaxed
    rules = (RoutingRule(name="billing", team="agents", roles=("agent",), skills=("english",)),)
    assert route(RoutingFacts(), staff, rules).assignee == "en"
    assert route(RoutingFacts(), [zh], rules).assignee is None


def test_channel_rules_and_first_match_wins() -> None:
    rules = (
        RoutingRule(name="phone", channels=("PHONE",), team="hotline", roles=("agent",)),
        RoutingRule(name="rest", team="agents", roles=("agent",)),
    )
    hotline = member("h", ("agent",), "hotline", online=True)
    assert route(RoutingFacts(channel="PHONE"), [hotline, AGENT_B], rules).assignee == "h"
    assert route(RoutingFacts(channel="WECHAT"), [hotline, AGENT_B], rules).assignee == "b"


def test_no_matching_rule_falls_back_to_agents() -> None:
    rules = (RoutingRule(name="only-complaints", categories=("complaint",), team="supervisors"),)
    decision = route(RoutingFacts(category="suggestion"), [AGENT_B], rules)
    assert (decision.team, decision.assignee, decision.rule) == ("agents", "b", "fallback")


def test_rules_json_round_trip() -> None:
    data = rules_to_json(DEFAULT_RULES)
    assert rules_from_json(json.loads(json.dumps(data))) == DEFAULT_RULES
    assert data[0]["team"] is None and data[0]["notify_duty_manager"] is True
    custom = [
        {
            "name": "north-vip",
            "match": {"tiers": ["vip"], "regions": ["north"]},
            "team": "vip-north",
            "roles": ["senior_agent"],
            "skills": ["mandarin"],
            "notify_account_manager": True,
        },
        {"name": "default", "team": "agents"},
    ]
    rules = rules_from_json(custom)
    assert rules[0].regions == ("north",) and rules[1].roles == () and rules[1].urgent is None
    assert rules_from_json(rules_to_json(rules)) == rules


@pytest.mark.parametrize(
    "data",
    [
        {},
        [],
        ["vip"],
        [{"team": "agents"}],
        [{"name": "Bad Name", "team": "agents"}],
        [{"name": "x", "team": "agents", "colour": "red"}],
        [{"name": "x", "team": "agents", "match": {"tier": ["vip"]}}],
        [{"name": "x", "team": "agents", "match": {"tiers": ["gold"]}}],
        [{"name": "x", "team": "agents", "match": {"categories": ["refund"]}}],
        [{"name": "x", "team": "agents", "match": {"urgent": "yes"}}],
        [{"name": "x", "team": "agents", "match": {"channels": "PHONE"}}],
        [{"name": "x", "team": "agents", "match": []}],
        [{"name": "x", "team": "agents", "roles": ["wizard"]}],
        [{"name": "x", "team": "agents", "skills": [""]}],
        [{"name": "x", "team": "agents", "notify_duty_manager": 1}],
        [{"name": "x", "team": 5}],
        [{"name": "x", "team": "agents"}, {"name": "x", "team": "vip"}],
        [{"name": "x", "notify_duty_manager": True}],  # nobody routes
        [{"name": "x", "roles": ["agent"], "notify_duty_manager": True}, {"name": "y", "team": "agents"}],
        [{"name": "x"}, {"name": "y", "team": "agents"}],  # a modifier that does nothing
        [{"name": f"r{i}", "team": "agents"} for i in range(201)],
    ],
)
def test_rules_json_validation(data: Any) -> None:
    with pytest.raises(ValidationError):
        rules_from_json(data)


# ---------------------------------------------------------------- properties

staff_members = st.builds(
    StaffMember,
    id=st.text("abcdef", min_size=1, max_size=3),
    name=st.just("n"),
    roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True).map(tuple),
    team=st.sampled_from(["agents", "vip", "supervisors", "after_sales", "product_ops"]),
    regions=st.lists(st.sampled_from(["north", "south"]), max_size=2, unique=True).map(tuple),
    skills=st.lists(st.sampled_from(["en", "zh"]), max_size=2, unique=True).map(tuple),
    online=st.booleans(),
    open_tickets=st.integers(0, 20),
    account_manager_for_vip=st.booleans(),
)
facts_strategy = st.builds(
    RoutingFacts,
    category=st.sampled_from(CATEGORIES),
    tier=st.sampled_from(TIERS),
    urgent=st.booleans(),
    region=st.sampled_from(["", "north", "south"]),
    skills=st.lists(st.sampled_from(["en", "zh"]), max_size=1).map(tuple),
)


@given(facts_strategy, st.lists(staff_members, max_size=12, unique_by=lambda m: m.id))
def test_assignee_is_online_eligible_and_least_loaded(facts: RoutingFacts, staff: list[StaffMember]) -> None:
    decision = route(facts, staff)
    rule = next(r for r in DEFAULT_RULES if r.team and r.matches(facts))
    assert decision.team == rule.team
    team_online = [
        m
        for m in staff
        if m.online
        and m.team == rule.team
        and m.has_role(*rule.roles)
        and (not m.regions or not facts.region or facts.region in m.regions)
    ]
    skilled = [m for m in team_online if set(facts.skills) <= set(m.skills)]
    if decision.assignee is None:
        assert not team_online
        assert {reason for _, reason in decision.notify} <= {"no_one_online", "vip_account_manager", "urgent"}
    else:
        chosen = next(m for m in staff if m.id == decision.assignee)
        assert chosen in team_online
        pool = skilled or team_online
        assert (chosen.open_tickets, chosen.id) == min((m.open_tickets, m.id) for m in pool)
        assert ("relaxed" in decision.reason) == (not skilled)
    assert len(set(decision.notify)) == len(decision.notify)
    assert (facts.tier == "vip") == any(r == "vip_account_manager" for _, r in decision.notify) or not any(
        m.account_manager_for_vip for m in staff
    )
    # deterministic whatever the order of the staff list
    assert route(facts, list(reversed(staff))) == decision
