"""Effects of committed changes, read off the table's stream: start/stop timers, queue outbound sends."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..domain.ticket import CLOCK_BREACHED, CLOCK_RUNNING, Clock
from ..ports import Queue, Timers

OUTBOX_QUEUE = "kefu-outbox"


@dataclass(frozen=True)
class Change:
    """One stream record: the item's keys, and its images before and after (plain Python values)."""

    event: str  # INSERT | MODIFY | REMOVE
    new: dict[str, Any] = field(default_factory=dict)
    old: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str((self.new or self.old).get("kind", ""))


def _clock(image: dict[str, Any]) -> Clock:
    return Clock(
        name=str(image["name"]),
        version=int(image["version"]),
        state=str(image["state"]),
        due_at=str(image["due_at"]),
        started_at=str(image.get("started_at", "")),
        level=int(image.get("level", 0)),
    )


EventHandler = Callable[[dict[str, Any]], object]
ChangeHandler = Callable[[Change], object]


class EffectsDispatcher:
    """Reacts to committed items: clocks armed → timers started; outbound messages → the outbox queue;
    timeline entries → their handlers by action; other item kinds (e.g. surveys) → their handlers by kind."""

    def __init__(
        self,
        timers: Timers,
        queue: Queue,
        event_handlers: dict[str, EventHandler] | None = None,
        kind_handlers: dict[str, ChangeHandler] | None = None,
    ) -> None:
        self.timers = timers
        self.queue = queue
        self.event_handlers = dict(event_handlers or {})
        self.kind_handlers = dict(kind_handlers or {})

    def dispatch(self, changes: Iterable[Change]) -> int:
        handled = 0
        for change in changes:
            if change.kind == "clock":
                handled += self._on_clock(change)
            elif change.kind == "message" and change.event == "INSERT":
                handled += self._on_message(change.new)
            elif change.kind == "event" and change.event == "INSERT":
                handler = self.event_handlers.get(str(change.new.get("action")))
                if handler:
                    handler(change.new)
                    handled += 1
            elif change.kind in self.kind_handlers:
                self.kind_handlers[change.kind](change)
                handled += 1
        return handled

    def _on_clock(self, change: Change) -> int:
        new, old = change.new, change.old
        started = 0
        if (
            new
            and new.get("state") == CLOCK_RUNNING
            and (not old or old.get("state") != CLOCK_RUNNING or int(old.get("version", 0)) != int(new["version"]))
        ):
            self.timers.start(str(new["ticket_id"]), _clock(new))
            started = 1
        same_run = bool(new) and int(old.get("version", 0)) == int(new.get("version", 0))
        if (
            old
            and old.get("state") == CLOCK_RUNNING
            and (not new or new.get("state") != CLOCK_RUNNING or not same_run)
            # Breached in place: the run itself (or the sweep) wrote it and must go on to report it;
            # stopping it here could cancel the report. A run the sweep breached finds nothing left to do.
            and not (same_run and new.get("state") == CLOCK_BREACHED)
        ):
            self.timers.stop(str(old["ticket_id"]), str(old["name"]), int(old["version"]), int(old.get("level", 0)))
        return started

    def _on_message(self, image: dict[str, Any]) -> int:
        if image.get("direction") != "out" or image.get("delivery") != "queued":
            return 0
        self.queue.send(
            OUTBOX_QUEUE,
            {"ticket_id": image["ticket_id"], "message_id": image["message_id"], "sk": image["sk"]},
        )
        return 1
