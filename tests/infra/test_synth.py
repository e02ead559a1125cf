"""Synthesises infra/ once per session (offline, dummy credentials), runs cfn-lint, and checks the template."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib import resources
from chalicelib.adapters.dynamodb.schema import TTL_ATTRIBUTE, table_definition
from chalicelib.api.auth import ROLES

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_", "KEFU_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        KEFU_INFRA_PACKAGE="offline",
        KEFU_INFRA_OUTDIR=str(out),
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "app.py")],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def template_json(synth_dir: Path) -> dict[str, Any]:
    return json.loads((synth_dir / "kefu.template.json").read_text())


@pytest.fixture(scope="session")
def template(template_json: dict[str, Any]) -> Any:
    from aws_cdk.assertions import Template

    return Template.from_json(template_json)


def of_type(template_json: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_finds_no_errors(synth_dir: Path) -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "json", str(synth_dir / "kefu.template.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = json.loads(result.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)[:4000]
    assert result.returncode & 2 == 0


def test_table_matches_schema_with_stream_ttl_and_pitr(template: Any, template_json: dict[str, Any]) -> None:
    definition = table_definition()
    tables = of_type(template_json, "AWS::DynamoDB::Table")
    assert len(tables) == 1
    (table,) = tables.values()
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == definition["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(definition["AttributeDefinitions"], key=str)
    indexes = {i["IndexName"]: i["KeySchema"] for i in props["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: i["KeySchema"] for i in definition["GlobalSecondaryIndexes"]}
    assert table["DeletionPolicy"] == "Retain"


def test_every_queue_has_a_dlq_with_the_catalogue_redrive(template_json: dict[str, Any]) -> None:
    queues = of_type(template_json, "AWS::SQS::Queue")
    names = {q["Properties"]["QueueName"]: (k, q["Properties"]) for k, q in queues.items()}
    for queue in resources.QUEUES:
        _, props = names[queue.name]
        dlq_id, _ = names[queue.dlq_name]
        redrive = props["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == queue.max_receive_count
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
        assert props["VisibilityTimeout"] == queue.visibility_timeout
    for name, (_, props) in names.items():
        assert name.endswith("-dlq") or "RedrivePolicy" in props, f"{name} has no dead-letter queue"


def test_topics_and_raw_sns_to_sqs_subscriptions(template_json: dict[str, Any]) -> None:
    topics = {t["Properties"]["TopicName"]: k for k, t in of_type(template_json, "AWS::SNS::Topic").items()}
    assert set(resources.TOPICS) <= set(topics)
    subscriptions = of_type(template_json, "AWS::SNS::Subscription").values()
    for queue in resources.QUEUES:
        if queue.topic:
            matching = [
                s["Properties"]
                for s in subscriptions
                if s["Properties"]["Protocol"] == "sqs" and s["Properties"]["TopicArn"] == {"Ref": topics[queue.topic]}
            ]
            assert matching and matching[0]["RawMessageDelivery"] is True, queue.name


def test_every_dlq_has_an_alarm(template_json: dict[str, Any]) -> None:
    queues = of_type(template_json, "AWS::SQS::Queue")
    dlqs = {k for k, q in queues.items() if q["Properties"]["QueueName"].endswith("-dlq")}
    assert len(dlqs) >= len(resources.QUEUES)
    alarmed = set()
    for alarm in of_type(template_json, "AWS::CloudWatch::Alarm").values():
        for dimension in alarm["Properties"].get("Dimensions", []):
            value = dimension["Value"]
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                alarmed.add(value["Fn::GetAtt"][0])
        assert alarm["Properties"]["AlarmActions"], "alarm without an action"
    assert dlqs <= alarmed


def test_alarms_for_function_errors_state_machines_and_sla(template_json: dict[str, Any]) -> None:
    alarms = list(of_type(template_json, "AWS::CloudWatch::Alarm").values())
    metrics = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms}
    assert ("AWS/States", "ExecutionsFailed") in metrics
    assert ("AWS/SNS", "NumberOfMessagesPublished") in metrics  # the SLA breach counter
    functions = {f["Properties"]["FunctionName"] for f in of_type(template_json, "AWS::Serverless::Function").values()}
    errored = {
        d["Value"]
        for a in alarms
        if a["Properties"]["MetricName"] == "Errors"
        for d in a["Properties"]["Dimensions"]
        if d["Name"] == "FunctionName"
    }
    assert functions <= errored


def test_state_machines_with_resolved_substitutions_and_exact_role(template_json: dict[str, Any]) -> None:
    machines = of_type(template_json, "AWS::StepFunctions::StateMachine")
    assert {m["Properties"]["StateMachineName"] for m in machines.values()} == set(resources.STATE_MACHINES)
    by_name = {m["Properties"]["StateMachineName"]: m["Properties"] for m in machines.values()}
    policies = of_type(template_json, "AWS::IAM::Policy")
    for name, filename in resources.STATE_MACHINES.items():
        props = by_name[name]
        text = (ROOT / "stepfunctions" / filename).read_text()
        placeholders = set(re.findall(r"\$\{(\w+)\}", text))
        assert placeholders <= set(props["DefinitionSubstitutions"]), placeholders
        assert all(v not in ("", None) for v in props["DefinitionSubstitutions"].values())
        role_id = props["RoleArn"]["Fn::GetAtt"][0]
        statements = [
            s
            for p in policies.values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        actions = sorted(s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]) for s in statements)
        if filename == "clock.asl.json":
            assert actions == ["dynamodb:UpdateItem", "sns:Publish"]
            resources_by_action = {s["Action"]: s["Resource"] for s in statements}
            assert "Fn::GetAtt" in resources_by_action["dynamodb:UpdateItem"]
            assert "Ref" in resources_by_action["sns:Publish"]


def test_cognito_groups_for_every_role(template: Any, template_json: dict[str, Any]) -> None:
    groups = {g["Properties"]["GroupName"] for g in of_type(template_json, "AWS::Cognito::UserPoolGroup").values()}
    assert groups == set(ROLES)
    template.resource_count_is("AWS::Cognito::UserPool", 1)
    template.has_resource_properties("AWS::Cognito::UserPoolClient", {"GenerateSecret": False})


def test_functions_get_cognito_env_and_no_wildcard_iam(template_json: dict[str, Any]) -> None:
    functions = of_type(template_json, "AWS::Serverless::Function")
    assert {"APIHandler", "TableStream", "ClockEvents", "OutboxSender", "ReconcileClocks"} <= set(functions)
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["KEFU_AUTH_MODE"] == "cognito"
        for key in ("KEFU_COGNITO_USER_POOL_ID", "KEFU_COGNITO_CLIENT_ID", "KEFU_TABLE_NAME", "KEFU_AWS_ACCOUNT_ID"):
            assert variables.get(key), f"{logical_id} lacks {key}"
        for secret in ("WECHAT_TOKEN", "TWILIO_AUTH_TOKEN", "KEFU_WEBHOOK_SECRETS", "KEFU_LOCAL_JWT_SECRET"):
            assert secret not in variables
        role = function["Properties"]["Role"]
        assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{logical_id} must use the stack's own role"
        role_id = role["Fn::GetAtt"][0]
        for policy in of_type(template_json, "AWS::IAM::Policy").values():
            if {"Ref": role_id} not in policy["Properties"]["Roles"]:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (logical_id, statement)
                assert "*" not in targets, (logical_id, statement)


def test_event_source_mappings(template_json: dict[str, Any]) -> None:
    mappings = list(of_type(template_json, "AWS::Lambda::EventSourceMapping").values())
    functions = of_type(template_json, "AWS::Serverless::Function")
    stream = [m["Properties"] for m in mappings if m["Properties"]["FunctionName"] == {"Ref": "TableStream"}]
    assert len(stream) == 1
    assert stream[0]["BisectBatchOnFunctionError"] is True
    assert stream[0]["StartingPosition"] == "TRIM_HORIZON"
    assert stream[0]["MaximumRetryAttempts"] >= 1
    assert stream[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in stream[0]["DestinationConfig"]
    for queue in resources.QUEUES:
        logical = "".join(part.capitalize() for part in queue.handler.split("_"))
        found = [m["Properties"] for m in mappings if m["Properties"]["FunctionName"] == {"Ref": logical}]
        assert len(found) == 1, queue.handler
        assert found[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Lambda refuses an SQS mapping whose queue times out before the function does.
        assert functions[logical]["Properties"]["Timeout"] <= queue.visibility_timeout


def test_schedules_come_from_chalice_once(template_json: dict[str, Any]) -> None:
    functions = of_type(template_json, "AWS::Serverless::Function")
    schedules: dict[str, list[str]] = {}
    for logical_id, function in functions.items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "Schedule":
                schedules.setdefault(logical_id, []).append(event["Properties"]["Schedule"])
    assert not of_type(template_json, "AWS::Events::Rule"), "schedules belong to chalice's @app.schedule"
    for handler, minutes in resources.SCHEDULES.items():
        logical = "".join(part.capitalize() for part in handler.split("_"))
        assert len(schedules.get(logical, [])) == 1, handler
        rate = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", schedules[logical][0])
        if rate:  # a cron() schedule is the handler's own business
            per_unit = {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)]
            assert int(rate.group(1)) * per_unit == minutes, handler


def test_ses_inbound_rule_archive_and_admin_site(template_json: dict[str, Any]) -> None:
    rules = list(of_type(template_json, "AWS::SES::ReceiptRule").values())
    assert len(rules) == 1
    actions = rules[0]["Properties"]["Rule"]["Actions"]
    assert "S3Action" in actions[0] and actions[0]["S3Action"]["TopicArn"]
    buckets = of_type(template_json, "AWS::S3::Bucket").values()
    locked = [b for b in buckets if b["Properties"].get("ObjectLockEnabled")]
    assert locked
    retention = locked[0]["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention.get("Days", 0) >= 3 * 365 or retention.get("Years", 0) >= 3
    assert of_type(template_json, "AWS::CloudFront::Distribution")
    assert of_type(template_json, "Custom::CDKBucketDeployment")


def test_synth_writes_no_secret_values(synth_dir: Path) -> None:
    text = (synth_dir / "kefu.template.json").read_text()
    for marker in ("e2e-secret", "test-secret", "BEGIN PRIVATE KEY", "testing"):
        assert marker not in text
