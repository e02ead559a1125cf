"""Creates every resource of resources.py on an AWS endpoint (moto server locally, or in-process moto)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import resources
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb.schema import create_table

STEPFUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "stepfunctions"
LOCAL_ONLY_QUEUES = (
    # Locally, SNS topics that feed Lambda functions directly in production reach the pump through SQS.
    resources.Queue("kefu-inbound-email-local", handler="inbound_email", topic="kefu-inbound-email"),
)


@dataclass
class Stack:
    """What bootstrap created: ARNs and URLs the pump and tests need."""

    stream_arn: str = ""
    topics: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # queue name -> URL
    state_machines: dict[str, str] = field(default_factory=dict)
    consumers: dict[str, str] = field(default_factory=dict)  # queue name -> handler name


def substitutions(aws: AwsClients, table_name: str, topics: dict[str, str]) -> dict[str, str]:
    """The DefinitionSubstitutions of the state machines (the same keys infra/ fills in)."""
    return {"TableName": table_name, "ClockTopicArn": topics["kefu-clock-events"]}


def render_definition(path: Path, values: dict[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    json.loads(text)  # a broken definition fails here, not at execution
    return text


def bootstrap(aws: AwsClients, table_name: str = resources.TABLE_NAME, local_queues: bool = True) -> Stack:
    """Idempotent: creates what is missing and answers the ARNs/URLs of everything."""
    stack = Stack()
    stack.stream_arn = create_table(aws.client("dynamodb"), table_name)
    sns, sqs = aws.client("sns"), aws.client("sqs")
    for topic in resources.TOPICS:
        stack.topics[topic] = sns.create_topic(Name=topic)["TopicArn"]
    queues = resources.QUEUES + (LOCAL_ONLY_QUEUES if local_queues else ())
    for queue in queues:
        dlq_url = sqs.create_queue(QueueName=queue.dlq_name)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName=queue.name,
            Attributes={
                "VisibilityTimeout": str(queue.visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
                ),
            },
        )["QueueUrl"]
        stack.queues[queue.name] = url
        stack.queues[queue.dlq_name] = dlq_url
        stack.consumers[queue.name] = queue.handler
        if queue.topic:
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(
                TopicArn=stack.topics[queue.topic],
                Protocol="sqs",
                Endpoint=arn,
                Attributes={"RawMessageDelivery": "true" if queue.handler != "inbound_email" else "false"},
            )
    role_arn = _role(aws)
    values = substitutions(aws, table_name, stack.topics)
    sfn = aws.client("stepfunctions")
    existing = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    for name, filename in resources.STATE_MACHINES.items():
        definition = render_definition(STEPFUNCTIONS_DIR / filename, values)
        if name in existing:
            sfn.update_state_machine(stateMachineArn=existing[name], definition=definition)
            stack.state_machines[name] = existing[name]
        else:
            stack.state_machines[name] = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn)[
                "stateMachineArn"
            ]
    ses = aws.client("ses")
    ses.verify_email_identity(EmailAddress=resources.SES_IDENTITY)
    ses.verify_domain_identity(Domain=resources.SES_IDENTITY.split("@", 1)[1])
    s3 = aws.client("s3")
    for bucket in resources.BUCKETS:
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            s3.create_bucket(Bucket=bucket)
    return stack


def _role(aws: AwsClients) -> str:
    iam = aws.client("iam")
    trust: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        return str(iam.get_role(RoleName="kefu-states")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName="kefu-states", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
