"""The inbound_email handler: SES receipt rule → SNS → this Lambda; each record goes through EmailIntake."""
from __future__ import annotations

import logging
from typing import Any

from ..domain.errors import ValidationError
from ..wiring import get_container

logger = logging.getLogger("kefu.email")


def inbound_email(event: dict[str, Any]) -> dict[str, Any]:
    """Malformed notifications are logged and dropped (retrying cannot fix them); other errors raise (retried)."""
    email_intake = get_container().email_intake
    results: list[dict[str, Any]] = []
    for record in event.get("Records", []):
        message = (record.get("Sns") or {}).get("Message", "")
        try:
            results.append(email_intake.receive(message))
        except ValidationError as error:
            logger.warning("inbound email dropped: %s", error.message)
            results.append({"dropped": error.code, "reason": error.message})
    return {"results": results}
