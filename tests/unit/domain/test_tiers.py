"""Customer tiers: top-10% VIPs, members, trailing spend and the spend CSV."""
from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.tiers import (
    SpendRecord,
    compute_tiers,
    parse_spend_csv,
    trailing_spend,
    vip_count,
    window_start,
)

D = Decimal


def test_top_ten_percent_are_vip() -> None:
    spend = {f"c{i:02d}": D(i * 100) for i in range(1, 21)}  # 20 customers, distinct spend
    tiers = compute_tiers(spend, members={"c01", "c20"})
    assert sorted(c for c, t in tiers.items() if t == "vip") == ["c19", "c20"]
    assert tiers["c01"] == "member"
    assert tiers["c05"] == "normal"


def test_ceil_and_at_least_one() -> None:
    assert [vip_count(n) for n in (0, 1, 9, 10, 11, 20, 21)] == [0, 1, 1, 1, 2, 2, 3]
    tiers = compute_tiers({"a": D("0.01"), "b": D(0), "c": D(0)}, members=())
    assert tiers == {"a": "vip", "b": "normal", "c": "normal"}


def test_zero_spend_is_never_vip() -> None:
    assert compute_tiers({"a": D(0), "b": D(0)}, members={"a"}) == {"a": "member", "b": "normal"}
    assert compute_tiers({"a": D(-5)}, members=()) == {"a": "normal"}
    assert compute_tiers({}, members=()) == {}


def test_members_without_spend_count_in_the_population() -> None:
    members = {f"m{i}" for i in range(19)}
    tiers = compute_tiers({"big": D(1000), "mid": D(500), "small": D(1)}, members=members)
    assert len(tiers) == 22  # ceil(2.2) = 3 places, but only 3 spenders: all of them
    assert {c for c, t in tiers.items() if t == "vip"} == {"big", "mid", "small"}
    assert all(tiers[m] == "member" for m in members)


def test_ties_at_the_cut_off_are_all_vip() -> None:
    # 10 customers → 1 place; two share the top spend → both VIP
    spend = {"a": D(900), "b": D(900), **{f"x{i}": D(i) for i in range(8)}}
    tiers = compute_tiers(spend, members=())
    assert {c for c, t in tiers.items() if t == "vip"} == {"a", "b"}
    # a tie below the cut-off does not matter
    spend = {"a": D(900), "b": D(800), "c": D(800), **{f"x{i}": D(i) for i in range(7)}}
    assert {c for c, t in compute_tiers(spend, members=()).items() if t == "vip"} == {"a"}


def test_a_vip_member_is_vip() -> None:
    assert compute_tiers({"a": D(10)}, members={"a"}) == {"a": "vip"}


def test_trailing_spend_window() -> None:
    records = [
        SpendRecord("a", D("100.50"), date(2025, 6, 15)),  # first day of the window: in
        SpendRecord("a", D("20"), date(2025, 6, 14)),  # a day too early: out
        SpendRecord("a", D("-10"), date(2026, 6, 14)),  # refund on the last day: in
        SpendRecord("a", D("7"), date(2026, 6, 15)),  # as_of itself: out
        SpendRecord("b", D("5"), date(2024, 1, 1)),  # only old spend: 0
    ]
    assert trailing_spend(records, date(2026, 6, 15)) == {"a": D("90.50"), "b": D(0)}
    assert window_start(date(2028, 2, 29)) == date(2027, 2, 28)
    assert window_start(date(2026, 3, 1)) == date(2025, 3, 1)


def test_parse_spend_csv() -> None:
    text = "\ufeffdate, Customer_ID ,amount,note\n2026-01-02,c1,12.30,x\n\n2026-01-03,c2,-1,refund\n"
    assert parse_spend_csv(text) == [
        SpendRecord("c1", D("12.30"), date(2026, 1, 2)),
        SpendRecord("c2", D("-1"), date(2026, 1, 3)),
    ]
    assert parse_spend_csv("customer_id,amount,date\n") == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("customer_id,amount,date\nc1,12,2026-01-02\nc2,abc,2026-01-02\n", 3),
        ("customer_id,amount,date\nc1,NaN,2026-01-02\n", 2),
        ("customer_id,amount,date\nc1,Infinity,2026-01-02\n", 2),
        ("customer_id,amount,date\nc1,1,2026-02-30\n", 2),
        ("customer_id,amount,date\nc1,1,20260102\n", 2),
        ("customer_id,amount,date\n\n\n,1,2026-01-02\n", 4),
        ("customer_id,amount,date\nc1,1\n", 2),
        ("customer,amount,date\nc1,1,2026-01-02\n", 1),
    ],
)
def test_parse_spend_csv_reports_the_line(text: str, line: int) -> None:
    with pytest.raises(ValidationError, match=rf"^line {line}:"):
        parse_spend_csv(text)


