"""Channel-side records in the single table: WeChat tokens, MAILREF/CALL pointers, merge records and audit."""
from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, ListAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from ...domain.errors import ConflictError, NotFound
from ...domain.ticket import iso
from ...services.channel_events import MailRef
from ...services.customers import AuditEntry, MergeRecord
from .models import CustomerItem, IdentityItem, KefuItem, put_if_absent

TOKEN_SK = "TOKEN"
POINTER_SK = "POINTER"
SEEN_SK = "SEEN"
PROFILE_SK = "PROFILE"
PROFILE_ATTEMPTS = 4



_AUDIT_SEQUENCE = itertools.count()  # orders audit entries written in the same microsecond by one process

class ChannelTokenItem(KefuItem, discriminator="channel_token"):
    """A channel API access token shared by every Lambda (pk TOKEN#wechat#{appid}, sk TOKEN)."""

    token = UnicodeAttribute()
    valid_until = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class ChannelPointerItem(KefuItem, discriminator="channel_pointer"):
    """A channel reference → ticket pointer (pk MAILREF#{message-id} or CALL#{CallSid}, sk POINTER)."""

    ticket_id = UnicodeAttribute()
    at = UnicodeAttribute()


class MailThreadItem(KefuItem, discriminator="mail_thread"):
    """One mail of a ticket's email thread, newest last (pk MAILTHREAD#{ticket}, sk MAIL#{at}#{message-id})."""

    ticket_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    direction = UnicodeAttribute()
    address = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    kefu_message_id = UnicodeAttribute(null=True)
    at = UnicodeAttribute()


class ChannelSeenItem(KefuItem, discriminator="channel_seen"):
    """A delivery already handled that opens no ticket (WeChat events, bounces) (pk SEEN#{key}, sk SEEN)."""

    at = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class CustomerMergeItem(KefuItem, discriminator="customer_merge"):
    """What one merge moved, so un-merge can put it back (pk CUSTOMER#{source}, sk MERGE#{at})."""

    source_id = UnicodeAttribute()
    into_id = UnicodeAttribute()
    state = UnicodeAttribute()  # active | undone
    identities_moved = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    identities_added = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    tickets = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    merged_at = UnicodeAttribute()
    merged_by = UnicodeAttribute()
    unmerged_at = UnicodeAttribute(null=True)
    unmerged_by = UnicodeAttribute(null=True)


class CustomerAuditItem(KefuItem, discriminator="customer_audit"):
    """One audited change of a customer (pk CUSTOMER#{id}, sk AUDIT#{at}#{random})."""

    customer_id = UnicodeAttribute()
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    detail = JSONAttribute(null=True)


