"""Intake against DynamoDB in moto: exactly once, customer identity, follow-ups, linked tickets, races."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.messages import Attachment, CustomerRef, InboundMessage
from chalicelib.ports import TicketFilter
from chalicelib.services.intake import IntakeService


def message(stack: Any, key: str, *, channel: str = "APP", source: str = "app", text: str = "你好",
            customer: CustomerRef | None = None, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel=channel, source=source, dedupe_key=f"{source}:{key}",
        customer=customer or CustomerRef(external_id="u-1", phone="+8613800000001"), text=text,
        received_at=stack.clock.now(), **kw,
    )


def all_tickets(stack: Any) -> list[Any]:
    return stack.container.tickets.list_page(TicketFilter(), 100, None).items


def test_a_first_message_opens_a_ticket_with_its_customer(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    result = intake.receive(message(moto_stack, "e1", urgent=True, region="east", order_id="O-9",
                                    attachments=(Attachment("https://cdn.example.com/a.jpg", "image"),)))
    assert result.created and not result.duplicate and result.public_token
    ticket = moto_stack.container.tickets.get(result.ticket_id)
    assert (ticket.urgent, ticket.region, ticket.order_id, ticket.status) == (True, "east", "O-9", "new")
    assert ticket.messages[0].attachments == [{"url": "https://cdn.example.com/a.jpg", "type": "image", "name": ""}]
    customer = moto_stack.container.customers.get(ticket.customer_id)
    assert set(customer.identities) == {"app:u-1", "phone:+8613800000001"}
    assert moto_stack.container.tickets.get_dedupe("app:e1").ticket_id == result.ticket_id  # type: ignore[union-attr]


def test_a_follow_up_on_the_same_channel_joins_the_open_ticket(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    first = intake.receive(message(moto_stack, "e1", text="订单没到"))
    moto_stack.clock.advance(minutes=3)
    follow = intake.receive(message(moto_stack, "e2", text="还有,我想改地址"))
    assert follow.ticket_id == first.ticket_id and not follow.created and not follow.duplicate
    assert follow.message_id != first.message_id
    assert len(all_tickets(moto_stack)) == 1
    ticket = moto_stack.container.tickets.get(first.ticket_id)
    assert [(m.direction, m.text) for m in ticket.messages] == [("in", "订单没到"), ("in", "还有,我想改地址")]
    assert [(e.action, e.actor) for e in ticket.timeline] == [("created", "customer"), ("customer_reply", "customer")]
    assert ticket.timeline[-1].detail["message_id"] == follow.message_id
    assert ticket.last_customer_message_at == ticket.messages[-1].at
    assert ticket.status == "new"  # a customer message does not move an open ticket that is not waiting on them


def test_a_follow_up_to_a_ticket_waiting_on_the_customer_puts_it_back_in_progress(moto_stack: Any) -> None:
    from chalicelib.services.tickets import Actor

    container = moto_stack.container
    first = container.intake.receive(message(moto_stack, "e1"))
    actor = Actor("agent1", ("agent",))
    container.actions.reply(first.ticket_id, actor, "请提供订单号")
    container.actions.set_status(first.ticket_id, actor, "waiting_on_customer")
    moto_stack.clock.advance(minutes=1)
    container.intake.receive(message(moto_stack, "e2", text="O-123"))
    assert container.tickets.get(first.ticket_id).status == "in_progress"


def test_the_same_person_by_another_identity_on_the_same_channel_joins_too(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    first = intake.receive(message(moto_stack, "e1"))
    by_phone = intake.receive(message(moto_stack, "e2", customer=CustomerRef(phone="+8613800000001")))
    assert by_phone.ticket_id == first.ticket_id


def test_another_channel_opens_a_new_ticket_linked_to_the_open_one(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    app_ticket = intake.receive(message(moto_stack, "e1"))
    moto_stack.clock.advance(minutes=1)
    store = intake.receive(
        message(moto_stack, "s1", channel="STORE", source="store", customer=CustomerRef(phone="+8613800000001"))
    )
    assert store.created and store.ticket_id != app_ticket.ticket_id and store.ticket_id.startswith("STORE-")
    linked = moto_stack.container.tickets.get(store.ticket_id)
    original = moto_stack.container.tickets.get(app_ticket.ticket_id)
    assert linked.customer_id == original.customer_id
    assert linked.linked_tickets == [app_ticket.ticket_id]
    assert [e.action for e in linked.timeline] == ["created", "linked"]
    assert linked.timeline[-1].detail["ticket"] == app_ticket.ticket_id
    assert len(original.messages) == 1  # the original is untouched


def test_a_resolved_ticket_is_not_joined(moto_stack: Any) -> None:
    from chalicelib.services.tickets import Actor

    container = moto_stack.container
    first = container.intake.receive(message(moto_stack, "e1"))
    container.actions.resolve(first.ticket_id, Actor("agent1", ("agent",)))
    moto_stack.clock.advance(hours=1)
    second = container.intake.receive(message(moto_stack, "e2"))
    assert second.created and second.ticket_id != first.ticket_id
    assert container.tickets.get(second.ticket_id).linked_tickets == []


def test_a_different_person_gets_their_own_ticket(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    a = intake.receive(message(moto_stack, "e1"))
    b = intake.receive(message(moto_stack, "e2", customer=CustomerRef(external_id="u-2")))
    assert a.ticket_id != b.ticket_id
    assert moto_stack.container.tickets.get(b.ticket_id).linked_tickets == []


def test_a_repeat_is_answered_from_the_dedupe_record(moto_stack: Any) -> None:
    intake = moto_stack.container.intake
    first = intake.receive(message(moto_stack, "e1"))
    moto_stack.clock.advance(minutes=10)
    again = intake.receive(message(moto_stack, "e1", text="changed"))
    assert (again.ticket_id, again.message_id, again.duplicate) == (first.ticket_id, first.message_id, True)
    assert len(moto_stack.container.tickets.get(first.ticket_id).messages) == 1
    follow = intake.receive(message(moto_stack, "e2"))
    again_follow = intake.receive(message(moto_stack, "e2"))
    assert again_follow.duplicate and again_follow.message_id == follow.message_id
    assert len(moto_stack.container.tickets.get(first.ticket_id).messages) == 2


@pytest.mark.parametrize(
    "kw",
    [{"text": "   "}, {"text": "x" * 20_001}],
)
def test_empty_or_huge_messages_are_refused_and_store_nothing(moto_stack: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        moto_stack.container.intake.receive(message(moto_stack, "e1", **kw))
    assert all_tickets(moto_stack) == []


def test_a_message_without_a_delivery_id_is_refused(moto_stack: Any) -> None:
    msg = InboundMessage(channel="APP", source="app", dedupe_key="", customer=CustomerRef(external_id="u"),
                         text="hi", received_at=moto_stack.clock.now())
    with pytest.raises(ValidationError):
        moto_stack.container.intake.receive(msg)


def test_events_open_no_ticket(moto_stack: Any) -> None:
    result = moto_stack.container.intake.receive(message(moto_stack, "sub", kind="event", event="subscribe", text=""))
    assert result.ignored and result.ticket_id == ""
    assert all_tickets(moto_stack) == []


class _Rendezvous:
    """The real repository, except that the first dedupe look-up of each thread waits for the other thread:
    both deliveries are past the dedupe check before either writes (the race a platform retry causes).

    The transactional writes themselves are serialised: DynamoDB isolates concurrent transactions, but moto
    undoes a failed TransactWriteItems by restoring a deep copy of the whole table taken when it began
    (moto/dynamodb/models/__init__.py, `original_table_state`), which also erases a transaction that committed
    meanwhile — an artefact of the emulator, not a behaviour of DynamoDB or kefu."""

    def __init__(self, real: Any, parties: int) -> None:
        self.real = real
        self.barrier = threading.Barrier(parties, timeout=20)
        self.waited: set[int] = set()
        self.writing = threading.Lock()

    def create(self, ticket: Any, **kw: Any) -> None:
        with self.writing:
            self.real.create(ticket, **kw)

    def save(self, ticket: Any, **kw: Any) -> None:
        with self.writing:
            self.real.save(ticket, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_dedupe(self, key: str) -> Any:
        found = self.real.get_dedupe(key)
        if threading.get_ident() not in self.waited:
            self.waited.add(threading.get_ident())
            self.barrier.wait()
        return found


@pytest.mark.parametrize("existing_ticket", [False, True])
def test_the_same_delivery_racing_lands_once(moto_stack: Any, existing_ticket: bool) -> None:
    container = moto_stack.container
    if existing_ticket:  # the race on a follow-up to an open ticket, not only on a first message
        first = container.intake.receive(message(moto_stack, "e0"))
    racing = IntakeService(_Rendezvous(container.tickets, 2), container.customers, container.clock,  # type: ignore[arg-type]
                           container.settings.zone)
    msg = message(moto_stack, "race", text="同一条消息")
    results: list[Any] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            results.append(racing.receive(msg))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(results) == 2
    assert results[0].ticket_id == results[1].ticket_id
    assert results[0].message_id == results[1].message_id
    assert sorted(r.duplicate for r in results) == [False, True]
    tickets = all_tickets(moto_stack)
    assert len(tickets) == 1
    landed = container.tickets.get(results[0].ticket_id)
    assert [m.text for m in landed.messages].count("同一条消息") == 1
    if existing_ticket:
        assert landed.id == first.ticket_id and len(landed.messages) == 2
