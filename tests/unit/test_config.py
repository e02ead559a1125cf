"""Settings.from_env: every variable read in one place, defaults, and a ValidationError naming a bad one."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from chalicelib.config import Settings
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.sla import SlaPolicy


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.timezone == "Asia/Shanghai" and s.zone.key == "Asia/Shanghai"
    assert s.auth_mode == "cognito"
    assert s.endpoint_url == ""
    assert s.webhook_secrets == {}
    assert s.sla_policy == SlaPolicy.from_mapping()
    assert s.survey_delay == timedelta(hours=1)
    assert s.public_base_url == "http://127.0.0.1:8000"
    assert s.region == "us-east-1"
    assert s.webhook_clock_skew == 300


def test_every_variable_is_read(tmp_path: Path) -> None:
    policy = tmp_path / "sla.json"
    policy.write_text(json.dumps({"ack": "PT3S"}), encoding="utf-8")
    s = Settings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5001",
            "AWS_DEFAULT_REGION": "ap-east-1",
            "KEFU_TIMEZONE": "UTC",
            "KEFU_PUBLIC_BASE_URL": "https://kefu.example.com/",
            "KEFU_SLA_POLICY_FILE": str(policy),
            "KEFU_SURVEY_DELAY": "PT2H",
            "WECHAT_TOKEN": "tok",
            "WECHAT_APP_ID": "wx1",
            "WECHAT_ENCODING_AES_KEY": "k" * 43,
            "TWILIO_AUTH_TOKEN": "tw",
            "KEFU_WEBHOOK_SECRETS": json.dumps({"app": "s1", "douyin": "s2"}),
            "KEFU_AUTH_MODE": "local",
            "KEFU_LOCAL_JWT_SECRET": "jwt-secret",
        }
    )
    assert s.endpoint_url == "http://127.0.0.1:5001"
    assert s.region == "ap-east-1"
    assert s.timezone == "UTC"
    assert s.public_base_url == "https://kefu.example.com"  # no trailing slash
    assert s.sla_policy.ack == timedelta(seconds=3) and s.sla_policy.progress == timedelta(hours=4)
    assert s.survey_delay == timedelta(hours=2)
    assert (s.wechat_token, s.wechat_app_id, s.wechat_encoding_aes_key) == ("tok", "wx1", "k" * 43)
    assert s.twilio_auth_token == "tw"
    assert s.webhook_secrets == {"app": "s1", "douyin": "s2"}
    assert (s.auth_mode, s.local_jwt_secret) == ("local", "jwt-secret")


def test_aws_region_wins_over_default_region() -> None:
    assert Settings.from_env({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}).region == "eu-west-1"


def test_blank_values_mean_defaults() -> None:
    s = Settings.from_env({"KEFU_TIMEZONE": "", "KEFU_AUTH_MODE": "", "KEFU_WEBHOOK_SECRETS": "  "})
    assert (s.timezone, s.auth_mode, s.webhook_secrets) == ("Asia/Shanghai", "cognito", {})


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KEFU_TIMEZONE": "Mars/Olympus_Mons"}, "KEFU_TIMEZONE"),
        ({"KEFU_TIMEZONE": "../../etc/passwd"}, "KEFU_TIMEZONE"),
        ({"KEFU_TIMEZONE": "Asia/Shanghai "}, "KEFU_TIMEZONE"),
        ({"KEFU_WEBHOOK_SECRETS": "app=secret"}, "KEFU_WEBHOOK_SECRETS"),
        ({"KEFU_WEBHOOK_SECRETS": '{"app": "s1",}'}, "KEFU_WEBHOOK_SECRETS"),
        ({"KEFU_WEBHOOK_SECRETS": '["app", "s1"]'}, "KEFU_WEBHOOK_SECRETS"),
        ({"KEFU_WEBHOOK_SECRETS": '{"app": 42}'}, "KEFU_WEBHOOK_SECRETS"),
        ({"KEFU_WEBHOOK_SECRETS": '"s1"'}, "KEFU_WEBHOOK_SECRETS"),
        ({"KEFU_AUTH_MODE": "local"}, "KEFU_LOCAL_JWT_SECRET"),
        ({"KEFU_AUTH_MODE": "local", "KEFU_LOCAL_JWT_SECRET": ""}, "KEFU_LOCAL_JWT_SECRET"),
        ({"KEFU_AUTH_MODE": "none"}, "KEFU_AUTH_MODE"),
        ({"KEFU_SURVEY_DELAY": "1 hour"}, "duration"),
        ({"KEFU_SLA_POLICY_FILE": "/nonexistent/sla.json"}, "SLA policy"),
    ],
)
def test_bad_environment_is_refused_by_name(env: dict[str, str], names: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_env(env)
    assert names in caught.value.message


def test_bad_policy_file_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sla.json"
    path.write_text(json.dumps({"ack": "soon"}), encoding="utf-8")
    with pytest.raises(ValidationError):
        Settings.from_env({"KEFU_SLA_POLICY_FILE": str(path)})
