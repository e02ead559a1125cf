"""Production secrets come from SSM Parameter Store under KEFU_SECRETS_SSM_PATH, never the repository."""
from __future__ import annotations

import boto3
from moto import mock_aws

from chalicelib.config import Settings, load_ssm_secrets


def test_secure_strings_under_the_path_fill_unset_variables() -> None:
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/kefu/secrets/WECHAT_TOKEN", Value="from-ssm", Type="SecureString")
        ssm.put_parameter(Name="/kefu/secrets/KEFU_WEBHOOK_SECRETS", Value='{"app": "s3cret"}', Type="SecureString")
        ssm.put_parameter(Name="/kefu/secrets/TWILIO_AUTH_TOKEN", Value="ssm-twilio", Type="SecureString")
        ssm.put_parameter(Name="/other/WECHAT_APP_SECRET", Value="not-ours", Type="SecureString")
        env = {"KEFU_SECRETS_SSM_PATH": "/kefu/secrets/", "TWILIO_AUTH_TOKEN": "already-set"}
        filled = load_ssm_secrets(env, ssm)
    assert filled["WECHAT_TOKEN"] == "from-ssm"
    assert filled["TWILIO_AUTH_TOKEN"] == "already-set"
    assert "WECHAT_APP_SECRET" not in filled
    settings = Settings.from_env(filled)
    assert settings.webhook_secrets == {"app": "s3cret"} and settings.wechat_token == "from-ssm"


def test_without_a_path_nothing_is_read() -> None:
    env = {"WECHAT_TOKEN": "x"}
    assert load_ssm_secrets(env, ssm_client=object()) == env
