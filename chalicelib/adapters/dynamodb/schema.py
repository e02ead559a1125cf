"""The table's CreateTable definition (keys, GSIs, stream, TTL), shared by bootstrap, tests and infra."""
from __future__ import annotations

from typing import Any

from ... import resources

TTL_ATTRIBUTE = "expires_at"


def table_definition(table_name: str = resources.TABLE_NAME) -> dict[str, Any]:
    """Keyword arguments for DynamoDB CreateTable: on-demand, streams with new and old images."""
    attributes = {"pk", "sk"}
    indexes = []
    for index_name, (hash_key, range_key) in resources.GSIS.items():
        attributes |= {hash_key, range_key}
        indexes.append(
            {
                "IndexName": index_name,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    return {
        "TableName": table_name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "GlobalSecondaryIndexes": indexes,
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def create_table(client: Any, table_name: str = resources.TABLE_NAME) -> str:
    """Creates the table (if missing) with TTL on; returns its stream ARN."""
    try:
        described = client.describe_table(TableName=table_name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        described = client.create_table(**table_definition(table_name))["TableDescription"]
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
        described = client.describe_table(TableName=table_name)["Table"]
    return str(described["LatestStreamArn"])
