"""Lazily created, cached boto3 clients, and the SNS, SQS and Step Functions adapters over them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ..config import resource_name
from ..domain import clock_rules
from ..domain.sla import SlaPolicy
from ..domain.ticket import Clock, parse_iso

logger = logging.getLogger(__name__)


class AwsClients:
    """Creates each boto3 client on first use (never at import) and keeps it for the container's life.

    `prefix` is KEFU_RESOURCE_PREFIX: catalogue names (`kefu-outbox`) resolve to the deployed ones (`acme-outbox`)
    through `resource_name`; `topic_arn`, `queue_url` and `state_machine_arn` take deployed names.
    """

    def __init__(self, region: str, endpoint_url: str = "", account_id: str = "", prefix: str = "kefu") -> None:
        self.region = region
        self.endpoint_url = endpoint_url or None
        self._account_id = account_id
        self.prefix = prefix
        self._clients: dict[str, Any] = {}
        self._config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(  # type: ignore[call-overload]
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=self._config
            )
        return self._clients[service]

    @cached_property
    def account_id(self) -> str:
        return self._account_id or str(self.client("sts").get_caller_identity()["Account"])

    def resource_name(self, name: str) -> str:
        """The deployed name of a catalogue topic, queue or state machine (the rule infra/ names them by)."""
        return resource_name(name, self.prefix)

    def topic_arn(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{name}"

    def state_machine_arn(self, name: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{name}"

    def queue_url(self, name: str) -> str:
        return str(self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


class SnsPublisher:
    """Publisher over SNS: catalogue topic names resolve to the prefixed topics' ARNs in this account and region."""

    def __init__(self, aws: AwsClients, overrides: dict[str, str] | None = None) -> None:
        self.aws = aws
        self.overrides = overrides or {}

    def publish(self, topic: str, message: dict[str, Any], *, subject: str = "") -> None:
        arn = self.overrides.get(topic) or self.aws.topic_arn(self.aws.resource_name(topic))
        kwargs: dict[str, Any] = {"TopicArn": arn, "Message": json.dumps(message, ensure_ascii=False)}
        if subject:
            kwargs["Subject"] = subject[:100]
        self.aws.client("sns").publish(**kwargs)


class SqsQueue:
    """Queue over SQS; catalogue queue names resolve to the prefixed queues' URLs, looked up once and cached."""

    def __init__(self, aws: AwsClients, overrides: dict[str, str] | None = None) -> None:
        self.aws = aws
        self._urls: dict[str, str] = dict(overrides or {})

    def send(self, queue: str, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        if queue not in self._urls:
            self._urls[queue] = self.aws.queue_url(self.aws.resource_name(queue))
        self.aws.client("sqs").send_message(
            QueueUrl=self._urls[queue],
            MessageBody=json.dumps(message, ensure_ascii=False),
            DelaySeconds=max(0, min(delay_seconds, 900)),
        )


def execution_name(ticket_id: str, clock_name: str, version: int) -> str:
    """`{ticket}-{clock}-{version}`: starting the same run twice is idempotent in Step Functions."""
    return f"{ticket_id}-{clock_name}-{version}"[:80]


def wait_timestamp(at: datetime) -> str:
    """A Wait state's timestamp: whole seconds, rounded up (never fire early), with a `Z`."""
    at = at.astimezone(UTC)
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class StepFunctionsTimers:
    """Timers over the clock state machines: a named execution per clock run.

    A run starts in the machine whose first state is the one it needs, so a run stopped before its deadline
    is billed one transition: `{base}` waits for the deadline; `{base}-warned` first waits for the warning
    (first_response/resolution at level 0, `warn_at` from the policy's calendars); `{base}-announced` first
    announces the start (urgent at level 0: the duty manager hears of it at once). The variant follows from
    the clock's name and level alone, so a run is stopped without remembering where it was started.
    """

    def __init__(
        self, aws: AwsClients, state_machine: str = "kefu-clock", arn: str = "", policy: SlaPolicy | None = None
    ) -> None:
        self.aws = aws
        self.state_machine = state_machine
        self._arn = arn
        self.policy = policy

    @property
    def arn(self) -> str:
        return self._arn or self.aws.state_machine_arn(self.aws.resource_name(self.state_machine))

    def machine_arn(self, clock_name: str, level: int) -> str:
        """The state machine a run of this clock at this level is started in."""
        if level == 0 and clock_name in clock_rules.ANNOUNCED:
            return self.arn + "-announced"
        if level == 0 and clock_name in clock_rules.WARNED:
            return self.arn + "-warned"
        return self.arn

    def run_input(self, ticket_id: str, clock: Clock) -> dict[str, Any]:
        """The execution input of one clock run."""
        due = wait_timestamp(parse_iso(clock.due_at))
        payload: dict[str, Any] = {
            "ticket_id": ticket_id,
            "clock": clock.name,
            "version": clock.version,
            "level": clock.level,
            "started_at": clock.started_at,
            "due_at": due,
            "warn_at": due,  # a warning that cannot come before the deadline is given at it
        }
        if self.policy is not None:
            warn = clock_rules.warning_at(clock_rules.channel_of(ticket_id), clock, self.policy)
            warn_at = warn.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if warn else ""  # whole seconds, down
            if warn_at and warn_at < due:
                payload["warn_at"] = warn_at
        return payload

    def start(self, ticket_id: str, clock: Clock) -> None:
        payload = self.run_input(ticket_id, clock)
        try:
            self.aws.client("stepfunctions").start_execution(
                stateMachineArn=self.machine_arn(clock.name, clock.level),
                name=execution_name(ticket_id, clock.name, clock.version),
                input=json.dumps(payload),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise

    def stop(self, ticket_id: str, clock_name: str, version: int, level: int = 0) -> None:
        machine = self.machine_arn(clock_name, level)
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + execution_name(ticket_id, clock_name, version)
        try:
            self.aws.client("stepfunctions").stop_execution(executionArn=arn, cause="superseded or satisfied")
        except ClientError as exc:
            # Already finished or never started: the conditional check at the deadline covers it.
            logger.info("stop %s: %s", arn, exc.response["Error"]["Code"])
