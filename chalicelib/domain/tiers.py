"""Customer tiers: 普通客户 normal, 会员客户 member, VIP客户 (top 10% by trailing-12-month spend)."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from .errors import ValidationError

NORMAL, MEMBER, VIP = "normal", "member", "vip"
VIP_PERCENT = 10
_COLUMNS = ("customer_id", "amount", "date")


@dataclass(frozen=True)
class SpendRecord:
    """One purchase (or refund, when negative) by a customer on a day."""

    customer_id: str
    amount: Decimal
    day: date


def vip_count(population: int) -> int:
    """How many VIP places a population of customers has: ceil(10%), at least 1 when anyone exists."""
    return -(-population * VIP_PERCENT // 100) if population > 0 else 0


def compute_tiers(spend_12m: Mapping[str, Decimal], members: Collection[str]) -> dict[str, str]:
    """Tier of every customer in `spend_12m` or `members`.

    The population is every customer named in either argument (zero-spend ones included); it has
    k = ceil(10%) VIP places (at least 1). VIPs are the customers whose spend is > 0 and at least the
    k-th highest spend: customers tied with the k-th are all VIP (equal spend, equal tier), so there
    may be more than k VIPs, never fewer unless fewer than k customers spent anything. Zero or negative
    spend is never VIP. A VIP keeps VIP even if a member; other members are "member"; the rest "normal".
    """
    population = set(spend_12m) | set(members)
    places = vip_count(len(population))
    spenders = sorted((amount for amount in spend_12m.values() if amount > 0), reverse=True)
    vips: set[str] = set()
    if spenders and places:
        cutoff = spenders[min(places, len(spenders)) - 1]
        vips = {customer for customer, amount in spend_12m.items() if amount > 0 and amount >= cutoff}
    member_set = set(members)
    return {
        customer: VIP if customer in vips else MEMBER if customer in member_set else NORMAL
        for customer in sorted(population)
    }


def window_start(as_of: date) -> date:
    """The first day of the 12 months before `as_of`: the same day a year earlier (Feb 29 → Feb 28)."""
    try:
        return as_of.replace(year=as_of.year - 1)
    except ValueError:  # Feb 29
        return as_of.replace(year=as_of.year - 1, day=28)


def trailing_spend(records: Iterable[SpendRecord], as_of: date) -> dict[str, Decimal]:
    """Sum of each customer's amounts dated in [as_of − 12 months, as_of): `as_of` itself excluded.

    Every customer seen in `records` is in the result, with 0 when nothing falls in the window, so
    they count in compute_tiers's population.
    """
    start = window_start(as_of)
    totals: dict[str, Decimal] = {}
    for record in records:
        totals.setdefault(record.customer_id, Decimal(0))
        if start <= record.day < as_of:
            totals[record.customer_id] += record.amount
    return totals


def parse_spend_csv(text: str) -> list[SpendRecord]:
    """Parses `customer_id,amount,date` CSV (header required, any column order, extra columns ignored).

    Amounts are decimals (negative = refund); dates are ISO YYYY-MM-DD; blank lines are skipped.
    A bad row raises ValidationError naming its line number.
    """
    if not isinstance(text, str):
        raise ValidationError("spend CSV must be text")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
        if header is None:
            raise ValidationError("spend CSV is empty: expected a customer_id,amount,date header")
        names = [column.strip().lower() for column in header]
        missing = [column for column in _COLUMNS if column not in names]
        if missing:
            raise ValidationError(f"line 1: spend CSV header lacks {', '.join(missing)}")
        where = {column: names.index(column) for column in _COLUMNS}
        records: list[SpendRecord] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            records.append(_record(row, where, reader.line_num))
        return records
    except csv.Error as exc:
        raise ValidationError(f"line {reader.line_num}: malformed CSV: {exc}") from exc


def _record(row: list[str], where: Mapping[str, int], line: int) -> SpendRecord:
    if len(row) <= max(where.values()):
        raise ValidationError(f"line {line}: expected columns customer_id, amount, date")
    customer = row[where["customer_id"]].strip()
    if not customer:
        raise ValidationError(f"line {line}: customer_id is empty")
    raw_amount = row[where["amount"]].strip()
    try:
        amount = Decimal(raw_amount)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise ValidationError(f"line {line}: amount {raw_amount!r} is not a number")
    raw_day = row[where["date"]].strip()
    try:
        if len(raw_day) != 10:
            raise ValueError(raw_day)
        day = date.fromisoformat(raw_day)
    except ValueError as exc:
        raise ValidationError(f"line {line}: date {raw_day!r} is not YYYY-MM-DD") from exc
    return SpendRecord(customer_id=customer, amount=amount, day=day)
