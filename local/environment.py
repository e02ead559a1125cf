"""The environment of the local stack: the caller's settings where given, demo values otherwise."""

from __future__ import annotations

import os

from .demo import DEMO_ENV

MOTO_HOST, API_HOST = "127.0.0.1", "127.0.0.1"
# Ports are fixed by CONTRACT.md; the test suite moves them to free ones to run beside a live stack.
MOTO_PORT = int(os.environ.get("KEFU_LOCAL_MOTO_PORT", "5001"))
API_PORT = int(os.environ.get("KEFU_LOCAL_API_PORT", "8000"))


def local_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key, value in DEMO_ENV.items():
        if not env.get(key):
            env[key] = value
    if API_PORT != 8000 and env["KEFU_PUBLIC_BASE_URL"] == DEMO_ENV["KEFU_PUBLIC_BASE_URL"]:
        env["KEFU_PUBLIC_BASE_URL"] = f"http://{API_HOST}:{API_PORT}"
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"]
    env["AWS_ENDPOINT_URL"] = f"http://{MOTO_HOST}:{MOTO_PORT}"
    env["KEFU_AWS_ACCOUNT_ID"] = env.get("KEFU_AWS_ACCOUNT_ID") or "123456789012"
    env.pop("AWS_PROFILE", None)
    env.setdefault("POWERTOOLS_SERVICE_NAME", "kefu")
    return env


def apply(env: dict[str, str]) -> None:
    """Makes `env` this process's environment (the pump calls the handlers in-process)."""
    os.environ.clear()
    os.environ.update(env)
