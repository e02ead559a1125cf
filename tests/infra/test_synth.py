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
from chalicelib.config import Settings, resource_name

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
if str(ROOT / "infra") not in sys.path:
    # Last, so that `import app` still finds the Chalice app rather than infra/app.py; the stack imports `functions`.
    sys.path.append(str(ROOT / "infra"))

from functions import FUNCTION_ACCESS, QUEUE_BATCH_WINDOW, VISIBILITY_FACTOR, queue_visibility_timeout  # noqa: E402


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
        assert props["VisibilityTimeout"] == queue_visibility_timeout(queue) >= queue.visibility_timeout
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
        assert found[0]["MaximumBatchingWindowInSeconds"] == QUEUE_BATCH_WINDOW
        assert functions[logical]["Properties"]["Timeout"] == FUNCTION_ACCESS[queue.handler].timeout


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


# --- least privilege that is still enough, per function (infra/functions.py) -----------------------------------


def role_statements(template_json: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to a function's role, with Action and Resource as lists."""
    role = template_json["Resources"][logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    found = []
    for policy in of_type(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions, targets = statement["Action"], statement["Resource"]
                found.append(
                    {
                        **statement,
                        "Action": actions if isinstance(actions, list) else [actions],
                        "Resource": targets if isinstance(targets, list) else [targets],
                    }
                )
    return found


def granted(statements: list[dict[str, Any]], action: str, target: Any) -> bool:
    return any(s["Effect"] == "Allow" and action in s["Action"] and target in s["Resource"] for s in statements)


def logical_ids(template_json: dict[str, Any], kind: str, name_property: str) -> dict[str, str]:
    return {r["Properties"][name_property]: k for k, r in of_type(template_json, kind).items()}


def test_table_stream_may_do_what_the_effects_dispatcher_does(template: Any, template_json: dict[str, Any]) -> None:
    from aws_cdk.assertions import Match

    (table_id,) = of_type(template_json, "AWS::DynamoDB::Table")
    topics = logical_ids(template_json, "AWS::SNS::Topic", "TopicName")
    queues = logical_ids(template_json, "AWS::SQS::Queue", "QueueName")
    machines = logical_ids(template_json, "AWS::StepFunctions::StateMachine", "StateMachineName")
    role_id = template_json["Resources"]["TableStream"]["Properties"]["Role"]["Fn::GetAtt"][0]
    # triage, notifications and clock resumption write the table; routing notices go to the staff topic.
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sns:Publish",
                                "Resource": {"Ref": topics["kefu-staff-notifications"]},
                            }
                        )
                    ]
                )
            },
        },
    )
    statements = role_statements(template_json, "TableStream")
    table = {"Fn::GetAtt": [table_id, "Arn"]}
    for action in (
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    ):
        assert granted(statements, action, table), action
    assert granted(statements, "sns:Publish", {"Ref": topics["kefu-staff-notifications"]})
    assert granted(statements, "sqs:SendMessage", {"Fn::GetAtt": [queues["kefu-outbox"], "Arn"]})
    assert granted(statements, "sqs:GetQueueUrl", {"Fn::GetAtt": [queues["kefu-outbox"], "Arn"]})
    for name in resources.STATE_MACHINES:
        assert granted(statements, "states:StartExecution", {"Ref": machines[name]}), name
    stops = [s for s in statements if "states:StopExecution" in s["Action"]]
    assert len(stops) == len(resources.STATE_MACHINES)
    assert {a for s in statements for a in s["Action"] if a.startswith("states:")} == {
        "states:StartExecution",
        "states:StopExecution",
    }
    assert template_json["Resources"]["TableStream"]["Properties"]["MemorySize"] >= 512  # jieba


def test_each_function_gets_what_its_code_path_uses_and_no_more(template_json: dict[str, Any]) -> None:
    topics = logical_ids(template_json, "AWS::SNS::Topic", "TopicName")
    publish = {
        logical: {
            t
            for t, ref in topics.items()
            if granted(role_statements(template_json, logical), "sns:Publish", {"Ref": ref})
        }
        for logical in of_type(template_json, "AWS::Serverless::Function")
    }
    assert publish["APIHandler"] == {"kefu-staff-notifications"}  # work orders: low spare-part stock
    assert publish["TableStream"] == {"kefu-staff-notifications"}
    assert publish["ReconcileClocks"] == {"kefu-clock-events"}
    for logical in ("ClockEvents", "OutboxSender", "InboundEmail", "RecomputeTiers"):
        assert publish[logical] == set(), logical
    sends = [s for s in role_statements(template_json, "OutboxSender") if "ses:SendRawEmail" in s["Action"]]
    assert sends and all(s["Action"] == ["ses:SendRawEmail"] for s in sends)
    for logical in of_type(template_json, "AWS::Serverless::Function"):
        actions = {a for s in role_statements(template_json, logical) for a in s["Action"]}
        assert ("ses:SendRawEmail" in actions) == (logical == "OutboxSender"), logical
        assert any(a.startswith("states:") for a in actions) == (logical == "TableStream"), logical
    # inbound_email reads the mail SES stored under inbound/ and writes attachments under email/, nothing else.
    s3 = [s for s in role_statements(template_json, "InboundEmail") if any(a.startswith("s3:") for a in s["Action"])]
    object_keys = {json.dumps(r) for s in s3 for r in s["Resource"] if "Fn::Join" in r}
    assert object_keys and all('"/inbound/*"' in k or '"/email/*"' in k for k in object_keys), object_keys


