"""The kefu CDK stack: every resource of chalicelib/resources.py plus the Chalice app, Cognito, admin page, alarms."""

from __future__ import annotations

import atexit
import importlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import (
    aws_cloudfront as cloudfront,
)
from aws_cdk import (
    aws_cloudfront_origins as origins,
)
from aws_cdk import (
    aws_cloudwatch as cloudwatch,
)
from aws_cdk import (
    aws_cloudwatch_actions as cw_actions,
)
from aws_cdk import (
    aws_cognito as cognito,
)
from aws_cdk import (
    aws_dynamodb as dynamodb,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_logs as logs,
)
from aws_cdk import (
    aws_s3 as s3,
)
from aws_cdk import (
    aws_s3_deployment as s3deploy,
)
from aws_cdk import (
    aws_ses as ses,
)
from aws_cdk import (
    aws_ses_actions as ses_actions,
)
from aws_cdk import (
    aws_sns as sns,
)
from aws_cdk import (
    aws_sns_subscriptions as subs,
)
from aws_cdk import (
    aws_sqs as sqs,
)
from aws_cdk import (
    aws_stepfunctions as sfn,
)
from chalice.cdk import Chalice
from chalice.utils import to_cfn_resource_name
from constructs import Construct
from functions import DEFAULT_ACCESS, FUNCTION_ACCESS, QUEUE_BATCH_WINDOW, Access, queue_visibility_timeout

ROOT = Path(__file__).resolve().parents[1]
STEPFUNCTIONS_DIR = ROOT / "stepfunctions"
ADMIN_DIR = ROOT / "admin"

# Secrets the functions read as environment variables (chalicelib/config.py). Their values never enter the
# template: in "ssm" mode the function gets KEFU_SECRETS_SSM_PATH and reads SecureString parameters
# <path><NAME> at cold start; in "secretsmanager" mode CloudFormation resolves a dynamic reference at deploy time.
SECRET_VARIABLES = (
    "WECHAT_TOKEN",
    "WECHAT_APP_SECRET",
    "WECHAT_ENCODING_AES_KEY",
    "TWILIO_AUTH_TOKEN",
    "KEFU_WEBHOOK_SECRETS",
)
# Where the code finds each bucket's deployed name (chalicelib/config.py); set on the functions with access to it.
BUCKET_VARIABLES = {"kefu-attachments": "KEFU_ATTACHMENTS_BUCKET", "kefu-archive": "KEFU_ARCHIVE_BUCKET"}
# Plain (non-secret) settings passed through from the synth environment when set.
PASS_THROUGH_VARIABLES = (
    "KEFU_TIMEZONE",
    "KEFU_PUBLIC_BASE_URL",
    "KEFU_SURVEY_DELAY",
    "WECHAT_APP_ID",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_FROM_NUMBER",
    "KEFU_WEBHOOK_CALLBACKS",
    "KEFU_SES_SENDER",
)

ARCHIVE_RETENTION_DAYS = 1096  # 保存期限不少于3年: three years, leap day included


@dataclass
class Options:
    """Deployment options: CDK context `kefu:<name>` (cdk -c), else env KEFU_INFRA_<NAME>, else the default."""

    prefix: str = "kefu"
    package: str = "full"  # "full": Chalice installs requirements.txt (needs PyPI); "offline": app code only
    secrets: str = "ssm"  # "ssm" | "secretsmanager"
    alarm_email: str = ""
    support_address: str = ""
    public_base_url: str = ""
    sla_breach_threshold: int = 10  # breaches per 5 minutes before the SLA alarm fires
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, node: Any, env: dict[str, str]) -> Options:
        def get(name: str, default: str) -> str:
            value = node.try_get_context(f"kefu:{name}")
            if value is None:
                value = env.get(f"KEFU_INFRA_{name.upper()}")
            return str(value) if value not in (None, "") else default

        options = cls(
            prefix=get("prefix", "kefu"),
            package=get("package", "full"),
            secrets=get("secrets", "ssm"),
            alarm_email=get("alarm_email", ""),
            support_address=get("support_address", ""),
            public_base_url=get("public_base_url", env.get("KEFU_PUBLIC_BASE_URL", "")),
            sla_breach_threshold=int(get("sla_breach_threshold", "10")),
            extra_env={k: env[k] for k in PASS_THROUGH_VARIABLES if env.get(k)},
        )
        if options.package not in ("full", "offline"):
            raise ValueError("kefu:package must be 'full' or 'offline'")
        if options.secrets not in ("ssm", "secretsmanager"):
            raise ValueError("kefu:secrets must be 'ssm' or 'secretsmanager'")
        return options


