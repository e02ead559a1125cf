"""Customer tiers from spend: import spend records, and the daily job that recomputes tiers (top 10% VIP)."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from ..domain.errors import ValidationError
from ..domain.tiers import SpendRecord, compute_tiers, parse_spend_csv, trailing_spend, window_start
from ..ports import Clock, TicketRepository, TriageStore
from .tickets import Actor
from .triage import TriageService

logger = logging.getLogger("kefu.tiers")
MAX_RECORDS = 20_000


def _months(first: date, last: date) -> list[str]:
    keys = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        keys.append(f"{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def _json_record(item: Any, index: int) -> SpendRecord:
    where = f"record {index + 1}"
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object with customer_id, amount, date")
    customer = item.get("customer_id")
    if not isinstance(customer, str) or not customer.strip() or len(customer) > 100:
        raise ValidationError(f"{where}: customer_id must be a non-empty string")
    raw_amount = item.get("amount")
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, int | float | str):
        raise ValidationError(f"{where}: amount must be a number")
    try:
        amount = Decimal(str(raw_amount).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise ValidationError(f"{where}: amount {raw_amount!r} is not a number")
    raw_day = item.get("date")
    try:
        if not isinstance(raw_day, str) or len(raw_day) != 10:
            raise ValueError(raw_day)
        day = date.fromisoformat(raw_day)
    except ValueError as exc:
        raise ValidationError(f"{where}: date {raw_day!r} is not YYYY-MM-DD") from exc
    return SpendRecord(customer_id=customer.strip(), amount=amount, day=day)


def parse_spend_body(body: bytes, content_type: str) -> list[SpendRecord]:
    """A spend upload: `text/csv` (customer_id,amount,date) or JSON (a list, or {"records": [...]})."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("the body must be UTF-8 text") from exc
    if "csv" in content_type.lower():
        records = parse_spend_csv(text)
    else:
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ValidationError(f"body is not valid JSON: {exc}", code="malformed_json") from exc
        if isinstance(data, dict) and set(data) == {"records"}:
            data = data["records"]
        if not isinstance(data, list):
            raise ValidationError('body must be a JSON list of {"customer_id", "amount", "date"} (or CSV)')
        records = [_json_record(item, index) for index, item in enumerate(data)]
    if not records:
        raise ValidationError("no spend records in the upload")
    if len(records) > MAX_RECORDS:
        raise ValidationError(f"at most {MAX_RECORDS} spend records per upload")
    return records


class TierService:
    """Stores spend per customer per day (month partitions) and recomputes every spender's tier."""

    def __init__(
        self, store: TriageStore, tickets: TicketRepository, triage: TriageService, clock: Clock, zone: ZoneInfo
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.triage = triage
        self.clock = clock
        self.zone = zone

    def import_spend(self, records: Sequence[SpendRecord], actor: Actor) -> dict[str, Any]:
        """Adds the records (summed per customer per day); the same upload twice adds nothing the second time."""
        added = self.store.import_spend(records, self.clock.now(), actor.id)
        customers = sorted({r.customer_id for r in records})
        known = self.store.customer_tier_facts(customers)
        return {
            "imported": len(records) if added else 0,
            "duplicate": not added,
            "customers": len(customers),
            "unknown_customers": [c for c in customers if c not in known][:100],
            "months": sorted({f"{r.day.year:04d}-{r.day.month:02d}" for r in records}),
        }

    def recompute(self) -> dict[str, Any]:
        """Trailing-12-month spend → tiers; changed customers are written and their open tickets re-prioritised."""
        today = self.clock.now().astimezone(self.zone).date()
        records = self.store.spend_records(_months(window_start(today), today))
        spend = trailing_spend(records, today)
        # Current VIPs without spend in the window are still in the population (and lose VIP).
        for customer_id in self.store.tier_holders("vip"):
            spend.setdefault(customer_id, Decimal(0))
        facts = self.store.customer_tier_facts(sorted(spend))
        members = [c for c, f in facts.items() if f.member]
        tiers = compute_tiers(spend, members)
        changed: list[dict[str, str]] = []
        reprioritised: list[str] = []
        now = self.clock.now()
        for customer_id, tier in tiers.items():
            current = facts.get(customer_id)
            if current is None or current.tier == tier:
                continue
            self.store.set_tier(customer_id, tier, now)
            changed.append({"customer_id": customer_id, "from": current.tier, "to": tier})
            for ticket in self.tickets.open_tickets_of(customer_id, limit=50):
                before = ticket.priority
                updated = self.triage.apply_tier(ticket.id, tier)
                if updated.priority != before:
                    reprioritised.append(updated.id)
        return {
            "as_of": today.isoformat(),
            "customers": len(tiers),
            "vip": sorted(c for c, t in tiers.items() if t == "vip"),
            "changed": changed,
            "reprioritised": reprioritised,
            "unknown_customers": len([c for c in tiers if c not in facts]),
        }