def test_functions_get_the_names_of_the_buckets_they_may_use(template_json: dict[str, Any]) -> None:
    buckets = {
        k: b["Properties"]["BucketName"]
        for k, b in of_type(template_json, "AWS::S3::Bucket").items()
        if "BucketName" in b["Properties"]
    }
    variables = {
        "KEFU_ATTACHMENTS_BUCKET": resources.ATTACHMENTS_BUCKET,
        "KEFU_ARCHIVE_BUCKET": resources.ARCHIVE_BUCKET,
    }
    for logical, function in of_type(template_json, "AWS::Serverless::Function").items():
        env = function["Properties"]["Environment"]["Variables"]
        usable = {
            json.dumps(r)
            for s in role_statements(template_json, logical)
            if any(a.startswith("s3:") for a in s["Action"])
            for r in s["Resource"]
        }
        for variable, catalogue in variables.items():
            (bucket_id,) = [k for k, name in buckets.items() if json.dumps(name).find(catalogue + "-") >= 0]
            may_use = any(bucket_id in u for u in usable)
            assert (variable in env) == may_use, (logical, variable)
            if may_use:
                assert env[variable] == {"Ref": bucket_id}
    # ...and the code reads them there.
    settings = Settings.from_env({"KEFU_ATTACHMENTS_BUCKET": "a", "KEFU_ARCHIVE_BUCKET": "b"})
    assert (settings.attachments_bucket, settings.archive_bucket) == ("a", "b")


def test_queue_visibility_is_six_times_the_consumer_timeout(template_json: dict[str, Any]) -> None:
    """AWS: a queue feeding Lambda needs a visibility timeout ≥ 6 × the function's timeout (+ batching window)."""
    queues = of_type(template_json, "AWS::SQS::Queue")
    functions = of_type(template_json, "AWS::Serverless::Function")
    checked = set()
    pairs = []  # (queue logical id, function logical id, batching window)
    for mapping in of_type(template_json, "AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        source = props["EventSourceArn"]
        if isinstance(source, dict) and source.get("Fn::GetAtt", [None])[0] in queues:
            pairs.append(
                (source["Fn::GetAtt"][0], props["FunctionName"]["Ref"], props.get("MaximumBatchingWindowInSeconds", 0))
            )
    for logical, function in functions.items():  # Chalice's own @app.on_sqs_message, should there be any
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]
                assert isinstance(queue, dict) and "Fn::GetAtt" in queue, f"{logical}: SQS event outside the stack"
                pairs.append(
                    (queue["Fn::GetAtt"][0], logical, event["Properties"].get("MaximumBatchingWindowInSeconds", 0))
                )
    for queue_id, function_id, window in pairs:
        visibility = queues[queue_id]["Properties"]["VisibilityTimeout"]
        timeout = functions[function_id]["Properties"]["Timeout"]
        assert visibility >= VISIBILITY_FACTOR * timeout + window, (queue_id, function_id, visibility, timeout)
        checked.add(queues[queue_id]["Properties"]["QueueName"])
    assert checked == {q.name for q in resources.QUEUES}


def test_sns_event_sources_subscribe_to_the_stacks_topics(template_json: dict[str, Any]) -> None:
    """Chalice writes `kefu-inbound-email` as a name; under another prefix that topic would not exist."""
    topics = set(of_type(template_json, "AWS::SNS::Topic"))
    events = [
        e
        for f in of_type(template_json, "AWS::Serverless::Function").values()
        for e in f["Properties"].get("Events", {}).values()
        if e["Type"] == "SNS"
    ]
    assert events
    for event in events:
        topic = event["Properties"]["Topic"]
        assert isinstance(topic, dict) and topic.get("Ref") in topics, topic


def test_the_stack_names_resources_by_the_rule_the_code_resolves_them_by() -> None:
    from types import SimpleNamespace

    from kefu_stack import KefuStack

    catalogue = [
        resources.TABLE_NAME,
        *resources.TOPICS,
        *(q.name for q in resources.QUEUES),
        *(q.dlq_name for q in resources.QUEUES),
        *resources.STATE_MACHINES,
    ]
    for prefix in ("kefu", "acme", "kefu-staging"):
        stack = SimpleNamespace(prefix=prefix)
        settings = Settings.from_env({"KEFU_RESOURCE_PREFIX": prefix})
        for name in catalogue:
            assert KefuStack.name(stack, name) == settings.resource_name(name) == resource_name(name, prefix)  # type: ignore[arg-type]


def test_gateway_answers_have_the_error_shape(template_json: dict[str, Any]) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in of_type(template_json, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response_type, props in responses.items():
        assert props["RestApiId"] == {"Ref": "RestAPI"}
        body = props["ResponseTemplates"]["application/json"]
        assert body.startswith('{"error": {"code": "') and '"message": ' in body, response_type
        assert props["ResponseParameters"] == {"gatewayresponse.header.Content-Type": "'application/json'"}
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"  # an unknown route
    assert json.loads(responses["MISSING_AUTHENTICATION_TOKEN"]["ResponseTemplates"]["application/json"]) == {
        "error": {"code": "not_found", "message": "no such route"}
    }
    assert "StatusCode" not in responses["DEFAULT_4XX"]  # keeps the gateway's own status
