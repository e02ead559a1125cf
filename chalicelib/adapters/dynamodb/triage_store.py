"""DynamoDB items and queries for triage: labelled overrides, editable rule tables, spend, tiers and load counts."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute, JSONAttribute, UnicodeAttribute
from pynamodb.constants import NUMBER
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from ...domain.errors import ConflictError, NotFound
from ...domain.ticket import OPEN_STATUSES, Ticket, iso
from ...domain.tiers import SpendRecord
from ...ports import CustomerTierFacts, Label, StoredConfig
from .models import CustomerItem, KefuItem, StaffItem, TicketItem
from .repository import DynamoTicketRepository


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number kept exact as a Decimal (money): never through float."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class LabelItem(KefuItem, discriminator="label"):
    """A staff-confirmed (text, category) pair (pk LABEL#{YYYYMM}, sk {at}#{ticket}): training data."""

    ticket_id = UnicodeAttribute()
    text = UnicodeAttribute()
    category = UnicodeAttribute()
    previous = UnicodeAttribute(null=True)
    at = UnicodeAttribute()
    actor = UnicodeAttribute()


class ConfigItem(KefuItem, discriminator="config"):
    """An admin-edited document (pk CONFIG#{name}, sk CONFIG), e.g. the routing or priority rules."""

    data = JSONAttribute()
    updated_at = UnicodeAttribute()
    updated_by = UnicodeAttribute()


class SpendItem(KefuItem, discriminator="spend"):
    """A customer's spend on one day (pk SPEND#{YYYYMM}, sk {customer}#{YYYY-MM-DD}); one partition per month."""

    customer_id = UnicodeAttribute()
    day = UnicodeAttribute()
    amount = DecimalAttribute()


class SpendImportItem(KefuItem, discriminator="spend_import"):
    """Marks an imported spend batch (pk SPENDIMPORT#{sha256}) so a repeated upload adds nothing."""

    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    records = UnicodeAttribute()


class TierMemberItem(KefuItem, discriminator="tier_member"):
    """Who holds a tier (pk TIER#{tier}, sk {customer}): lets the tiers job find VIPs to demote without a Scan."""

    customer_id = UnicodeAttribute()
    since = UnicodeAttribute()


def month_key(day: date | datetime) -> str:
    """`2026-11-23` → `202611`: the partition of labels and spend."""
    return f"{day.year:04d}{day.month:02d}"


def batch_fingerprint(records: Sequence[SpendRecord]) -> str:
    """A stable digest of a spend batch (order-independent) used to refuse the same upload twice."""
    lines = sorted(f"{r.customer_id}\t{r.day.isoformat()}\t{r.amount.normalize()}" for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def is_member(item: CustomerItem) -> bool:
    """A customer is a member when they carry a member id, are flagged as one, or already hold the tier."""
    identities = [str(v) for v in (item.identities or [])]
    attributes = dict(item.attributes or {})
    return any(i.startswith("member:") for i in identities) or attributes.get("member") is True or item.tier == "member"


class DynamoTriageStore:
    """Labels, rule tables, spend and tier bookkeeping over the single table: GetItem, Query and Update only."""

    # --- labelled data ------------------------------------------------------------------------
    def add_label(self, label: Label) -> None:
        LabelItem(
            pk=f"LABEL#{label.at[:4]}{label.at[5:7]}",
            sk=f"{label.at}#{label.ticket_id}",
            ticket_id=label.ticket_id,
            text=label.text,
            category=label.category,
            previous=label.previous or None,
            at=label.at,
            actor=label.actor,
        ).save()

    def labels(self, months: Iterable[str], limit: int = 5000) -> list[Label]:
        """The labels of the given YYYYMM months, oldest first (one Query per month)."""
        found: list[Label] = []
        for month in months:
            for item in LabelItem.query(f"LABEL#{month}", limit=limit - len(found)):
                found.append(Label(item.ticket_id, item.text, item.category, item.previous or "", item.at, item.actor))
            if len(found) >= limit:
                break
        return found

    # --- config documents ---------------------------------------------------------------------
    def get_config(self, name: str) -> StoredConfig | None:
        try:
            item = ConfigItem.get(f"CONFIG#{name}", "CONFIG", consistent_read=True)
        except DoesNotExist:
            return None
        return StoredConfig(item.data, item.updated_at, item.updated_by)

    def put_config(self, name: str, data: Any, at: datetime, actor: str) -> StoredConfig:
        stored = StoredConfig(data, iso(at), actor)
        ConfigItem(pk=f"CONFIG#{name}", sk="CONFIG", data=data, updated_at=stored.updated_at, updated_by=actor).save()
        return stored

    # --- spend --------------------------------------------------------------------------------
    def import_spend(self, records: Sequence[SpendRecord], at: datetime, actor: str) -> bool:
        """Adds a batch to the per-day totals; False (and nothing added) when this exact batch came before."""
        fingerprint = batch_fingerprint(records)
        marker = SpendImportItem(
            pk=f"SPENDIMPORT#{fingerprint}", sk="SPENDIMPORT", at=iso(at), actor=actor, records=str(len(records))
        )
        try:
            marker.save(condition=SpendImportItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        totals: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        for record in records:
            totals[(record.customer_id, record.day)] += record.amount
        try:
            for (customer_id, day), amount in sorted(totals.items()):
                item = SpendItem(pk=f"SPEND#{month_key(day)}", sk=f"{customer_id}#{day.isoformat()}")
                item.update(
                    actions=[
                        SpendItem.kind.set(SpendItem),
                        SpendItem.customer_id.set(customer_id),
                        SpendItem.day.set(day.isoformat()),
                        SpendItem.amount.add(amount),
                    ]
                )
        except Exception:
            marker.delete()  # let the same batch be retried
            raise
        return True

    def spend_records(self, months: Iterable[str]) -> list[SpendRecord]:
        """Every customer's daily spend in the given months: one Query per month partition."""
        records = []
        for month in months:
            for item in SpendItem.query(f"SPEND#{month}"):
                records.append(SpendRecord(item.customer_id, item.amount, date.fromisoformat(item.day)))
        return records

    # --- customer tiers -----------------------------------------------------------------------
    def customer_tier_facts(self, customer_ids: Iterable[str]) -> dict[str, CustomerTierFacts]:
        """Current tier and membership of each existing customer (BatchGetItem)."""
        keys = [(f"CUSTOMER#{c}", "PROFILE") for c in dict.fromkeys(customer_ids)]
        found = {}
        for item in CustomerItem.batch_get(keys):
            found[item.customer_id] = CustomerTierFacts(item.customer_id, item.tier or "normal", is_member(item))
        return found

    def tier_holders(self, tier: str) -> list[str]:
        return [item.customer_id for item in TierMemberItem.query(f"TIER#{tier}")]

    def set_tier(self, customer_id: str, tier: str, at: datetime) -> None:
        """Writes the profile's tier (optimistic lock) and keeps the TIER# index of VIPs in step."""
        for _attempt in range(3):
            try:
                item = CustomerItem.get(f"CUSTOMER#{customer_id}", "PROFILE", consistent_read=True)
            except DoesNotExist as exc:
                raise NotFound(f"no customer {customer_id}") from exc
            previous = item.tier or "normal"
            if previous == tier:
                break
            try:
                item.update(actions=[CustomerItem.tier.set(tier)])
                break
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        else:
            raise ConflictError(f"customer {customer_id} kept changing; tier not written")
        if previous == "vip" and tier != "vip":
            TierMemberItem(pk="TIER#vip", sk=customer_id).delete()
        if tier == "vip":
            TierMemberItem(pk="TIER#vip", sk=customer_id, customer_id=customer_id, since=iso(at)).save()

    def set_customer_attribute(self, customer_id: str, name: str, value: Any) -> None:
        """Sets one key of the profile's free-form attributes (e.g. `account_manager`)."""
        for _attempt in range(3):
            try:
                item = CustomerItem.get(f"CUSTOMER#{customer_id}", "PROFILE", consistent_read=True)
            except DoesNotExist as exc:
                raise NotFound(f"no customer {customer_id}") from exc
            attributes = dict(item.attributes or {})
            attributes[name] = value
            try:
                item.update(actions=[CustomerItem.attributes.set(attributes)])
                return
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        raise ConflictError(f"customer {customer_id} kept changing; attribute not written")

    # --- ticket facts for triage and routing --------------------------------------------------
    def customer_tickets_since(self, customer_id: str, since: datetime) -> list[Ticket]:
        """The customer's tickets created at or after `since` (gsi_customer Query, newest first)."""
        found = TicketItem.by_customer.query(
            f"CUSTOMER#{customer_id}", TicketItem.customer_sk >= iso(since), scan_index_forward=False
        )
        return [DynamoTicketRepository._ticket_from_item(item) for item in found]

    def open_ticket_count(self, assignee: str) -> int:
        """How many open tickets a member of staff holds (gsi_assignee Query with Select=COUNT)."""
        return int(
            TicketItem.by_assignee.count(
                f"ASSIGNEE#{assignee}", filter_condition=TicketItem.status.is_in(*sorted(OPEN_STATUSES))
            )
        )

    def set_online(self, staff_id: str, online: bool) -> None:
        """Sets a member of staff's presence; NotFound when there is no such member."""
        try:
            StaffItem(pk=f"STAFF#{staff_id}", sk="PROFILE").update(
                actions=[StaffItem.online.set(online)], condition=StaffItem.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFound(f"no staff member {staff_id}") from exc
            raise
