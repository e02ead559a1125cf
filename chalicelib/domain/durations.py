"""ISO 8601 durations (PT30M, P1DT2H, PT3S) parsed to timedelta and formatted back."""
from __future__ import annotations

import re
from datetime import timedelta

from .errors import ValidationError

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """`PT30M` → 30 minutes. Years and months are refused: they have no fixed length."""
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not match:
        raise ValidationError(f"not an ISO 8601 duration (like PT30M or P1DT2H): {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    try:
        return timedelta(**parts)
    except OverflowError as exc:
        raise ValidationError(f"duration {text!r} is too large") from exc


def format_duration(delta: timedelta) -> str:
    """30 minutes → `PT30M`; the inverse of parse_duration for whole seconds."""
    total = int(delta.total_seconds())
    if total < 0:
        raise ValidationError(f"cannot format a negative duration: {delta}")
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time_part = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if v)
    return "P" + (f"{days}D" if days else "") + (("T" + time_part) if time_part else ("" if days else "T0S"))
