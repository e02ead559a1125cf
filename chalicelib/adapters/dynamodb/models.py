"""PynamoDB models of kefu's single table: one polymorphic item class per kind of record."""
from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import PutError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from ... import resources


class ListIndex(GlobalSecondaryIndex[Any]):
    """Every item of a kind (tickets, staff), newest first."""

    class Meta:
        index_name = "gsi_list"
        projection = AllProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    list_sk = UnicodeAttribute(range_key=True)


class StatusIndex(GlobalSecondaryIndex[Any]):
    """Tickets by status, in queue order (priority, VIP first, oldest first)."""

    class Meta:
        index_name = "gsi_status"
        projection = AllProjection()

    status_pk = UnicodeAttribute(hash_key=True)
    status_sk = UnicodeAttribute(range_key=True)


class AssigneeIndex(GlobalSecondaryIndex[Any]):
    """Tickets by assignee."""

    class Meta:
        index_name = "gsi_assignee"
        projection = AllProjection()

    assignee_pk = UnicodeAttribute(hash_key=True)
    assignee_sk = UnicodeAttribute(range_key=True)


class CustomerIndex(GlobalSecondaryIndex[Any]):
    """Tickets by customer, newest first."""

    class Meta:
        index_name = "gsi_customer"
        projection = AllProjection()

    customer_pk = UnicodeAttribute(hash_key=True)
    customer_sk = UnicodeAttribute(range_key=True)


class DueIndex(GlobalSecondaryIndex[Any]):
    """Due work by time, sparse: running clocks (partition DUE) and scheduled surveys (SURVEYDUE) carry its keys."""

    class Meta:
        index_name = "gsi_due"
        projection = AllProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class KefuItem(Model):
    """Base of every item in the table: `pk`/`sk` keys and a `kind` discriminator."""

    class Meta:
        table_name = resources.TABLE_NAME
        region = "us-east-1"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()


class TicketItem(KefuItem, discriminator="ticket"):
    """The ticket's META item: its fields and the keys of the ticket GSIs."""

    ticket_id = UnicodeAttribute()
    channel = UnicodeAttribute()
    source = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    category = UnicodeAttribute()
    priority = UnicodeAttribute()
    urgent = BooleanAttribute(default=False)
    tier = UnicodeAttribute(default="normal")
    team = UnicodeAttribute(default="agents")
    assignee = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute(null=True)
    public_token = UnicodeAttribute(null=True)
    linked_tickets = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    work_order_id = UnicodeAttribute(null=True)
    first_response_at = UnicodeAttribute(null=True)
    acknowledged_at = UnicodeAttribute(null=True)
    resolved_at = UnicodeAttribute(null=True)
    last_customer_message_at = UnicodeAttribute(null=True)
    attributes = JSONAttribute(null=True)
    version = VersionAttribute()
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    status_pk = UnicodeAttribute(null=True)
    status_sk = UnicodeAttribute(null=True)
    assignee_pk = UnicodeAttribute(null=True)
    assignee_sk = UnicodeAttribute(null=True)
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)
    by_list = ListIndex()
    by_status = StatusIndex()
    by_assignee = AssigneeIndex()
    by_customer = CustomerIndex()


class MessageItem(KefuItem, discriminator="message"):
    """A message of a ticket (sk MSG#{at}#{id})."""

    ticket_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    direction = UnicodeAttribute()
    text = UnicodeAttribute(default="")
    at = UnicodeAttribute()
    author = UnicodeAttribute(default="")
    channel = UnicodeAttribute()
    attachments = JSONAttribute(null=True)
    delivery = UnicodeAttribute(null=True)
    delivery_detail = UnicodeAttribute(null=True)


class NoteItem(KefuItem, discriminator="note"):
    """An internal note of a ticket (sk NOTE#{at}#{id})."""

    ticket_id = UnicodeAttribute()
    note_id = UnicodeAttribute()
    text = UnicodeAttribute()
    at = UnicodeAttribute()
    author = UnicodeAttribute()


class EventItem(KefuItem, discriminator="event"):
    """A timeline entry (sk EVT#{at}#{seq}); its insertion on the stream drives the effects."""

    ticket_id = UnicodeAttribute()
    at = UnicodeAttribute()
    seq = NumberAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    detail = JSONAttribute(null=True)


class ClockItem(KefuItem, discriminator="clock"):
    """An SLA clock of a ticket (sk CLOCK#{name}); the state machines update it conditionally."""

    ticket_id = UnicodeAttribute()
    name = UnicodeAttribute()
    version = NumberAttribute()  # the clock's run number, not an optimistic lock
    state = UnicodeAttribute()
    due_at = UnicodeAttribute()
    started_at = UnicodeAttribute()
    ended_at = UnicodeAttribute(null=True)
    level = NumberAttribute(default=0)
    due_pk = UnicodeAttribute(null=True)
    due_sk = UnicodeAttribute(null=True)
    by_due = DueIndex()


class CounterItem(KefuItem, discriminator="counter"):
    """An atomic counter (pk COUNTER#{channel}#{day}): the ticket serials."""

    value = NumberAttribute(default=0)


class DedupeItem(KefuItem, discriminator="dedupe"):
    """The first answer to a delivery (pk DEDUPE#{key}), replayed for duplicates; expires by TTL."""

    ticket_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class CustomerItem(KefuItem, discriminator="customer"):
    """A customer profile (pk CUSTOMER#{id}, sk PROFILE)."""

    customer_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    tier = UnicodeAttribute(default="normal")
    identities = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    created_at = UnicodeAttribute()
    merged_into = UnicodeAttribute(null=True)
    attributes = JSONAttribute(null=True)
    version = VersionAttribute()


class IdentityItem(KefuItem, discriminator="identity"):
    """An identity → customer pointer (pk IDENTITY#{kind}:{value})."""

    customer_id = UnicodeAttribute()


class StaffItem(KefuItem, discriminator="staff"):
    """A member of staff (pk STAFF#{id}, sk PROFILE), listed through gsi_list (list_pk STAFF)."""

    staff_id = UnicodeAttribute()
    name = UnicodeAttribute()
    roles = ListAttribute(of=UnicodeAttribute)  # type: ignore[var-annotated]
    team = UnicodeAttribute(null=True)
    regions = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    skills = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    online = BooleanAttribute(default=False)
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    by_list = ListIndex()


def _all_models() -> list[type[KefuItem]]:
    found: list[type[KefuItem]] = [KefuItem]
    for model in found:
        found.extend(model.__subclasses__())
    return found


def bind_models(table_name: str, region: str, endpoint_url: str = "") -> None:
    """Points every model (including ones other modules define later) at the table, region and endpoint."""
    KefuItem.Meta.table_name = table_name
    KefuItem.Meta.region = region
    setattr(KefuItem.Meta, "host", endpoint_url or None)  # noqa: B010 - PynamoDB reads Meta.host
    for model in _all_models():
        setattr(model, "Meta", KefuItem.Meta)  # noqa: B010
        model._connection = None


def put_if_absent(item: KefuItem) -> bool:
    """Saves `item` unless an item with its keys exists (a conditional PutItem); False when one did."""
    try:
        item.save(condition=KefuItem.pk.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True

