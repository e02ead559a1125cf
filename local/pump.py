"""The local event pump: plays Lambda's event sources (stream, SQS, SNS, schedules) for app.py's handlers."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import resources
from chalicelib.adapters.aws import AwsClients

from .bootstrap import Stack

logger = logging.getLogger("kefu.local.pump")


@dataclass
class LocalLambdaContext:
    """The few attributes of Lambda's context object that handlers may read."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


STREAM_ATTEMPTS = 3
Handler = Callable[[dict[str, Any], Any], Any]


def schedule_event(name: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{name}"],
        "detail": {},
    }


def sns_event_from_envelope(envelope: dict[str, Any], region: str) -> dict[str, Any]:
    """An SNS notification (as SQS holds it without raw delivery) → the event SNS gives a Lambda function."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{envelope.get('TopicArn', '')}:local",
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId", str(uuid.uuid4())),
                    "TopicArn": envelope.get("TopicArn", ""),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope.get("Message", ""),
                    "Timestamp": envelope.get("Timestamp", ""),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL", ""),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


class EventPump:
    """Polls the stream and the queues, runs the schedules, and calls the handlers Lambda would call."""

    def __init__(self, aws: AwsClients, stack: Stack, handlers: dict[str, Handler], from_start: bool = True) -> None:
        self.aws = aws
        self.stack = stack
        self.handlers = handlers
        self._iterators: dict[str, str] = {}
        self._from_start = from_start
        self._stream_failures = 0
        self._last_run: dict[str, float] = {name: time.monotonic() for name in resources.SCHEDULES}

    def _context(self, name: str) -> LocalLambdaContext:
        return LocalLambdaContext(function_name=f"kefu-{name}", aws_request_id=str(uuid.uuid4()))

    def _call(self, name: str, event: dict[str, Any]) -> Any:
        return self.handlers[name](event, self._context(name))

    def poll_stream(self) -> int:
        streams = self.aws.client("dynamodbstreams")
        if not self._iterators:
            shards = streams.describe_stream(StreamArn=self.stack.stream_arn)["StreamDescription"]["Shards"]
            for shard in shards:
                self._iterators[shard["ShardId"]] = streams.get_shard_iterator(
                    StreamArn=self.stack.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON" if self._from_start else "LATEST",
                )["ShardIterator"]
        count = 0
        for shard_id, iterator in list(self._iterators.items()):
            answer = streams.get_records(ShardIterator=iterator, Limit=100)
            records = answer.get("Records", [])
            if records:
                for record in records:
                    record.setdefault("eventSourceARN", self.stack.stream_arn)
                try:
                    self._call("table_stream", {"Records": records})
                except Exception:
                    # Like Lambda: the batch is retried (from the same position) before it is given up.
                    self._stream_failures += 1
                    if self._stream_failures < STREAM_ATTEMPTS:
                        raise
                    logger.exception("event pump: giving up a stream batch after %d attempts", STREAM_ATTEMPTS)
                self._stream_failures = 0
                count += len(records)
            self._iterators[shard_id] = answer["NextShardIterator"]
        return count

    def poll_queues(self) -> int:
        sqs = self.aws.client("sqs")
        count = 0
        for queue_name, handler_name in self.stack.consumers.items():
            url = self.stack.queues[queue_name]
            answer = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            )
            messages = answer.get("Messages", [])
            if not messages:
                continue
            count += len(messages)
            if handler_name == "inbound_email":
                for message in messages:
                    self._call(handler_name, sns_event_from_envelope(json.loads(message["Body"]), self.aws.region))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                continue
            event = {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m.get("Attributes", {}),
                        "messageAttributes": m.get("MessageAttributes", {}),
                        "md5OfBody": m.get("MD5OfBody", ""),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{self.aws.region}:000000000000:{queue_name}",
                        "awsRegion": self.aws.region,
                    }
                    for m in messages
                ]
            }
            result = self._call(handler_name, event) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            for m in messages:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                else:
                    # Lambda leaves a failed message invisible until its timeout; locally, back off a little.
                    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=2)
        return count

    def run_schedules(self, force: str = "") -> list[str]:
        ran = []
        now = time.monotonic()
        for name, minutes in resources.SCHEDULES.items():
            if name == force or (not force and now - self._last_run[name] >= minutes * 60):
                self._last_run[name] = now
                self._call(name, schedule_event(name, self.aws.region))
                ran.append(name)
        return ran

    def step(self) -> int:
        """One round: stream, queues, due schedules. Errors are logged and the pump goes on."""
        done = 0
        for part in (self.poll_stream, self.poll_queues):
            try:
                done += part()
            except Exception:
                logger.exception("event pump: %s failed", part.__name__)
        try:
            done += len(self.run_schedules())
        except Exception:
            logger.exception("event pump: schedules failed")
        return done
