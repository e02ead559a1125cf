"""Every SLA clock executed by the real state machine in moto, with second-long policies and real time."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import clock_rules
from chalicelib.domain.sla import SlaPolicy
from chalicelib.services.tickets import Actor
from tests.workflows.conftest import Flow, seconds_between

AGENT = Actor("agent1", ("agent",))
LONG = {"P0": "PT1H", "P1": "PT1H", "P2": "PT1H"}
# Stopped (ABORTED), or ended by the deadline check finding the clock no longer running (SUCCEEDED); under heavy
# load moto may also report a run it stopped mid-task as FAILED. The real assertions are: no escalation, state kept.
ENDED_QUIETLY = ("ABORTED", "SUCCEEDED", "FAILED")
WAIT = 20  # seconds a workflow may take to show a result (generous for loaded CI machines)


def triaged(flow: Flow) -> Any:
    policy = flow.container.settings.sla_policy
    return lambda t: clock_rules.on_triaged(t, flow.stack.clock.now(), policy)


@pytest.mark.workflow
@pytest.mark.settings(
    sla_policy=SlaPolicy.from_mapping(
        {"first_response": {"P1": "PT5S"}, "resolution": LONG, "escalation_period": "PT2S"}
    )
)
def test_first_response_warns_then_escalates_to_supervisor_and_then_manager(flow: Flow) -> None:
    ticket = flow.ticket(change=triaged(flow))
    assert ticket.clocks["first_response"].state == "running"

    warning = flow.run_until(lambda: flow.timeline(ticket.id, "clock_warning"), timeout=WAIT)
    assert warning[0]["clock"] == "first_response" and warning[0]["to"] == "agent1"

    flow.run_until(lambda: len(flow.timeline(ticket.id, "escalated")) >= 2, timeout=WAIT)
    first, second = flow.timeline(ticket.id, "escalated")
    assert warning[0]["at"] < first["at"], "the warning comes before the breach"
    assert (first["clock"], first["level"], first["role"], first["to"]) == (
        "first_response",
        1,
        "supervisor",
        "supervisor1",
    )
    assert (second["clock"], second["level"], second["role"], second["to"]) == (
        "first_response",
        2,
        "manager",
        "manager1",
    )
    clock = flow.get(ticket.id).clocks["first_response"]
    assert (clock.state, clock.version, clock.level) == ("breached", 2, 1)
    assert flow.executions(ticket.id, "first_response") == {
        f"{ticket.id}-first_response-1": "SUCCEEDED",
        f"{ticket.id}-first_response-2": "SUCCEEDED",
    }
    flow.run_until(lambda: flow.notifications("manager1"), timeout=WAIT)
    assert [n["kind"] for n in flow.notifications("agent1")] == ["clock_warning"]
    assert [n["detail"]["level"] for n in flow.notifications("supervisor1")] == [1]
    assert [n["detail"]["level"] for n in flow.notifications("manager1")] == [2]
    flow.run_until(
        lambda: flow.container.notification_store.breaches(flow.day()) == {"first_response": 2}, timeout=WAIT
    )
    flow.run_for(1.5)  # nothing further: the manager is the top of the ladder
    assert len(flow.timeline(ticket.id, "escalated")) == 2


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"first_response": {"P1": "PT6S"}, "resolution": LONG}))
def test_a_reply_in_time_satisfies_first_response_and_nothing_fires(flow: Flow) -> None:
    ticket = flow.ticket(change=triaged(flow))
    flow.tick()  # the reply comes at once: the stream starts the run and then stops it, in that order
    flow.container.actions.reply(ticket.id, AGENT, "您好，我们正在处理")
    after = flow.get(ticket.id)
    assert after.clocks["first_response"].state == "satisfied"
    assert after.clocks["progress"].state == "running", "a reply starts the progress clock"
    flow.run_past(ticket.clocks["first_response"].due_at)
    # Stopped by the stream, or (when the stop raced the start) ended by the conditional check at the deadline.
    assert flow.executions(ticket.id, "first_response")[f"{ticket.id}-first_response-1"] in ENDED_QUIETLY
    assert not flow.timeline(ticket.id, "escalated")
    assert flow.get(ticket.id).clocks["first_response"].state == "satisfied"


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"first_response": LONG, "resolution": {"P1": "PT5S"}}))
def test_waiting_on_customer_pauses_resolution_and_the_reply_resumes_it_later(flow: Flow) -> None:
    ticket = flow.ticket(change=triaged(flow))
    original_due = ticket.clocks["resolution"].due_at
    flow.tick()
    flow.container.actions.set_status(ticket.id, AGENT, "waiting_on_customer")
    paused = flow.get(ticket.id).clocks["resolution"]
    assert (paused.state, paused.version, paused.due_at) == ("paused", 1, original_due)
    flow.run_past(original_due)  # past the original deadline: a paused clock does not fire
    assert flow.executions(ticket.id, "resolution")[f"{ticket.id}-resolution-1"] in ENDED_QUIETLY
    assert not flow.timeline(ticket.id, "escalated")

    def customer_replies(t: Any, now: Any) -> None:  # what intake does with a customer's message
        t.add_message("in", "照片发您了", now, "customer")
        t.apply("customer_reply", now, "customer")

    resumed_at = flow.change(ticket.id, customer_replies).updated_at
    resumed = flow.run_until(lambda: (c := flow.get(ticket.id).clocks["resolution"]).state == "running" and c)
    assert resumed.version == 2
    paused_for = seconds_between(paused.ended_at, resumed_at)
    assert seconds_between(original_due, resumed.due_at) == pytest.approx(paused_for, abs=0.01)
    escalated = flow.run_until(lambda: flow.timeline(ticket.id, "escalated"), timeout=WAIT)
    assert escalated[0]["clock"] == "resolution" and escalated[0]["version"] == 2
    assert set(flow.executions(ticket.id, "resolution")) == {f"{ticket.id}-resolution-1", f"{ticket.id}-resolution-2"}


@pytest.mark.workflow
@pytest.mark.settings(
    sla_policy=SlaPolicy.from_mapping({"first_response": {"P2": "PT1H", "P0": "PT4S"}, "resolution": LONG})
)
def test_a_priority_change_rearms_the_clock_and_stops_the_old_run(flow: Flow) -> None:
    ticket = flow.ticket(priority="P2", change=triaged(flow))
    flow.run_until(lambda: flow.executions(ticket.id, "first_response"), timeout=WAIT)

    def same_priority_again(t: Any, now: Any) -> None:
        clock_rules.on_triaged(t, now, flow.container.settings.sla_policy)

    assert flow.change(ticket.id, same_priority_again).clocks["first_response"].version == 1

    def raise_to_p0(t: Any, now: Any) -> None:
        t.priority = "P0"
        clock_rules.on_triaged(t, now, flow.container.settings.sla_policy)

    rearmed = flow.change(ticket.id, raise_to_p0).clocks["first_response"]
    assert rearmed.version == 2 and seconds_between(ticket.created_at, rearmed.due_at) == pytest.approx(4)
    escalated = flow.run_until(lambda: flow.timeline(ticket.id, "escalated"), timeout=WAIT)
    assert (escalated[0]["clock"], escalated[0]["version"]) == ("first_response", 2)
    assert flow.executions(ticket.id, "first_response")[f"{ticket.id}-first_response-1"] == "ABORTED"


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"progress": "PT2S"}))
def test_progress_reminds_the_supervisor_repeatedly_until_a_reply_resets_it(flow: Flow) -> None:
    ticket = flow.ticket(status="assigned")
    flow.container.actions.ack(ticket.id, AGENT)
    assert flow.get(ticket.id).clocks["progress"].state == "running"
    reminders = flow.run_until(lambda: len(found := flow.timeline(ticket.id, "escalated")) >= 2 and found, timeout=WAIT)
    assert [(r["clock"], r["role"], r["to"]) for r in reminders] == [("progress", "supervisor", "supervisor1")] * 2
    assert flow.get(ticket.id).assignee == "agent1", "a progress reminder does not take the ticket away"
    flow.tick()
    flow.container.actions.reply(ticket.id, AGENT, "进度：已联系仓库")
    reset = flow.get(ticket.id).clocks["progress"]
    assert (reset.state, reset.level) == ("running", 0) and reset.version >= 4
    flow.tick()
    flow.container.actions.resolve(ticket.id, AGENT)
    assert flow.get(ticket.id).clocks["progress"].state == "stopped"
    flow.run_for(2.5)
    assert len(flow.timeline(ticket.id, "escalated")) == 2


@pytest.mark.workflow
@pytest.mark.settings(
    sla_policy=SlaPolicy.from_mapping({"urgent_ack": "PT5S", "first_response": LONG, "resolution": LONG})
)
def test_urgent_reaches_the_duty_manager_at_once_and_the_manager_when_not_acknowledged(flow: Flow) -> None:
    ticket = flow.ticket(urgent=True, status="new", assignee="", change=triaged(flow))
    alert = flow.run_until(lambda: flow.timeline(ticket.id, "urgent_alert"), timeout=WAIT)
    assert alert[0]["recipients"] == ["duty1"]
    flow.run_until(lambda: flow.notifications("duty1"), timeout=WAIT)
    escalated = flow.run_until(lambda: flow.timeline(ticket.id, "escalated"), timeout=WAIT)
    assert (escalated[0]["clock"], escalated[0]["role"], escalated[0]["to"]) == ("urgent", "manager", "manager1")
    assert alert[0]["at"] <= escalated[0]["at"], "the duty manager hears of it first, at the start"
    flow.run_until(lambda: flow.notifications("manager1"), timeout=WAIT)


@pytest.mark.workflow
@pytest.mark.settings(
    sla_policy=SlaPolicy.from_mapping({"urgent_ack": "PT8S", "first_response": LONG, "resolution": LONG})
)
def test_an_acknowledged_urgent_ticket_does_not_escalate(flow: Flow) -> None:
    ticket = flow.ticket(urgent=True, status="new", assignee="", change=triaged(flow))
    flow.run_until(lambda: flow.timeline(ticket.id, "urgent_alert"), timeout=WAIT)
    flow.tick()
    flow.container.actions.ack(ticket.id, Actor("duty1", ("duty_manager",)))
    assert flow.get(ticket.id).clocks["urgent"].state == "satisfied"
    flow.run_past(ticket.clocks["urgent"].due_at)
    assert not flow.timeline(ticket.id, "escalated")


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"callback": "PT1S"}))
def test_a_missed_callback_escalates_to_the_manager(flow: Flow) -> None:
    policy = flow.container.settings.sla_policy
    ticket = flow.ticket(change=lambda t: clock_rules.on_callback_task(t, flow.stack.clock.now(), policy))
    escalated = flow.run_until(lambda: flow.timeline(ticket.id, "escalated"), timeout=WAIT)
    assert (escalated[0]["clock"], escalated[0]["role"], escalated[0]["to"]) == ("callback", "manager", "manager1")
    assert flow.get(ticket.id).clocks["callback"].state == "breached"


@pytest.mark.workflow
@pytest.mark.settings(sla_policy=SlaPolicy.from_mapping({"ack": "PT1S", "escalation_period": {"ack": "PT1S"}}))
def test_ack_ladder_reaches_the_manager_when_the_supervisor_also_misses(flow: Flow) -> None:
    ticket = flow.ticket(status="new", assignee="")
    flow.tick()
    flow.container.actions.assign(ticket.id, Actor("supervisor1", ("supervisor",)), "agent1")
    escalated = flow.run_until(lambda: len(found := flow.timeline(ticket.id, "escalated")) >= 2 and found, timeout=WAIT)
    assert [(e["role"], e["to"]) for e in escalated] == [("supervisor", "supervisor1"), ("manager", "manager1")]
    assert flow.get(ticket.id).assignee == "manager1"


@pytest.mark.workflow
def test_starting_the_same_clock_run_twice_makes_one_execution(flow: Flow) -> None:
    policy = flow.container.settings.sla_policy
    ticket = flow.ticket(change=lambda t: clock_rules.on_assigned(t, flow.stack.clock.now(), policy))
    clock = ticket.clocks["ack"]
    flow.container.timers.start(ticket.id, clock)
    flow.container.timers.start(ticket.id, clock)
    flow.pump.poll_stream()  # the stream starts it a third time
    assert flow.executions(ticket.id, "ack") == {f"{ticket.id}-ack-1": "RUNNING"}
