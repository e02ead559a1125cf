"""ISO 8601 durations both ways, and the SLA policy: defaults, merged overrides, refused keys and values."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.durations import format_duration, parse_duration
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.sla import DEFAULT_POLICY, SlaPolicy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30M", timedelta(minutes=30)),
        ("PT3S", timedelta(seconds=3)),
        ("PT2S", timedelta(seconds=2)),
        ("PT4H", timedelta(hours=4)),
        ("PT24H", timedelta(hours=24)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT1H30M", timedelta(minutes=90)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("PT0S", timedelta(0)),
        ("pt30m", timedelta(minutes=30)),  # case does not matter
        (" PT30M ", timedelta(minutes=30)),  # surrounding blanks do not matter
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",  # a T needs a time part
        "P1Y",  # years and months have no fixed length
        "P1M",
        "P1Y2M",
        "30M",
        "PT30",
        "PT-5M",
        "PT5M30H",  # out of order
        "PT1,5S",
        "1 hour",
        "PT99999999999999999999H",  # too large for a timedelta
        None,
        30,
        1.5,
    ],
)
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(ValidationError):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=30), "PT30M"),
        (timedelta(0), "PT0S"),
        (timedelta(seconds=3), "PT3S"),
        (timedelta(days=1), "P1D"),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(days=400, seconds=1), "P400DT1S"),
        (timedelta(seconds=1.7), "PT1S"),  # whole seconds
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValidationError):
        format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=0, max_value=10**9))
def test_round_trip_whole_seconds(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


# --- the SLA policy -------------------------------------------------------------------------------------------------
def test_defaults_are_the_contract_ones() -> None:
    policy = SlaPolicy.from_mapping()
    assert policy == SlaPolicy.from_mapping({}) == SlaPolicy.from_mapping(None)
    assert (policy.ack, policy.progress, policy.urgent_ack, policy.callback) == (
        timedelta(minutes=30), timedelta(hours=4), timedelta(minutes=30), timedelta(hours=24),
    )
    assert policy.first_response == {"P0": timedelta(hours=2), "P1": timedelta(hours=4), "P2": timedelta(hours=24)}
    assert policy.resolution == {"P0": timedelta(hours=24), "P1": timedelta(hours=48), "P2": timedelta(hours=72)}


def test_overrides_merge_and_keep_the_rest() -> None:
    policy = SlaPolicy.from_mapping({"ack": "PT3S", "first_response": {"P0": "PT1H"}, "resolution": {}})
    assert policy.ack == timedelta(seconds=3)
    assert policy.progress == timedelta(hours=4)  # untouched
    assert policy.first_response == {"P0": timedelta(hours=1), "P1": timedelta(hours=4), "P2": timedelta(hours=24)}
    assert policy.resolution["P2"] == timedelta(hours=72)
    # The module default is never mutated by an override.
    assert DEFAULT_POLICY["first_response"]["P0"] == "PT2H"
    assert SlaPolicy.from_mapping().first_response["P0"] == timedelta(hours=2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"acknowledge": "PT3S"},  # unknown key
        {"ack": "thirty minutes"},
        {"ack": 30},
        {"ack": None},
        {"ack": "P1M"},
        {"first_response": "PT1H"},  # must be a per-priority map
        {"first_response": {"P3": "PT1H"}},  # unknown priority
        {"first_response": {"P0": "soon"}},
        {"resolution": {"P1": None}},
    ],
)
def test_bad_overrides_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SlaPolicy.from_mapping(overrides)


def test_from_file(tmp_path: Path) -> None:
    good = tmp_path / "policy.json"
    good.write_text(json.dumps({"ack": "PT2S", "resolution": {"P0": "PT12H"}}), encoding="utf-8")
    policy = SlaPolicy.from_file(str(good))
    assert policy.ack == timedelta(seconds=2) and policy.resolution["P0"] == timedelta(hours=12)
    for content in ("[1, 2]", "{not json", '{"nope": "PT1H"}'):
        bad = tmp_path / "bad.json"
        bad.write_text(content, encoding="utf-8")
        with pytest.raises(ValidationError):
            SlaPolicy.from_file(str(bad))
    with pytest.raises(ValidationError):
        SlaPolicy.from_file(str(tmp_path / "missing.json"))
