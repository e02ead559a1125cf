"""The DynamoDB ticket repository in moto: round trip, optimistic locking, retries, counters, clocks."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.errors import ConflictError, NotFound
from chalicelib.domain.ticket import CLOCK_BREACHED, CLOCK_RUNNING, Ticket, iso
from chalicelib.ports import DedupeRecord, StaffRecord, TicketFilter
from chalicelib.services.tickets import Actor, TicketActions

AGENT = Actor("agent1", ("agent",))


def make_ticket(stack: Any, serial: int = 1, **kw: Any) -> Ticket:
    now = stack.clock.now()
    t = Ticket(id=f"APP-20261123-{serial:06d}", channel="APP", source="app", customer_id=kw.pop("customer_id", "C1"),
               created_at=iso(now), public_token="tok", **kw)
    t.add_message("in", "你好", now, "customer")
    t.record(now, "customer", "created")
    return t


def test_a_ticket_round_trips_with_everything_in_its_partition(moto_stack: Any) -> None:
    repo, now = moto_stack.container.tickets, moto_stack.clock.now()
    t = make_ticket(moto_stack, category="complaint", priority="P1", urgent=True, tier="vip", team="vip",
                    assignee="agent1", subject="s", region="east", order_id="O-1",
                    linked_tickets=["APP-20261122-000001"], attributes={"tags": ["a"]})
    t.add_note("内部备注", now, "agent1")
    t.arm_clock("ack", now, timedelta(minutes=30))
    repo.create(t, dedupe=DedupeRecord("app:e1", t.id, t.new_messages[0].id), dedupe_ttl=2_000_000_000)
    assert t.version == 1 and t.new_messages == [] and t.new_timeline == [] and t.new_notes == []
    loaded = repo.get(t.id)
    assert loaded.to_json() == t.to_json()
    assert loaded.clocks["ack"].stored_state == CLOCK_RUNNING
    assert repo.get_dedupe("app:e1") == DedupeRecord("app:e1", t.id, t.messages[0].id)
    assert repo.get_dedupe("app:other") is None


def test_missing_tickets(moto_stack: Any) -> None:
    repo = moto_stack.container.tickets
    assert repo.find("APP-20261123-000404") is None
    with pytest.raises(NotFound):
        repo.get("APP-20261123-000404")


def test_creating_an_existing_id_is_a_conflict(moto_stack: Any) -> None:
    repo = moto_stack.container.tickets
    repo.create(make_ticket(moto_stack))
    with pytest.raises(ConflictError):
        repo.create(make_ticket(moto_stack, customer_id="C-other"))
    assert repo.get("APP-20261123-000001").customer_id == "C1"


def test_two_loads_both_saving_the_second_loses(moto_stack: Any) -> None:
    repo, now = moto_stack.container.tickets, moto_stack.clock.now()
    repo.create(make_ticket(moto_stack))
    first, second = repo.get("APP-20261123-000001"), repo.get("APP-20261123-000001")
    first.apply("ack", now, "agent1")
    first.assignee = "agent1"
    second.apply("resolve", now, "agent2")
    second.add_message("out", "已解决", now, "agent2")
    repo.save(first)
    assert first.version == 2
    with pytest.raises(ConflictError):
        repo.save(second)
    stored = repo.get("APP-20261123-000001")
    assert (stored.status, stored.assignee, stored.version) == ("acknowledged", "agent1", 2)
    assert [m.direction for m in stored.messages] == ["in"]  # nothing of the losing write landed
    assert [e.action for e in stored.timeline] == ["created", "ack"]
    # Reloaded, the loser's change applies cleanly.
    second = repo.get("APP-20261123-000001")
    second.apply("resolve", now, "agent2")
    repo.save(second)
    assert repo.get("APP-20261123-000001").status == "resolved"


def test_a_stale_clock_write_is_a_conflict(moto_stack: Any) -> None:
    """The clock item is conditioned on the state it was loaded in (the state machine may have breached it)."""
    repo, now = moto_stack.container.tickets, moto_stack.clock.now()
    t = make_ticket(moto_stack)
    t.arm_clock("ack", now, timedelta(minutes=30))
    repo.create(t)
    loaded = repo.get(t.id)
    assert repo.breach_clock(t.id, "ack", 1, now + timedelta(minutes=31))
    loaded.end_clock("ack", now + timedelta(minutes=32))
    with pytest.raises(ConflictError):
        repo.save(loaded)
    assert repo.get(t.id).clocks["ack"].state == CLOCK_BREACHED


class ConcurrentWriteOnce:
    """The real repository; on the first save it lets another writer change the ticket just before."""

    def __init__(self, real: Any, intervene: Any) -> None:
        self.real, self.intervene, self.saves, self.conflicts = real, intervene, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def save(self, ticket: Ticket, **kw: Any) -> None:
        self.saves += 1
        if self.saves == 1:
            other = self.real.get(ticket.id)
            self.intervene(other)
            self.real.save(other)
        try:
            self.real.save(ticket, **kw)
        except ConflictError:
            self.conflicts += 1
            raise


def test_ticket_actions_retry_after_a_concurrent_write(moto_stack: Any) -> None:
    container, now = moto_stack.container, moto_stack.clock.now()
    container.staff.put(StaffRecord("agent1", "A", ["agent"], team="agents"))
    container.tickets.create(make_ticket(moto_stack))

    def someone_notes(t: Ticket) -> None:
        t.add_note("同时写的备注", now, "agent2")
        t.record(now, "agent2", "note")

    racing = ConcurrentWriteOnce(container.tickets, someone_notes)
    actions = TicketActions(racing, container.staff, container.clock, container.settings.sla_policy)  # type: ignore[arg-type]
    result = actions.reply("APP-20261123-000001", AGENT, "您好")
    assert racing.conflicts == 1 and racing.saves == 2  # lost once, retried on a fresh load, won
    stored = container.tickets.get("APP-20261123-000001")
    assert stored.status == "in_progress" and result.status == "in_progress"
    assert [n.text for n in stored.notes] == ["同时写的备注"]  # the concurrent write survives
    assert [m.text for m in stored.messages if m.direction == "out"] == ["您好"]  # exactly one reply
    assert [(e.action, e.actor) for e in stored.timeline] == [("created", "customer"), ("note", "agent2"),
                                                              ("reply", "agent1")]
    assert stored.version == 3


def test_ticket_actions_recheck_the_rules_on_retry(moto_stack: Any) -> None:
    """The retry reapplies the change to the fresh state: if a concurrent write resolved it, ack is refused."""
    from chalicelib.domain.errors import InvalidTransition

    container, now = moto_stack.container, moto_stack.clock.now()
    container.tickets.create(make_ticket(moto_stack))
    racing = ConcurrentWriteOnce(container.tickets, lambda t: t.apply("resolve", now, "agent2"))
    actions = TicketActions(racing, container.staff, container.clock, container.settings.sla_policy)  # type: ignore[arg-type]
    with pytest.raises(InvalidTransition):
        actions.ack("APP-20261123-000001", AGENT)
    assert container.tickets.get("APP-20261123-000001").status == "resolved"


def test_ticket_actions_give_up_after_their_attempts(moto_stack: Any) -> None:
    container, now = moto_stack.container, moto_stack.clock.now()
    container.tickets.create(make_ticket(moto_stack))

    class AlwaysRaced(ConcurrentWriteOnce):
        def save(self, ticket: Ticket, **kw: Any) -> None:
            self.saves = 0  # every save meets a concurrent write
            super().save(ticket, **kw)

    racing = AlwaysRaced(container.tickets, lambda t: t.record(now, "bot", "touch"))
    actions = TicketActions(racing, container.staff, container.clock, container.settings.sla_policy)  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        actions.note("APP-20261123-000001", AGENT, "x")
    assert racing.conflicts == 3


def test_serials_are_atomic_per_channel_and_day(moto_stack: Any) -> None:
    repo = moto_stack.container.tickets
    assert [repo.next_serial("APP", "20261123") for _ in range(3)] == [1, 2, 3]
    assert repo.next_serial("APP", "20261124") == 1
    assert repo.next_serial("WECHAT", "20261123") == 1


def test_a_duplicate_dedupe_record_fails_the_whole_write(moto_stack: Any) -> None:
    from chalicelib.adapters.dynamodb.repository import DuplicateDelivery

    repo = moto_stack.container.tickets
    repo.create(make_ticket(moto_stack), dedupe=DedupeRecord("app:e1", "APP-20261123-000001", "m1"))
    second = make_ticket(moto_stack, serial=2)
    with pytest.raises(DuplicateDelivery):
        repo.create(second, dedupe=DedupeRecord("app:e1", second.id, "m2"))
    assert repo.find(second.id) is None
    assert repo.get_dedupe("app:e1").ticket_id == "APP-20261123-000001"  # type: ignore[union-attr]


def test_listings_by_customer_and_open_tickets(moto_stack: Any) -> None:
    repo = moto_stack.container.tickets
    repo.create(make_ticket(moto_stack, 1, customer_id="C1"))
    moto_stack.clock.advance(minutes=1)
    repo.create(make_ticket(moto_stack, 2, customer_id="C1", status="resolved"))
    repo.create(make_ticket(moto_stack, 3, customer_id="C2"))
    page = repo.list_page(TicketFilter(customer_id="C1"), 10, None)
    assert [t.id for t in page.items] == ["APP-20261123-000002", "APP-20261123-000001"]
    assert [t.id for t in repo.open_tickets_of("C1")] == ["APP-20261123-000001"]
    assert repo.open_tickets_of("C-nobody") == []


def test_due_clocks_and_the_breach_condition(moto_stack: Any) -> None:
    repo, now = moto_stack.container.tickets, moto_stack.clock.now()
    soon, later = make_ticket(moto_stack, 1), make_ticket(moto_stack, 2)
    soon.arm_clock("ack", now, timedelta(minutes=5))
    later.arm_clock("ack", now, timedelta(hours=5))
    repo.create(soon)
    repo.create(later)
    due = repo.due_clocks(now + timedelta(minutes=10))
    assert [(tid, c.name, c.version) for tid, c in due] == [(soon.id, "ack", 1)]
    assert not repo.breach_clock(soon.id, "ack", 2, now)  # another run: refused
    assert repo.breach_clock(soon.id, "ack", 1, now)
    assert not repo.breach_clock(soon.id, "ack", 1, now)  # once only
    assert repo.due_clocks(now + timedelta(minutes=10)) == []  # a breached clock leaves the due index
    assert repo.get(soon.id).clocks["ack"].state == CLOCK_BREACHED


def test_delivery_state_of_an_outbound_message(moto_stack: Any) -> None:
    repo, now = moto_stack.container.tickets, moto_stack.clock.now()
    t = make_ticket(moto_stack)
    out = t.add_message("out", "回复", now, "agent1")
    repo.create(t)
    repo.update_delivery(t.id, out, "sent", "ref-1")
    [stored] = [m for m in repo.get(t.id).messages if m.direction == "out"]
    assert (stored.delivery, stored.delivery_detail) == ("sent", "ref-1")
    from chalicelib.domain.ticket import Message

    ghost = Message(id="m_ghost", direction="out", text="x", at=iso(now), author="a", channel="APP")
    with pytest.raises(NotFound):
        repo.update_delivery(t.id, ghost, "sent")