def iter_task_resources(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every Task state of a definition, branches and Map iterators included."""
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from iter_task_resources(branch.get("States", {}))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from iter_task_resources(state[key].get("States", {}))


def integration_actions(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(IAM action, Parameters) for each service-integration task, e.g. ('dynamodb:UpdateItem', {...})."""
    found = []
    for state in iter_task_resources(definition.get("States", {})):
        resource = str(state.get("Resource", ""))
        prefix = "arn:aws:states:::"
        if not resource.startswith(prefix):
            raise ValueError(f"state machine task {resource!r}: only optimised service integrations are supported")
        service, _, api = resource[len(prefix) :].partition(":")
        api = api.split(".")[0]  # .sync / .waitForTaskToken
        found.append((f"{service}:{api[:1].upper()}{api[1:]}", dict(state.get("Parameters", {}))))
    return found


def load_chalice_app() -> Any:
    """The Chalice app object of app.py: the copy Chalice's packager already imported, else the repository's."""
    module = sys.modules.get("app")
    if module is None or not hasattr(module, "app") or not hasattr(module.app, "pure_lambda_functions"):
        sys.modules.pop("app", None)
        if str(ROOT) not in sys.path[:1]:
            sys.path.insert(0, str(ROOT))
        module = importlib.import_module("app")
    return module.app


class KefuStack(cdk.Stack):
    """Everything kefu needs in one account and region."""

    def __init__(self, scope: Construct, construct_id: str, *, options: Options, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Imported here so that infra/app.py can put the repository root on sys.path first.
        from chalicelib import resources
        from chalicelib.adapters.dynamodb.schema import TTL_ATTRIBUTE, table_definition
        from chalicelib.api.auth import ROLES
        from local.bootstrap import substitutions

        self.options = options
        self.resources = resources
        self.prefix = options.prefix
        self.alarm_topic = sns.Topic(self, "AlarmTopic", topic_name=self.name("kefu-alarms"))
        if options.alarm_email:
            self.alarm_topic.add_subscription(subs.EmailSubscription(options.alarm_email))

        # --- DynamoDB: the single table, from the same definition the local bootstrap uses -------------------
        definition = table_definition(self.name(resources.TABLE_NAME))
        types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}

        def attribute(name: str) -> dynamodb.Attribute:
            kinds = {
                "S": dynamodb.AttributeType.STRING,
                "N": dynamodb.AttributeType.NUMBER,
                "B": dynamodb.AttributeType.BINARY,
            }
            return dynamodb.Attribute(name=name, type=kinds[types[name]])

        keys = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
        stream_view = definition["StreamSpecification"]["StreamViewType"]
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=definition["TableName"],
            partition_key=attribute(keys["HASH"]),
            sort_key=attribute(keys["RANGE"]) if "RANGE" in keys else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=dynamodb.StreamViewType(stream_view),
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for index in definition["GlobalSecondaryIndexes"]:
            index_keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
            self.table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=attribute(index_keys["HASH"]),
                sort_key=attribute(index_keys["RANGE"]) if "RANGE" in index_keys else None,
                projection_type=dynamodb.ProjectionType(index["Projection"]["ProjectionType"]),
            )

        # --- SNS topics, SQS queues with their DLQs, SNS -> SQS subscriptions ---------------------------------
        self.topics = {
            t: sns.Topic(self, f"Topic{to_cfn_resource_name(t)}", topic_name=self.name(t)) for t in resources.TOPICS
        }
        for topic in self.topics.values():
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="DenyInsecureTransport",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions={"Bool": {"aws:SecureTransport": "false"}},
                )
            )
        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        for queue in resources.QUEUES:
            cfn = to_cfn_resource_name(queue.name)
            dlq = sqs.Queue(
                self,
                f"Dlq{cfn}",
                queue_name=self.name(queue.dlq_name),
                retention_period=cdk.Duration.days(14),
                enforce_ssl=True,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
            )
            self.dlqs[queue.name] = dlq
            self.queues[queue.name] = sqs.Queue(
                self,
                f"Queue{cfn}",
                queue_name=self.name(queue.name),
                visibility_timeout=cdk.Duration.seconds(queue_visibility_timeout(queue)),
                dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=queue.max_receive_count, queue=dlq),
                enforce_ssl=True,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
            )
            if queue.topic:
                self.topics[queue.topic].add_subscription(
                    subs.SqsSubscription(self.queues[queue.name], raw_message_delivery=True)
                )
        # Failed table-stream batches (after bisecting and retries) leave their coordinates here.
        self.stream_dlq = sqs.Queue(
            self,
            "DlqTableStream",
            queue_name=self.name("kefu-table-stream-dlq"),
            retention_period=cdk.Duration.days(14),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        self.dlqs["table-stream"] = self.stream_dlq

        # --- S3: attachments / inbound mail, and the archive (Object Lock, ≥ 3 years) --------------------------
        self.buckets: dict[str, s3.Bucket] = {}
        for bucket_name in resources.BUCKETS:
            if bucket_name == resources.ARCHIVE_BUCKET:
                continue
            self.buckets[bucket_name] = s3.Bucket(
                self,
                f"Bucket{to_cfn_resource_name(bucket_name)}",
                bucket_name=self.bucket_name(bucket_name),
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                encryption=s3.BucketEncryption.S3_MANAGED,
                removal_policy=cdk.RemovalPolicy.RETAIN,
                lifecycle_rules=[
                    s3.LifecycleRule(
                        transitions=[
                            s3.Transition(
                                storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                                transition_after=cdk.Duration.days(30),
                            )
                        ]
                    )
                ],
            )
        archive_name = resources.ARCHIVE_BUCKET
        self.archive = s3.Bucket(
            self,
            "BucketArchive",
            bucket_name=self.bucket_name(archive_name),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(cdk.Duration.days(ARCHIVE_RETENTION_DAYS)),
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=cdk.Duration.days(90),
                        )
                    ],
                    noncurrent_version_expiration=cdk.Duration.days(ARCHIVE_RETENTION_DAYS),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.buckets[archive_name] = self.archive
        inbound_bucket = self.buckets[resources.ATTACHMENTS_BUCKET]

        # --- State machines: definitions from stepfunctions/, role derived from their integrations ------------
        values = substitutions(
            None,
            self.table.table_name,  # type: ignore[arg-type]
            {n: t.topic_arn for n, t in self.topics.items()},
        )
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for sm_name, filename in resources.STATE_MACHINES.items():
            text = (STEPFUNCTIONS_DIR / filename).read_text(encoding="utf-8")
            role = iam.Role(
                self,
                f"StatesRole{to_cfn_resource_name(sm_name)}",
                assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            )
            for action, params in integration_actions(json.loads(text)):
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=[action], resources=[self._integration_resource(action, params, values)]
                    )
                )
            self.state_machines[sm_name] = sfn.StateMachine(
                self,
                f"StateMachine{to_cfn_resource_name(sm_name)}",
                state_machine_name=self.name(sm_name),
                definition_body=sfn.DefinitionBody.from_string(text),
                definition_substitutions=values,
                state_machine_type=sfn.StateMachineType.STANDARD,
                role=role,
            )

        # --- Cognito: one group per staff role, an app client for the admin page / API ------------------------
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=self.name("kefu-staff"),
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            password_policy=cognito.PasswordPolicy(min_length=12),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for role_name in ROLES:
            cognito.CfnUserPoolGroup(
                self,
                f"Group{to_cfn_resource_name(role_name)}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=role_name,
            )
        self.client = self.user_pool.add_client(
            "AdminClient",
            user_pool_client_name=self.name("kefu-admin"),
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True, user_password=False),
            id_token_validity=cdk.Duration.hours(1),
            access_token_validity=cdk.Duration.hours(1),
            prevent_user_existence_errors=True,
        )

        # --- The Chalice app: functions, API, schedules (its own), with our roles and env ---------------------
        self.chalice = Chalice(self, "Api", source_dir=str(self._source_dir()), stage_config=self._stage_config())
        chalice_app = load_chalice_app()
        self.functions = self._functions(chalice_app)
        self._wire_functions(chalice_app)
        self._gateway_responses()

        # --- SES inbound: receipt rule -> S3 (raw mail) + SNS notification to kefu-inbound-email --------------
        inbound_topic = self.topics["kefu-inbound-email"]
        inbound_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowSesPublish",
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[inbound_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        address = options.support_address or resources.SES_IDENTITY
        self.rule_set = ses.ReceiptRuleSet(
            self,
            "InboundRuleSet",
            receipt_rule_set_name=self.name("kefu-inbound"),
            rules=[
                ses.ReceiptRuleOptions(
                    receipt_rule_name=self.name("kefu-inbound-mail"),
                    recipients=[address],
                    scan_enabled=True,
                    tls_policy=ses.TlsPolicy.REQUIRE,
                    actions=[ses_actions.S3(bucket=inbound_bucket, object_key_prefix="inbound/", topic=inbound_topic)],
                )
            ],
        )
        ses.EmailIdentity(self, "MailDomain", identity=ses.Identity.domain(address.split("@", 1)[1]))

        # --- Admin page: S3 + CloudFront; /api/* goes to the API so the page works unchanged ------------------
        self._admin_site()
        self._alarms()

        cdk.CfnOutput(self, "ApiUrl", value=self.api_url)
        cdk.CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        cdk.CfnOutput(self, "UserPoolClientId", value=self.client.user_pool_client_id)
        cdk.CfnOutput(self, "TableName", value=self.table.table_name)
        cdk.CfnOutput(self, "InboundRuleSetName", value=self.name("kefu-inbound"))
        cdk.CfnOutput(self, "InboundBucket", value=inbound_bucket.bucket_name)
        cdk.CfnOutput(self, "ArchiveBucket", value=self.archive.bucket_name)
        cdk.CfnOutput(self, "SecretsSsmPath", value=self.secrets_path)
        cdk.CfnOutput(self, "WechatWebhookUrl", value=f"{self.api_url}webhooks/wechat")
        cdk.CfnOutput(self, "TwilioSmsWebhookUrl", value=f"{self.api_url}webhooks/twilio/sms")
        cdk.CfnOutput(self, "GenericWebhookUrl", value=f"{self.api_url}webhooks/generic/{{source}}")

    # ------------------------------------------------------------------ naming
    def name(self, resource_name: str) -> str:
        """A catalogue name (`kefu-…`) under the configured prefix (`acme-…`): the rule the code looks names up by
        (chalicelib.config.resource_name, with KEFU_RESOURCE_PREFIX set to the prefix below)."""
        from chalicelib.config import resource_name as prefixed

        return prefixed(resource_name, self.prefix)

    def bucket_name(self, resource_name: str) -> str:
        """Bucket names are global: suffixed with the account and region."""
        return f"{self.name(resource_name)}-{self.account}-{self.region}"

    @property
    def secrets_path(self) -> str:
        return f"/{self.prefix}/secrets/"

    def _gateway_responses(self) -> None:
        """Answers API Gateway gives itself, before kefu's code runs, in kefu's `{"error": {"code", "message"}}`
        shape: no route → 404 not_found (local/api_server.py does the same locally); any other 4xx/5xx keeps
        its status with the gateway's message."""
        rest_api_id = self.chalice.get_resource("RestAPI").ref
        json_header = {"gatewayresponse.header.Content-Type": "'application/json'"}
        no_route = '{"error": {"code": "not_found", "message": "no such route"}}'
        passthrough = '{"error": {"code": "%s", "message": $context.error.messageString}}'
        for response_type, status, template in (
            ("MISSING_AUTHENTICATION_TOKEN", "404", no_route),  # what API Gateway says for an unknown route
            ("INVALID_SIGNATURE", "404", no_route),  # the same with an Authorization header (kefu uses no SigV4)
            ("DEFAULT_4XX", None, passthrough % "gateway_rejected"),
            ("DEFAULT_5XX", None, passthrough % "gateway_error"),
        ):
            apigateway.CfnGatewayResponse(
                self, f"GatewayResponse{to_cfn_resource_name(response_type.lower())}",
                rest_api_id=rest_api_id, response_type=response_type, status_code=status,
                response_parameters=json_header, response_templates={"application/json": template},
            )

    @property
    def api_url(self) -> str:
        return cdk.Fn.sub("https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/")

    # ------------------------------------------------------------------ state machine integrations
    def _integration_resource(self, action: str, params: dict[str, Any], values: dict[str, str]) -> str:
        def resolve(value: Any) -> str:
            text = str(value)
            for key, replacement in values.items():
                if text == "${" + key + "}":
                    return replacement
            return text

        if action.startswith("dynamodb:"):
            if resolve(params.get("TableName")) != self.table.table_name:
                raise ValueError(f"{action}: unknown table {params.get('TableName')!r}")
            return self.table.table_arn
        if action == "sns:Publish":
            arn = resolve(params.get("TopicArn"))
            if arn not in [t.topic_arn for t in self.topics.values()]:
                raise ValueError(f"{action}: unknown topic {params.get('TopicArn')!r}")
            return arn
        if action.startswith("sqs:"):
            url = resolve(params.get("QueueUrl"))
            for queue in self.queues.values():
                if url == queue.queue_url:
                    return queue.queue_arn
            raise ValueError(f"{action}: unknown queue {params.get('QueueUrl')!r}")
        raise ValueError(f"state machine integration {action}: add its resource mapping to infra/kefu_stack.py")

    # ------------------------------------------------------------------ chalice
    def _source_dir(self) -> Path:
        if self.options.package == "full":
            return ROOT
        # Offline: the app code alone (no requirements.txt, so Chalice downloads nothing). Not deployable as is.
        stage = Path(tempfile.mkdtemp(prefix="kefu-chalice-src-"))
        atexit.register(shutil.rmtree, stage, True)
        shutil.copy2(ROOT / "app.py", stage / "app.py")
        shutil.copytree(
            ROOT / "chalicelib", stage / "chalicelib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        (stage / ".chalice").mkdir()
        shutil.copy2(ROOT / ".chalice" / "config.json", stage / ".chalice" / "config.json")
        if (ROOT / "vendor").is_dir():
            shutil.copytree(ROOT / "vendor", stage / "vendor")
        return stage

    def _stage_config(self) -> dict[str, Any]:
        env = {
            "POWERTOOLS_SERVICE_NAME": "kefu",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "KEFU_AUTH_MODE": "cognito",
            "KEFU_RESOURCE_PREFIX": self.prefix,
            "KEFU_TABLE_NAME": self.name(self.resources.TABLE_NAME),
            **self.options.extra_env,
        }
        if self.options.public_base_url:
            env["KEFU_PUBLIC_BASE_URL"] = self.options.public_base_url
        return {
            "environment_variables": env,
            "api_gateway_stage": "api",
            # Roles are ours (one per function, least privilege): Chalice must not create or autogenerate them.
            "manage_iam_role": False,
            "iam_role_arn": "arn:aws:iam::123456789012:role/replaced-by-kefu-stack",
            "autogen_policy": False,
            "lambda_memory_size": 256,
            "lambda_timeout": 30,
        }

    def _functions(self, chalice_app: Any) -> dict[str, str]:
        """app.py handler name -> SAM logical id, for every function Chalice packages."""
        functions = {"api": "APIHandler"} if chalice_app.routes else {}
        for function in chalice_app.pure_lambda_functions:
            functions[function.name] = to_cfn_resource_name(function.name)
        for source in chalice_app.event_sources:
            functions[source.name] = to_cfn_resource_name(source.name)
        return functions

    def function_name(self, handler: str) -> str:
        return self.name(f"kefu-{handler}")

    def _wire_functions(self, chalice_app: Any) -> None:
        event_sources = {source.name: type(source).__name__ for source in chalice_app.event_sources}
        consumers = {q.handler: q for q in self.resources.QUEUES}
        for handler, logical_id in self.functions.items():
            access = FUNCTION_ACCESS.get(handler)
            if access is None:
                cdk.Annotations.of(self).add_warning_v2(
                    "kefu:function-access", f"{handler}: no FUNCTION_ACCESS entry; it gets the table only"
                )
                access = DEFAULT_ACCESS
            fn_name = self.function_name(handler)
            cfn_function = self.chalice.get_resource(logical_id)
            role = iam.Role(
                self,
                f"Role{logical_id}",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"kefu {handler}: least privilege",
            )
            log_group = logs.LogGroup(
                self,
                f"Logs{logical_id}",
                log_group_name=f"/aws/lambda/{fn_name}",
                retention=logs.RetentionDays.THREE_MONTHS,
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}"]
                )
            )
            self._grant(role, access)
            cfn_function.add_property_override("Role", role.role_arn)
            cfn_function.add_property_override("FunctionName", fn_name)
            cfn_function.add_property_override("MemorySize", access.memory)
            cfn_function.add_property_override("Timeout", access.timeout)
            cfn_function.add_resource_dependency(log_group.node.default_child)  # type: ignore[arg-type]
            self._environment(logical_id, access)
            if handler == "table_stream":
                # What Lambda's stream poller needs, on this table's streams only (grant_stream_read adds
                # dynamodb:ListStreams on "*").
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=[
                            "dynamodb:DescribeStream",
                            "dynamodb:GetRecords",
                            "dynamodb:GetShardIterator",
                            "dynamodb:ListStreams",
                        ],
                        resources=[f"{self.table.table_arn}/stream/*"],
                    )
                )
                self.stream_dlq.grant_send_messages(role)
                lambda_.CfnEventSourceMapping(
                    self,
                    "StreamMapping",
                    function_name=cfn_function.ref,
                    event_source_arn=self.table.table_stream_arn,
                    starting_position="TRIM_HORIZON",
                    batch_size=100,
                    maximum_batching_window_in_seconds=1,
                    bisect_batch_on_function_error=True,
                    maximum_retry_attempts=3,
                    maximum_record_age_in_seconds=3600,
                    parallelization_factor=1,
                    function_response_types=["ReportBatchItemFailures"],
                    destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                        on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(
                            destination=self.stream_dlq.queue_arn
                        )
                    ),
                ).add_resource_dependency(role.node.default_child)  # type: ignore[arg-type]
            if handler in consumers and event_sources.get(handler) != "SQSEventConfig":
                queue = self.queues[consumers[handler].name]
                queue.grant_consume_messages(role)
                lambda_.CfnEventSourceMapping(
                    self,
                    f"QueueMapping{logical_id}",
                    function_name=cfn_function.ref,
                    event_source_arn=queue.queue_arn,
                    batch_size=10,
                    maximum_batching_window_in_seconds=QUEUE_BATCH_WINDOW,
                    function_response_types=["ReportBatchItemFailures"],
                    scaling_config=lambda_.CfnEventSourceMapping.ScalingConfigProperty(maximum_concurrency=10),
                ).add_resource_dependency(role.node.default_child)  # type: ignore[arg-type]
            if handler == "inbound_email" and event_sources.get(handler) != "SNSEventConfig":
                topic = self.topics["kefu-inbound-email"]
                lambda_.CfnPermission(
                    self,
                    "InboundEmailInvoke",
                    action="lambda:InvokeFunction",
                    function_name=cfn_function.ref,
                    principal="sns.amazonaws.com",
                    source_arn=topic.topic_arn,
                )
                dlq = sqs.Queue(
                    self,
                    "DlqInboundEmail",
                    queue_name=self.name("kefu-inbound-email-dlq"),
                    retention_period=cdk.Duration.days(14),
                    enforce_ssl=True,
                )
                self.dlqs["inbound-email"] = dlq
                sns.Subscription(
                    self,
                    "InboundEmailSubscription",
                    topic=topic,
                    protocol=sns.SubscriptionProtocol.LAMBDA,
                    endpoint=cdk.Fn.get_att(logical_id, "Arn").to_string(),
                    dead_letter_queue=dlq,
                )
            for source in chalice_app.event_sources:
                if source.name == handler and type(source).__name__ == "SNSEventConfig":
                    # Chalice subscribes to the catalogue name (`kefu-…`); point the event at the prefixed topic.
                    topic = self.topics[source.topic]
                    event = to_cfn_resource_name(f"{source.name}-sns-subscription")
                    cfn_function.add_property_override(f"Events.{event}.Properties.Topic", topic.topic_arn)
                    cfn_function.add_resource_dependency(topic.node.default_child)  # type: ignore[arg-type]
            self._check_schedule(handler, chalice_app)

    def _check_schedule(self, handler: str, chalice_app: Any) -> None:
        minutes = self.resources.SCHEDULES.get(handler)
        if minutes is None:
            return
        scheduled = {s.name: s for s in chalice_app.event_sources if type(s).__name__ == "ScheduledEventConfig"}
        if handler not in scheduled:
            raise ValueError(f"resources.SCHEDULES[{handler!r}] has no @app.schedule handler in app.py")

    def _grant(self, role: iam.Role, access: Access) -> None:
        if access.table == "rw":
            self.table.grant_read_write_data(role)
        elif access.table == "r":
            self.table.grant_read_data(role)
        for topic in access.publish:
            self.topics[topic].grant_publish(role)
        for queue in access.send:  # SendMessage, GetQueueUrl (SqsQueue looks the URL up), GetQueueAttributes
            self.queues[queue].grant_send_messages(role)
        if access.timers:  # StepFunctionsTimers: start_execution / stop_execution, nothing else
            for sm_name, machine in self.state_machines.items():
                machine.grant_start_execution(role)
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["states:StopExecution"],
                        resources=[
                            self.format_arn(
                                service="states",
                                resource="execution",
                                resource_name=f"{self.name(sm_name)}:*",
                                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                            )
                        ],
                    )
                )
        for pattern in access.read_objects:
            bucket, _, keys = pattern.partition("/")
            self.buckets[bucket].grant_read(role, keys or "*")
        for pattern in access.write_objects:
            bucket, _, keys = pattern.partition("/")
            self.buckets[bucket].grant_put(role, keys or "*")
        if access.send_email:
            # SES authorises the identities a message uses (the sender's; in the sandbox the recipients' too):
            # any verified identity of this account and region, no other API.
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ses:SendRawEmail"],
                    resources=[self.format_arn(service="ses", resource="identity", resource_name="*")],
                )
            )
        if access.secrets:
            path = self.secrets_path.rstrip("/")
            if self.options.secrets == "ssm":
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
                        resources=[
                            cdk.Fn.sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + path),
                            cdk.Fn.sub(
                                "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + path + "/*"
                            ),
                        ],
                    )
                )

    def _environment(self, logical_id: str, access: Access) -> None:
        env = {
            "KEFU_AWS_ACCOUNT_ID": self.account,
            "KEFU_COGNITO_USER_POOL_ID": self.user_pool.user_pool_id,
            "KEFU_COGNITO_CLIENT_ID": self.client.user_pool_client_id,
        }
        for bucket in sorted(access.buckets):  # the deployed names of the buckets it may touch
            env[BUCKET_VARIABLES[bucket]] = self.buckets[bucket].bucket_name
        if access.send_email and self.options.support_address and "KEFU_SES_SENDER" not in self.options.extra_env:
            env["KEFU_SES_SENDER"] = self.options.support_address  # replies come from the support address
        if access.secrets:
            if self.options.secrets == "ssm":
                env["KEFU_SECRETS_SSM_PATH"] = self.secrets_path
            else:
                for variable in SECRET_VARIABLES:
                    env[variable] = f"{{{{resolve:secretsmanager:{self.prefix}/secrets:SecretString:{variable}}}}}"
        for key, value in env.items():
            self.chalice.add_environment_variable(key, value, logical_id)

    # ------------------------------------------------------------------ admin page
    def _admin_site(self) -> None:
        bucket = s3.Bucket(
            self,
            "AdminBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=False,
        )
        rewrite = cloudfront.Function(
            self,
            "AdminIndex",
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            code=cloudfront.FunctionCode.from_inline(
                "function handler(event) { var r = event.request;"
                " if (r.uri === '/' || r.uri === '/admin' || r.uri === '/admin/') { r.uri = '/admin/index.html'; }"
                " return r; }"
            ),
        )
        api_origin = origins.HttpOrigin(
            cdk.Fn.sub("${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"),
            origin_path="/api",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        )
        api_behavior = cloudfront.BehaviorOptions(
            origin=api_origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "AdminDistribution",
            comment=f"{self.prefix} admin page",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=rewrite, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            additional_behaviors={"/api/*": api_behavior},
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        config = {
            "api_base": self.api_url,
            "region": self.region,
            "user_pool_id": self.user_pool.user_pool_id,
            "client_id": self.client.user_pool_client_id,
        }
        s3deploy.BucketDeployment(
            self,
            "AdminDeployment",
            destination_bucket=bucket,
            destination_key_prefix="admin/",
            sources=[s3deploy.Source.asset(str(ADMIN_DIR)), s3deploy.Source.json_data("config.json", config)],
            distribution=self.distribution,
            distribution_paths=["/admin/*"],
        )
        cdk.CfnOutput(self, "AdminUrl", value=f"https://{self.distribution.distribution_domain_name}/admin/")

    # ------------------------------------------------------------------ alarms
    def _alarms(self) -> None:
        action = cw_actions.SnsAction(self.alarm_topic)

        def alarm(construct_id: str, metric: cloudwatch.IMetric, description: str, threshold: float = 1) -> None:
            created = cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)

        for name, dlq in self.dlqs.items():
            alarm(
                f"Alarm{to_cfn_resource_name(name)}Dlq",
                dlq.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(1), statistic="Maximum"),
                f"messages in the dead-letter queue of {name}",
            )
        for handler in self.functions:
            alarm(
                f"AlarmErrors{to_cfn_resource_name(handler)}",
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name="Errors",
                    dimensions_map={"FunctionName": self.function_name(handler)},
                    statistic="Sum",
                    period=cdk.Duration.minutes(5),
                ),
                f"Lambda {self.function_name(handler)} errors",
            )
        for sm_name, machine in self.state_machines.items():
            cfn = to_cfn_resource_name(sm_name)
            alarm(
                f"AlarmFailed{cfn}",
                machine.metric_failed(period=cdk.Duration.minutes(5), statistic="Sum"),
                f"{sm_name} executions failed",
            )
            alarm(
                f"AlarmTimedOut{cfn}",
                machine.metric_timed_out(period=cdk.Duration.minutes(5), statistic="Sum"),
                f"{sm_name} executions timed out",
            )
        # Every message on the clock topic is a breach report (state machines and the sweep publish
        # `clock.breached` there), so its publish count is the SLA breach counter.
        alarm(
            "AlarmSlaBreaches",
            self.topics["kefu-clock-events"].metric_number_of_messages_published(
                period=cdk.Duration.minutes(5), statistic="Sum"
            ),
            "SLA breaches (clock.breached reports) above the threshold in 5 minutes",
            threshold=self.options.sla_breach_threshold,
        )
