"""Settings.from_env(): every environment variable kefu reads, in one place, typed and validated."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import resources
from .domain.durations import parse_duration
from .domain.errors import ValidationError
from .domain.sla import SlaPolicy

_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def resource_name(name: str, prefix: str = "kefu") -> str:
    """A catalogue name of resources.py (`kefu-outbox`) as deployed under the prefix `acme` (`acme-outbox`).

    The one naming rule: infra/ names the table, topics, queues and state machines with it
    (`KefuStack.name`), and the code resolves catalogue names with it (`AwsClients.resource_name`).
    """
    if name == "kefu" or name.startswith("kefu-"):
        return prefix + name[len("kefu") :]
    return f"{prefix}-{name}"


def _json_object(name: str, raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError(f"{name} must be a JSON object of strings")
    return {str(k): v for k, v in value.items()}


def _whole_seconds(name: str, raw: str, default: int) -> int:
    if not raw.strip():
        return default
    if not raw.strip().isdigit() or not 0 < int(raw) <= 900:
        raise ValidationError(f"{name} must be whole seconds between 1 and 900")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Typed configuration. Build it with from_env(); tests build it directly."""

    region: str = "us-east-1"
    endpoint_url: str = ""
    timezone: str = "Asia/Shanghai"
    public_base_url: str = "http://127.0.0.1:8000"
    sla_policy: SlaPolicy = field(default_factory=SlaPolicy.from_mapping)
    survey_delay: timedelta = timedelta(hours=1)
    table_name: str = resources.TABLE_NAME
    resource_prefix: str = "kefu"
    account_id: str = ""  # resolved through STS when empty
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_encoding_aes_key: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    twilio_auth_token: str = ""
    twilio_account_sid: str = ""
    twilio_from_number: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    webhook_callbacks: dict[str, str] = field(default_factory=dict)
    auth_mode: str = "cognito"
    local_jwt_secret: str = ""
    cognito_user_pool_id: str = ""
    cognito_client_id: str = ""
    ses_sender: str = resources.SES_IDENTITY
    webhook_clock_skew: int = 300
    attachments_bucket: str = resources.ATTACHMENTS_BUCKET
    archive_bucket: str = resources.ARCHIVE_BUCKET
    outbox_backoff_base: int = 10  # seconds; the n-th retry of an outbound send waits base * 2**(n-1)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resource_name(self, name: str) -> str:
        """A catalogue name (`kefu-outbox`) as deployed under KEFU_RESOURCE_PREFIX."""
        return resource_name(name, self.resource_prefix)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Reads and validates the environment; raises ValidationError naming the bad variable."""
        e = dict(os.environ if env is None else env)
        timezone = e.get("KEFU_TIMEZONE", "Asia/Shanghai") or "Asia/Shanghai"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"KEFU_TIMEZONE {timezone!r} is not a known time zone") from exc
        auth_mode = e.get("KEFU_AUTH_MODE", "cognito") or "cognito"
        if auth_mode not in ("cognito", "local"):
            raise ValidationError("KEFU_AUTH_MODE must be 'cognito' or 'local'")
        if auth_mode == "local" and not e.get("KEFU_LOCAL_JWT_SECRET"):
            raise ValidationError("KEFU_AUTH_MODE=local needs KEFU_LOCAL_JWT_SECRET")
        policy_file = e.get("KEFU_SLA_POLICY_FILE", "")
        prefix = e.get("KEFU_RESOURCE_PREFIX") or "kefu"
        if not _PREFIX.fullmatch(prefix):
            raise ValidationError("KEFU_RESOURCE_PREFIX must be 1-40 letters, digits, '-' or '_'")
        return cls(
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=e.get("AWS_ENDPOINT_URL", ""),
            timezone=timezone,
            public_base_url=(e.get("KEFU_PUBLIC_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
            sla_policy=SlaPolicy.from_file(policy_file) if policy_file else SlaPolicy.from_mapping(),
            survey_delay=parse_duration(e.get("KEFU_SURVEY_DELAY") or "PT1H"),
            table_name=e.get("KEFU_TABLE_NAME") or resource_name(resources.TABLE_NAME, prefix),
            resource_prefix=prefix,
            account_id=e.get("KEFU_AWS_ACCOUNT_ID", ""),
            wechat_token=e.get("WECHAT_TOKEN", ""),
            wechat_app_id=e.get("WECHAT_APP_ID", ""),
            wechat_app_secret=e.get("WECHAT_APP_SECRET", ""),
            wechat_encoding_aes_key=e.get("WECHAT_ENCODING_AES_KEY", ""),
            wechat_api_base=(e.get("KEFU_WECHAT_API_BASE") or "https://api.weixin.qq.com").rstrip("/"),
            twilio_auth_token=e.get("TWILIO_AUTH_TOKEN", ""),
            twilio_account_sid=e.get("TWILIO_ACCOUNT_SID", ""),
            twilio_from_number=e.get("TWILIO_FROM_NUMBER", ""),
            twilio_api_base=(e.get("KEFU_TWILIO_API_BASE") or "https://api.twilio.com").rstrip("/"),
            webhook_secrets=_json_object("KEFU_WEBHOOK_SECRETS", e.get("KEFU_WEBHOOK_SECRETS", "")),
            webhook_callbacks=_json_object("KEFU_WEBHOOK_CALLBACKS", e.get("KEFU_WEBHOOK_CALLBACKS", "")),
            auth_mode=auth_mode,
            local_jwt_secret=e.get("KEFU_LOCAL_JWT_SECRET", ""),
            cognito_user_pool_id=e.get("KEFU_COGNITO_USER_POOL_ID", ""),
            cognito_client_id=e.get("KEFU_COGNITO_CLIENT_ID", ""),
            ses_sender=e.get("KEFU_SES_SENDER") or resources.SES_IDENTITY,
            attachments_bucket=e.get("KEFU_ATTACHMENTS_BUCKET") or resources.ATTACHMENTS_BUCKET,
            archive_bucket=e.get("KEFU_ARCHIVE_BUCKET") or resources.ARCHIVE_BUCKET,
            outbox_backoff_base=_whole_seconds("KEFU_OUTBOX_BACKOFF_BASE", e.get("KEFU_OUTBOX_BACKOFF_BASE", ""), 10),
        )


def load_ssm_secrets(env: dict[str, str], ssm_client: Any = None) -> dict[str, str]:
    """Production secrets: SecureString parameters under KEFU_SECRETS_SSM_PATH fill the variables not already set.

    `/kefu/secrets/WECHAT_TOKEN` becomes `WECHAT_TOKEN`. Read once per container, at the first use of settings.
    """
    path = env.get("KEFU_SECRETS_SSM_PATH", "")
    if not path:
        return env
    if ssm_client is None:
        import boto3

        ssm_client = boto3.client("ssm", region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    filled = dict(env)
    pages = ssm_client.get_paginator("get_parameters_by_path").paginate(Path=path, WithDecryption=True, Recursive=False)
    for page in pages:
        for parameter in page["Parameters"]:
            name = str(parameter["Name"]).rsplit("/", 1)[-1]
            if name and not filled.get(name):
                filled[name] = str(parameter["Value"])
    return filled


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import)."""
    return Settings.from_env(load_ssm_secrets(dict(os.environ)))
