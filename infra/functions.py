"""Per-function access and sizing (no CDK imports: the benchmarks' cost model reads the memory sizes too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STAFF_TOPIC = "kefu-staff-notifications"
CLOCK_TOPIC = "kefu-clock-events"
OUTBOX_QUEUE = "kefu-outbox"
ATTACHMENTS = "kefu-attachments"
ARCHIVE = "kefu-archive"

# AWS: "set the source queue's visibility timeout to at least six times the timeout that you configure on your
# function" (plus the batching window), so that a batch throttled or retried by Lambda is not redelivered meanwhile.
VISIBILITY_FACTOR = 6
QUEUE_BATCH_WINDOW = 0  # seconds: MaximumBatchingWindowInSeconds of the queue event source mappings


@dataclass(frozen=True)
class Access:
    """What one function may touch; anything not listed here it may not."""

    table: str = "rw"  # "", "r" or "rw"
    publish: tuple[str, ...] = ()  # topic names (resources.TOPICS)
    send: tuple[str, ...] = ()  # queue names (resources.QUEUES)
    timers: bool = False  # start/stop executions of the state machines
    secrets: bool = False
    send_email: bool = False  # ses:SendRawEmail from this account's verified identities
    # S3 objects as "bucket/key pattern", bucket = a resources.BUCKETS name (prefix-independent). A function
    # with access to a bucket also gets its name in the environment (KEFU_ATTACHMENTS_BUCKET, …).
    read_objects: tuple[str, ...] = ()
    write_objects: tuple[str, ...] = ()
    memory: int = 256
    timeout: int = 30

    @property
    def buckets(self) -> set[str]:
        return {pattern.split("/", 1)[0] for pattern in (*self.read_objects, *self.write_objects)}


# Per function (app.py handler name; "api" is Chalice's API handler), from each handler's code path:
# - api: every blueprint (table); webhooks read the channel secrets; work orders announce low spare-part stock
#   on the staff topic (services/work_orders.py). Clocks and outbound sends follow from the table's stream.
# - table_stream: services/effects.py — clock items start/stop executions, queued outbound messages go to the
#   outbox queue, timeline events run triage (reads/writes tickets, customers, rules; pushes routing notices on
#   the staff topic), notifications (inbox items + staff topic) and clock resumption (tickets). jieba (the
#   classifier's tokenizer) wants the memory.
# - clock_events: services/clocks.py EscalationService — tickets and staff only (notifications follow from the
#   timeline entries it writes, through the stream).
# - outbox_sender: services/outbox.py — tickets, contacts, WeChat token cache (table), channel secrets, SES for
#   email; its own queue (consume, and change visibility for backoff: granted with the event source mapping).
# - inbound_email: services/channel_events.py EmailIntake — the raw mail the SES S3 action left under inbound/,
#   attachments written under email/, intake (table).
# - reconcile_clocks: ClockSweep — due clocks (table) → clock.breached / clock.warning on the clock topic.
# - recompute_tiers: TierService — spend, customers, open tickets (table).
# - send_surveys: SurveyService — due surveys (gsi_due) → an outbound message on the ticket (table); the send
#   itself follows from the stream through the outbox.
# - qa_sample: QaService — yesterday's resolutions (table) → QA review items (table).
# - archive: ArchiveService — resolutions 30 days old (table) → whole tickets as JSON under tickets/ in the archive
#   bucket (Object Lock keeps them ≥ 3 years).
# A function missing here gets the table only and a synth warning.
FUNCTION_ACCESS: dict[str, Access] = {
    "api": Access(table="rw", publish=(STAFF_TOPIC,), secrets=True, memory=512, timeout=30),
    "table_stream": Access(
        table="rw", publish=(STAFF_TOPIC,), send=(OUTBOX_QUEUE,), timers=True, memory=512, timeout=60
    ),
    "clock_events": Access(table="rw"),
    "outbox_sender": Access(table="rw", secrets=True, send_email=True, timeout=15),  # HTTP sends time out after 5 s
    "reconcile_clocks": Access(table="rw", publish=(CLOCK_TOPIC,), timeout=120),
    "recompute_tiers": Access(table="rw", memory=512, timeout=300),  # daily job
    "send_surveys": Access(table="rw", timeout=120),
    "qa_sample": Access(table="rw", timeout=300),
    "archive": Access(table="rw", write_objects=(f"{ARCHIVE}/tickets/*",), timeout=900),
    "inbound_email": Access(
        table="rw",
        read_objects=(f"{ATTACHMENTS}/inbound/*",),
        write_objects=(f"{ATTACHMENTS}/email/*",),
        memory=512,
        timeout=60,
    ),
}
DEFAULT_ACCESS = Access(table="rw")


def access_of(handler: str) -> Access:
    return FUNCTION_ACCESS.get(handler, DEFAULT_ACCESS)


def queue_visibility_timeout(queue: Any) -> int:
    """The visibility timeout of a resources.Queue: its own, raised to 6× its consumer's timeout (+ window)."""
    consumer = access_of(queue.handler)
    return max(int(queue.visibility_timeout), VISIBILITY_FACTOR * consumer.timeout + QUEUE_BATCH_WINDOW)