def test_parse_spend_csv_empty() -> None:
    with pytest.raises(ValidationError):
        parse_spend_csv("")


def test_csv_to_tiers_end_to_end() -> None:
    rows = ["customer_id,amount,date"] + [f"c{i},{i * 10},2026-03-01" for i in range(1, 31)]
    spend = trailing_spend(parse_spend_csv("\n".join(rows)), as_of=date(2026, 6, 1))
    tiers = compute_tiers(spend, members={"c1"})
    assert sorted(c for c, t in tiers.items() if t == "vip") == ["c28", "c29", "c30"]


# ---------------------------------------------------------------- properties

amounts = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
spend_maps = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4), amounts, max_size=60)


@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=80, unique=True), st.integers(0, 30))
def test_exactly_ceil_ten_percent_vips_without_ties(distinct: list[int], zero_spenders: int) -> None:
    spend = {f"c{i}": D(v) / 100 for i, v in enumerate(distinct)}
    spend |= {f"z{i}": D(0) for i in range(zero_spenders)}
    tiers = compute_tiers(spend, members=())
    places = math.ceil((len(distinct) + zero_spenders) / 10)
    vips = {c for c, t in tiers.items() if t == "vip"}
    assert len(vips) == min(places, len(distinct))
    # and they are the top spenders
    assert vips == set(sorted(spend, key=lambda c: spend[c], reverse=True)[: len(vips)])


@given(spend_maps, st.sets(st.text("abcdefgh", min_size=1, max_size=4), max_size=10), st.data())
def test_raising_spend_never_removes_a_vip(spend: dict[str, Decimal], members: set[str], data: st.DataObject) -> None:
    before = compute_tiers(spend, members)
    vips = sorted(c for c, t in before.items() if t == "vip")
    if not vips:
        return
    lucky = data.draw(st.sampled_from(vips))
    extra = data.draw(st.decimals(min_value=0, max_value=10**6, places=2))
    after = compute_tiers({**spend, lucky: spend[lucky] + extra}, members)
    assert after[lucky] == "vip"


@given(spend_maps, st.sets(st.text("abcdefgh", min_size=1, max_size=4), max_size=10))
def test_tier_invariants(spend: dict[str, Decimal], members: set[str]) -> None:
    tiers = compute_tiers(spend, members)
    assert set(tiers) == set(spend) | members
    vips = [c for c, t in tiers.items() if t == "vip"]
    places = vip_count(len(tiers))
    positive = [c for c in spend if spend[c] > 0]
    assert all(spend.get(c, D(0)) > 0 for c in vips)
    assert len(vips) >= min(places, len(positive))
    if vips:  # every non-VIP spends strictly less than every VIP
        floor = min(spend[c] for c in vips)
        assert all(spend.get(c, D(0)) < floor for c in tiers if c not in vips)
    assert all(t == "member" for c, t in tiers.items() if c in members and c not in vips)


@given(
    st.lists(
        st.builds(
            SpendRecord,
            st.sampled_from(["a", "b", "c"]),
            st.decimals(min_value=-100, max_value=100, places=2),
            st.dates(date(2024, 1, 1), date(2027, 1, 1)),
        ),
        max_size=30,
    ),
    st.dates(date(2025, 1, 1), date(2026, 12, 31)),
)
def test_trailing_spend_matches_a_naive_sum(records: list[SpendRecord], as_of: date) -> None:
    totals = trailing_spend(records, as_of)
    start = window_start(as_of)
    assert set(totals) == {r.customer_id for r in records}
    for customer, total in totals.items():
        assert total == sum(
            (r.amount for r in records if r.customer_id == customer and start <= r.day < as_of), D(0)
        )
    csv_text = "customer_id,amount,date\n" + "".join(f"{r.customer_id},{r.amount},{r.day}\n" for r in records)
    assert parse_spend_csv(csv_text) == records
