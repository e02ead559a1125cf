"""The SLA policy: how long each clock runs, with defaults from the requirements and JSON overrides."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .durations import parse_duration
from .errors import ValidationError

PRIORITIES = ("P0", "P1", "P2")

DEFAULT_POLICY: dict[str, Any] = {
    "ack": "PT30M",
    "progress": "PT4H",
    "urgent_ack": "PT30M",
    "callback": "PT24H",
    "first_response": {"P0": "PT2H", "P1": "PT4H", "P2": "PT24H"},
    "resolution": {"P0": "PT24H", "P1": "PT48H", "P2": "PT72H"},
}


@dataclass(frozen=True)
class SlaPolicy:
    """Durations of every clock; per-priority ones keyed by P0/P1/P2."""

    ack: timedelta
    progress: timedelta
    urgent_ack: timedelta
    callback: timedelta
    first_response: dict[str, timedelta] = field(default_factory=dict)
    resolution: dict[str, timedelta] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, overrides: dict[str, Any] | None = None) -> SlaPolicy:
        """Defaults, with any key of `overrides` replacing its default (per-priority maps merge)."""
        merged: dict[str, Any] = json.loads(json.dumps(DEFAULT_POLICY))
        for key, value in (overrides or {}).items():
            if key not in merged:
                raise ValidationError(f"unknown SLA policy key {key!r}")
            if isinstance(merged[key], dict):
                if not isinstance(value, dict) or not set(value) <= set(PRIORITIES):
                    raise ValidationError(f"SLA policy {key!r} must map P0/P1/P2 to durations")
                merged[key].update(value)
            else:
                merged[key] = value
        return cls(
            ack=parse_duration(merged["ack"]),
            progress=parse_duration(merged["progress"]),
            urgent_ack=parse_duration(merged["urgent_ack"]),
            callback=parse_duration(merged["callback"]),
            first_response={p: parse_duration(v) for p, v in merged["first_response"].items()},
            resolution={p: parse_duration(v) for p, v in merged["resolution"].items()},
        )

    @classmethod
    def from_file(cls, path: str) -> SlaPolicy:
        """Reads a JSON overrides file (KEFU_SLA_POLICY_FILE)."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValidationError(f"cannot read SLA policy file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValidationError("SLA policy file must hold a JSON object")
        return cls.from_mapping(data)
