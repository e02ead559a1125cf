"""KEFU_RESOURCE_PREFIX: the code finds the prefixed topics, queues and state machines infra/ names (moto)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import resources
from chalicelib.config import Settings, resource_name
from chalicelib.domain.ticket import Clock
from chalicelib.wiring import Container

REGION, ACCOUNT = "us-east-1", "123456789012"
WAIT = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


def test_the_naming_rule() -> None:
    assert resource_name("kefu-outbox", "acme") == "acme-outbox"
    assert resource_name("kefu", "acme") == "acme"  # the table
    assert resource_name("kefu-clock-warned", "kefu-staging") == "kefu-staging-clock-warned"
    assert resource_name("other", "acme") == "acme-other"
    for name in (*resources.TOPICS, *(q.name for q in resources.QUEUES), *resources.STATE_MACHINES):
        assert resource_name(name) == name  # the default prefix leaves the catalogue as it is


def test_prefix_from_the_environment_names_the_table_too() -> None:
    settings = Settings.from_env({"KEFU_RESOURCE_PREFIX": "acme"})
    assert settings.resource_prefix == "acme" and settings.table_name == "acme"
    assert settings.resource_name("kefu-outbox") == "acme-outbox"
    assert Settings.from_env({"KEFU_RESOURCE_PREFIX": "acme", "KEFU_TABLE_NAME": "t"}).table_name == "t"
    assert Settings.from_env({}).table_name == resources.TABLE_NAME


def test_bucket_names_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.attachments_bucket, defaults.archive_bucket) == (
        resources.ATTACHMENTS_BUCKET,
        resources.ARCHIVE_BUCKET,
    )
    deployed = Settings.from_env({"KEFU_ATTACHMENTS_BUCKET": "a-1-us-east-1", "KEFU_ARCHIVE_BUCKET": "b-1-us-east-1"})
    assert (deployed.attachments_bucket, deployed.archive_bucket) == ("a-1-us-east-1", "b-1-us-east-1")


@pytest.fixture
def acme() -> Iterator[Container]:
    """In-process moto holding both the prefixed (`acme-…`) resources and unprefixed decoys."""
    with mock_aws():
        settings = Settings.from_env(
            {"KEFU_RESOURCE_PREFIX": "acme", "KEFU_AWS_ACCOUNT_ID": ACCOUNT, "AWS_DEFAULT_REGION": REGION}
        )
        yield Container(settings)


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_publisher_and_queue_resolve_prefixed_names(acme: Container) -> None:
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    listeners = {}
    for topic in ("acme-staff-notifications", "kefu-staff-notifications"):
        arn = sns.create_topic(Name=topic)["TopicArn"]
        url = sqs.create_queue(QueueName=f"listen-{topic}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        listeners[topic] = url
    outboxes = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("acme-outbox", "kefu-outbox")}

    acme.publisher.publish("kefu-staff-notifications", {"type": "low_stock"}, subject="s")
    acme.queue.send("kefu-outbox", {"ticket_id": "WECHAT-20261123-000001", "message_id": "m1"})

    assert _drain(sqs, listeners["acme-staff-notifications"]) == [{"type": "low_stock"}]
    assert _drain(sqs, listeners["kefu-staff-notifications"]) == []
    assert _drain(sqs, outboxes["acme-outbox"]) == [{"ticket_id": "WECHAT-20261123-000001", "message_id": "m1"}]
    assert _drain(sqs, outboxes["kefu-outbox"]) == []


def test_timers_start_and_stop_in_the_prefixed_state_machines(acme: Container) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    role = f"arn:aws:iam::{ACCOUNT}:role/states"
    machines = [
        sfn.create_state_machine(name=resource_name(name, "acme"), definition=WAIT, roleArn=role)["stateMachineArn"]
        for name in resources.STATE_MACHINES
    ]
    decoys = [
        sfn.create_state_machine(name=name, definition=WAIT, roleArn=role)["stateMachineArn"]
        for name in resources.STATE_MACHINES
    ]
    assert acme.timers.arn == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:acme-clock"  # type: ignore[attr-defined]

    ticket = "WECHAT-20261123-000001"
    clock = Clock(
        name="progress", version=1, state="running", due_at="2026-11-23T06:00:00Z", started_at="2026-11-23T02:00:00Z"
    )
    acme.timers.start(ticket, clock)
    started = [e for arn in machines for e in sfn.list_executions(stateMachineArn=arn)["executions"]]
    assert [e["name"] for e in started] == [f"{ticket}-progress-1"]
    assert not [e for arn in decoys for e in sfn.list_executions(stateMachineArn=arn)["executions"]]

    # When this process also hosts the session's moto server, moto really executes machines and drops a
    # StopExecution that lands while the run is still starting its thread: stop again until it takes.
    deadline = time.monotonic() + 10
    while True:
        acme.timers.stop(ticket, "progress", 1)
        status = sfn.describe_execution(executionArn=started[0]["executionArn"])["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == "ABORTED"
