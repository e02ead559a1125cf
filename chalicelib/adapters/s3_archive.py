"""S3 objects of the 3-year archive: one UTF-8 JSON document per key (the bucket's Object Lock keeps it)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .aws import AwsClients

CONTENT_TYPE = "application/json; charset=utf-8"


def _jsonable(value: Any) -> Any:
    """What json.dumps cannot write by itself: DynamoDB numbers (Decimal) and sets."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class S3ArchiveObjects:
    """ArchiveObjects: PutObject of a JSON document (with a checksum: Object Lock buckets require one)."""

    def __init__(self, aws: AwsClients, bucket: str) -> None:
        self.aws = aws
        self.bucket = bucket

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_jsonable).encode("utf-8")
        self.aws.client("s3").put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=CONTENT_TYPE,
            # A PutObject into a bucket with a default Object Lock retention must carry Content-MD5 or a checksum;
            # name it so that it is sent whatever the SDK's checksum defaults are.
            ChecksumAlgorithm="SHA256",
        )

    def get_json(self, key: str) -> dict[str, Any]:
        body = self.aws.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"]
        document: dict[str, Any] = json.loads(body.read().decode("utf-8"))
        return document
