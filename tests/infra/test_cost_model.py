"""The benchmark's capacity arithmetic (DynamoDB sizing rules) and the cost model built on its figures."""

from __future__ import annotations

from typing import Any

import pytest

from bench import cost
from bench.meter import item_size, read_units, value_size, write_units

pytestmark = [pytest.mark.infra]


def test_item_sizes_follow_dynamodb_rules() -> None:
    assert value_size({"S": "客服"}) == 6  # UTF-8 bytes
    assert value_size({"N": "12345"}) == 4  # ceil(5 digits / 2) + 1
    assert value_size({"BOOL": True}) == 1
    assert value_size({"L": [{"S": "ab"}]}) == 3 + 2 + 1
    assert item_size({"pk": {"S": "TICKET#1"}, "n": {"N": "7"}}) == 2 + 8 + 1 + 2


def test_write_units_count_gsi_writes_and_moves() -> None:
    base = {"pk": {"S": "T"}, "sk": {"S": "META"}}
    assert write_units(None, base) == 1  # no GSI attributes
    listed = {**base, "list_pk": {"S": "TICKET"}, "list_sk": {"S": "1"}}
    assert write_units(None, listed) == 2  # table + gsi_list
    assert write_units(listed, {**listed, "x": {"S": "y"}}) == 2  # projected attribute changed: index rewritten
    moved = {**listed, "list_sk": {"S": "2"}}
    assert write_units(listed, moved) == 3  # key moved: delete + put in the index
    big = {**base, "blob": {"S": "x" * 1500}}
    assert write_units(None, big) == 2
    assert read_units(5000, consistent=False) == 1.0
    assert read_units(100, consistent=True) == 1.0


def fake_results() -> dict[str, Any]:
    return {
        "date": "2026-11-23",
        "lambda_memory_mb": {"api": 512, "table_stream": 256},
        "lifecycle": {
            "steps": ["webhook", "resolve"],
            "write_units_per_lifecycle": 10.0,
            "read_units_per_lifecycle": 4.0,
            "sfn_transitions_per_lifecycle": 6.0,
            "sfn_executions_per_lifecycle": 2.0,
            "aws_calls_per_lifecycle": {"sqs.SendMessage": 1.0, "sns.Publish": 0.0},
            "lambda_invocations_per_lifecycle": {"api": 2.0, "table_stream": 2.0},
            "lambda_mean_ms": {"api": 100.0, "table_stream": 50.0},
        },
        "breach": {"extra_sfn_transitions": 3, "extra_write_units": 5, "extra_read_units": 1,
                   "lambda_invocations": {"clock_events": 1}, "aws_calls": {"sns.Publish": 1}},
    }


def test_cost_model_multiplies_measured_counts_by_cited_prices() -> None:
    modelled = cost.model(fake_results())
    rows = {name: usd for name, _, usd, _ in modelled["rows"]}
    assert rows["DynamoDB writes"] == pytest.approx(10 * 0.625)
    assert rows["DynamoDB reads"] == pytest.approx(4 * 0.125)
    assert rows["Step Functions (Standard)"] == pytest.approx(6 * 25.0)
    assert rows["API Gateway (REST)"] == pytest.approx(2 * 3.5)
    gbs = 2 * 0.1 * 0.5 + 2 * 0.05 * 0.25
    assert rows["Lambda duration"] == pytest.approx(gbs * 1e6 * 0.0000166667)
    assert modelled["total"] == pytest.approx(sum(rows.values()))
    text = cost.render(fake_results())
    for price in cost.PRICES.values():
        assert price.source in text
    assert "cn-north-1" in text
