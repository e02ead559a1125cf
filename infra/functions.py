"""Per-function access and sizing (no CDK imports: the benchmarks' cost model reads the memory sizes too)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    """What one function may touch; anything not listed here it may not."""

    table: str = "rw"  # "", "r" or "rw"
    publish: tuple[str, ...] = ()  # topic names (resources.TOPICS)
    send: tuple[str, ...] = ()  # queue names (resources.QUEUES)
    timers: bool = False  # start/stop executions of the state machines
    secrets: bool = False
    read_buckets: tuple[str, ...] = ()  # resources bucket names (prefix-independent)
    write_buckets: tuple[str, ...] = ()
    memory: int = 256
    timeout: int = 30


# Per function (app.py handler name; "api" is Chalice's API handler). Derived from what each handler's code path
# uses (chalicelib/handlers/jobs.py, services/*). A function missing here gets the table only and a synth warning.
FUNCTION_ACCESS: dict[str, Access] = {
    "api": Access(table="rw", secrets=True, memory=512, timeout=30),
    "table_stream": Access(table="", timers=True, send=("kefu-outbox",), timeout=60),
    "clock_events": Access(table="rw", publish=("kefu-staff-notifications",)),
    "outbox_sender": Access(table="rw", secrets=True, timeout=15),  # HTTP sends time out after 5 s
    "reconcile_clocks": Access(table="rw", publish=("kefu-clock-events",), timeout=120),
    "recompute_tiers": Access(table="rw", memory=512, timeout=300),  # daily job
    "inbound_email": Access(table="rw", read_buckets=("kefu-attachments",), write_buckets=("kefu-attachments",),
                            memory=512, timeout=60),
}
DEFAULT_ACCESS = Access(table="rw")
