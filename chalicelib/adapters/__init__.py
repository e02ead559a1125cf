"""Adapters: the AWS-facing implementations of the ports (DynamoDB, Step Functions, SNS, SQS, SES)."""