def _customer_pk(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


class DynamoAccessTokenStore:
    """wechat.AccessTokenStore over TOKEN#wechat#{appid}: one token for every Lambda instance."""

    def __init__(self, channel: str = "wechat") -> None:
        self.channel = channel

    def get(self, app_id: str) -> tuple[str, datetime] | None:
        try:
            item = ChannelTokenItem.get(f"TOKEN#{self.channel}#{app_id}", TOKEN_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item.token, datetime.fromisoformat(item.valid_until.replace("Z", "+00:00"))

    def put(self, app_id: str, token: str, expires_at: datetime) -> None:
        ChannelTokenItem(
            pk=f"TOKEN#{self.channel}#{app_id}",
            sk=TOKEN_SK,
            token=token,
            valid_until=iso(expires_at),
            expires_at=expires_at.astimezone(UTC),
        ).save()


class DynamoChannelStore:
    """Pointers from channel references to tickets, email threads, and once-only markers."""

    # --- pointers ---------------------------------------------------------------------------
    def put_pointer(self, kind: str, key: str, ticket_id: str, at: datetime) -> None:
        ChannelPointerItem(pk=f"{kind}#{key}", sk=POINTER_SK, ticket_id=ticket_id, at=iso(at)).save()

    def find_pointer(self, kind: str, key: str) -> str | None:
        try:
            return str(ChannelPointerItem.get(f"{kind}#{key}", POINTER_SK, consistent_read=True).ticket_id)
        except DoesNotExist:
            return None

    # --- email threads ----------------------------------------------------------------------
    def record_mail(self, ref: MailRef) -> None:
        """Stores MAILREF#{message-id} → ticket and the thread entry; repeating it is harmless."""
        if not ref.message_id:
            return
        ChannelPointerItem(
            pk=f"MAILREF#{ref.message_id}", sk=POINTER_SK, ticket_id=ref.ticket_id, at=ref.at
        ).save()
        MailThreadItem(
            pk=f"MAILTHREAD#{ref.ticket_id}",
            sk=f"MAIL#{ref.at}#{ref.message_id}",
            ticket_id=ref.ticket_id,
            message_id=ref.message_id,
            direction=ref.direction,
            address=ref.address or None,
            subject=ref.subject or None,
            kefu_message_id=ref.kefu_message_id or None,
            at=ref.at,
        ).save()

    def ticket_for_mail_refs(self, refs: Sequence[str]) -> str | None:
        """The ticket of the first of `refs` (In-Reply-To first, then References) that kefu has seen."""
        keys = [(f"MAILREF#{ref}", POINTER_SK) for ref in dict.fromkeys(refs) if ref][:100]
        if not keys:
            return None
        found = {item.pk: item.ticket_id for item in ChannelPointerItem.batch_get(keys)}
        return next((str(found[pk]) for pk, _ in keys if pk in found), None)

    def mail_thread(self, ticket_id: str, limit: int = 50) -> list[MailRef]:
        """The ticket's mails, newest first."""
        items = MailThreadItem.query(
            f"MAILTHREAD#{ticket_id}", MailThreadItem.sk.startswith("MAIL#"), scan_index_forward=False, limit=limit
        )
        return [
            MailRef(
                ticket_id=item.ticket_id,
                message_id=item.message_id,
                direction=item.direction,
                at=item.at,
                address=item.address or "",
                subject=item.subject or "",
                kefu_message_id=item.kefu_message_id or "",
            )
            for item in items
        ]

    # --- once-only markers ------------------------------------------------------------------
    def claim(self, key: str, at: datetime, expires: datetime) -> bool:
        """True the first time `key` is claimed; False for every repeat (until it expires)."""
        return put_if_absent(
            ChannelSeenItem(pk=f"SEEN#{key}", sk=SEEN_SK, at=iso(at), expires_at=expires.astimezone(UTC))
        )


class DynamoCustomerLedger:
    """Profile changes behind merges and channel events, identity re-pointing, merge records and the audit log."""

    # --- profiles ---------------------------------------------------------------------------
    def modify_profile(self, customer_id: str, change: Callable[[CustomerItem], None]) -> None:
        """Read, change and write the profile under its version; a lost race is retried."""
        for _attempt in range(PROFILE_ATTEMPTS):
            try:
                item = CustomerItem.get(_customer_pk(customer_id), PROFILE_SK, consistent_read=True)
            except DoesNotExist as exc:
                raise NotFound(f"no customer {customer_id}") from exc
            change(item)
            try:
                item.save()  # the VersionAttribute makes this conditional on the version read
                return
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        raise ConflictError(f"customer {customer_id} is changing too fast; try again")

    def update_profile(
        self,
        customer_id: str,
        *,
        add_identities: Sequence[str] = (),
        remove_identities: Sequence[str] = (),
        merged_into: str | None = None,
        add_merged_from: Sequence[str] = (),
        remove_merged_from: Sequence[str] = (),
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Applies the given changes to the profile; `merged_into=""` clears it, None leaves it."""

        def change(item: CustomerItem) -> None:
            identities = [str(i) for i in (item.identities or []) if str(i) not in remove_identities]
            identities += [i for i in add_identities if i not in identities]
            item.identities = identities or None  # type: ignore[assignment]
            if merged_into is not None:
                item.merged_into = merged_into or None
            extra = profile_attributes(item)
            merged_from = [str(c) for c in extra.get("merged_from", []) if str(c) not in remove_merged_from]
            merged_from += [c for c in add_merged_from if c not in merged_from]
            extra["merged_from"] = merged_from
            if not merged_from:
                extra.pop("merged_from")
            extra.update(attributes or {})
            item.attributes = extra or None

        self.modify_profile(customer_id, change)

    def identity_owner(self, identity: str) -> str | None:
        try:
            return str(IdentityItem.get(f"IDENTITY#{identity}", "IDENTITY", consistent_read=True).customer_id)
        except DoesNotExist:
            return None

    def repoint_identity(self, identity: str, from_id: str, to_id: str) -> bool:
        """Moves an identity from one customer to another; True when it now belongs to `to_id`."""
        item = IdentityItem(pk=f"IDENTITY#{identity}", sk="IDENTITY")
        try:
            item.update(
                actions=[IdentityItem.customer_id.set(to_id)], condition=IdentityItem.customer_id == from_id
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return self.identity_owner(identity) == to_id
        return True

    # --- merge records ----------------------------------------------------------------------
    def put_merge(self, record: MergeRecord) -> None:
        CustomerMergeItem(
            pk=_customer_pk(record.source_id),
            sk=f"MERGE#{record.merged_at}",
            source_id=record.source_id,
            into_id=record.into_id,
            state=record.state,
            identities_moved=list(record.identities_moved) or None,
            identities_added=list(record.identities_added) or None,
            tickets=list(record.tickets) or None,
            merged_at=record.merged_at,
            merged_by=record.merged_by,
            unmerged_at=record.unmerged_at or None,
            unmerged_by=record.unmerged_by or None,
        ).save()

    def merges_of(self, customer_id: str, limit: int = 20) -> list[MergeRecord]:
        """The customer's merge records (as the merged-away side), newest first."""
        items = CustomerMergeItem.query(
            _customer_pk(customer_id),
            CustomerMergeItem.sk.startswith("MERGE#"),
            scan_index_forward=False,
            limit=limit,
            consistent_read=True,
        )
        return [
            MergeRecord(
                source_id=item.source_id,
                into_id=item.into_id,
                state=item.state,
                identities_moved=tuple(str(v) for v in (item.identities_moved or [])),
                identities_added=tuple(str(v) for v in (item.identities_added or [])),
                tickets=tuple(str(v) for v in (item.tickets or [])),
                merged_at=item.merged_at,
                merged_by=item.merged_by,
                unmerged_at=item.unmerged_at or "",
                unmerged_by=item.unmerged_by or "",
            )
            for item in items
        ]

    # --- audit ------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        CustomerAuditItem(
            pk=_customer_pk(entry.customer_id),
            sk=f"AUDIT#{entry.at}#{next(_AUDIT_SEQUENCE):010d}{secrets.token_hex(2)}",  # same-instant order kept
            customer_id=entry.customer_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            detail=entry.detail or None,
        ).save()

    def audit_log(self, customer_id: str, limit: int = 100) -> list[AuditEntry]:
        """The customer's audit log, oldest first."""
        items = CustomerAuditItem.query(
            _customer_pk(customer_id), CustomerAuditItem.sk.startswith("AUDIT#"), limit=limit, consistent_read=True
        )
        return [
            AuditEntry(
                customer_id=item.customer_id,
                at=item.at,
                actor=item.actor,
                action=item.action,
                detail=dict(item.detail or {}),
            )
            for item in items
        ]


def profile_attributes(item: CustomerItem) -> dict[str, Any]:
    """The profile's free-form attributes as a mutable dict (stored back by assigning item.attributes)."""
    return dict(item.attributes or {})
