"""S3 storage of inbound attachments (and the raw mail an SES S3 action left), behind a small interface."""
from __future__ import annotations

import re
import urllib.parse

from .aws import AwsClients

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class S3AttachmentStore:
    """Puts attachment bytes under a key prefix and answers `s3://bucket/key`; reads objects back."""

    def __init__(self, aws: AwsClients, bucket: str) -> None:
        self.aws = aws
        self.bucket = bucket

    def put(self, prefix: str, filename: str, content: bytes, content_type: str) -> str:
        safe_name = _UNSAFE.sub("_", filename).strip("._") or "attachment"
        key = f"{prefix.strip('/')}/{safe_name[:120]}"
        self.aws.client("s3").put_object(
            Bucket=self.bucket,
            Key=key,
            Body=content,
            ContentType=content_type or "application/octet-stream",
            ContentDisposition=f"attachment; filename*=UTF-8''{urllib.parse.quote(filename)}",
        )
        return f"s3://{self.bucket}/{key}"

    def read(self, bucket: str, key: str) -> bytes:
        body = self.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
