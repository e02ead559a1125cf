"""The catalogue of AWS resources kefu needs: one list read by the local bootstrap, wiring and infra."""
from __future__ import annotations

from dataclasses import dataclass

TABLE_NAME = "kefu"

# Global secondary indexes of the single table: name -> (partition key, sort key).
GSIS: dict[str, tuple[str, str]] = {
    "gsi_list": ("list_pk", "list_sk"),  # every ticket, newest first (list_pk = "TICKET")
    "gsi_status": ("status_pk", "status_sk"),  # tickets by status, in queue order
    "gsi_assignee": ("assignee_pk", "assignee_sk"),  # tickets by assignee
    "gsi_customer": ("customer_pk", "customer_sk"),  # tickets by customer
    "gsi_due": ("due_pk", "due_sk"),  # running clocks by due time (sparse)
}


@dataclass(frozen=True)
class Queue:
    """An SQS queue with its dead-letter queue; `topic` subscribes it to an SNS topic.

    `visibility_timeout` is a floor: infra/ raises it to 6× the consumer's Lambda timeout (AWS's guidance
    for SQS event source mappings, infra/functions.py `queue_visibility_timeout`).
    """

    name: str
    handler: str  # the app.py handler that consumes it
    topic: str = ""
    max_receive_count: int = 5
    visibility_timeout: int = 60

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"


TOPICS = (
    "kefu-inbound-email",  # SES receipt rule -> SNS -> inbound_email (CONTRACT.md)
    "kefu-clock-events",  # state machines publish warnings and breaches here
    "kefu-staff-notifications",  # staff notifications (SMS/email subscribers)
)

QUEUES = (
    Queue("kefu-clock-events", handler="clock_events", topic="kefu-clock-events"),
    Queue("kefu-outbox", handler="outbox_sender", max_receive_count=4, visibility_timeout=30),
)

# State machines: resource name -> definition file under stepfunctions/. A clock run starts in the
# machine whose first state is the one it needs (a Wait, mostly): a run stopped early costs one transition.
STATE_MACHINES = {
    "kefu-clock": "clock.asl.json",  # wait for the deadline, breach if still running
    "kefu-clock-warned": "clock_warned.asl.json",  # first warn at warn_at (first_response/resolution, level 0)
    "kefu-clock-announced": "clock_announced.asl.json",  # first announce the start (urgent, level 0)
}

# Scheduled jobs: app.py handler name -> rate in minutes.
SCHEDULES = {
    "reconcile_clocks": 5,
    "send_surveys": 5,
    "qa_sample": 1440,  # daily: ≥ 10 % of yesterday's resolutions for QA review
    "archive": 1440,  # daily: resolved tickets, 30 days on, copied to the archive bucket (kept ≥ 3 years)
    "recompute_tiers": 1440,
}

SES_IDENTITY = "support@kefu.example.com"

# S3 buckets: inbound email attachments (and SES S3-action mail); the archive of records kept ≥ 3 years
# (Object Lock in AWS, 保存期限不少于3年). These are catalogue names: the deployed buckets are named by infra/
# and reach the code as KEFU_ATTACHMENTS_BUCKET / KEFU_ARCHIVE_BUCKET (chalicelib/config.py).
ATTACHMENTS_BUCKET = "kefu-attachments"
ARCHIVE_BUCKET = "kefu-archive"
BUCKETS = (ATTACHMENTS_BUCKET, ARCHIVE_BUCKET)
