"""A cold start (`import app`) registers routes and handlers only: the heavy libraries load on first use.

Not timed (no timed unit tests): it checks *what* a fresh interpreter has imported after `import app`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loaded on first use, never by `import app`:
DEFERRED = (
    "cryptography",  # PyJWT's algorithms (api/auth.py) and WeChat's AES (channels/wechat.py)
    "jwt",
    "jieba",  # the classifier's tokenizer (domain/triage/classifier.py)
    "boto3",  # the container's adapters (wiring.py) and the stream decoder (handlers/events.py)
    # Not "botocore" itself: aws_lambda_powertools (app.py's Logger) imports the bare package at import to
    # register its user agent. That is cheap; what must not load is the client machinery behind it.
    "botocore.client",
    "botocore.session",
    "pynamodb",
    "urllib.request",  # channels/http.py's sender; it pulls in http.client, email and ssl
    "email",  # channels/email.py (inbound SES mail, the SES sender)
    "chalicelib.adapters.aws",
    "chalicelib.adapters.dynamodb.models",
    "chalicelib.domain.triage.classifier",
    "chalicelib.domain.work_orders",
    "chalicelib.services.triage",
    "chalicelib.services.knowledge",
)

PROBE = """
import json, sys
import app
print(json.dumps({
    "routes": sorted(app.app.routes),
    "handlers": [n for n in ("table_stream", "clock_events", "outbox_sender", "reconcile_clocks") if hasattr(app, n)],
    "modules": sorted(sys.modules),
}))
"""


def _import_app_fresh() -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_app_registers_everything_but_defers_the_heavy_libraries() -> None:
    result = _import_app_fresh()
    assert "/webhooks/generic/{source}" in result["routes"] and "/api/tickets" in result["routes"]
    assert len(result["handlers"]) == 4
    modules = set(result["modules"])
    loaded = sorted(name for name in DEFERRED if name in modules)
    assert not loaded, f"`import app` loaded {loaded}; import them where they are used (see wiring.py)"
