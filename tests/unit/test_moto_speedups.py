"""local/moto_speedups.py: a failed TransactWriteItems leaves exactly what moto's own (slow) rollback leaves."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard

from local import moto_speedups

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------------------ fixtures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dynamo:
    client: Any
    streams: Any

    def table(self, range_key: bool) -> Table:
        name = "speedups-" + uuid.uuid4().hex[:12]
        keys = [("pk", "HASH"), ("sk", "RANGE")] if range_key else [("pk", "HASH")]
        response = self.client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": n, "KeyType": t} for n, t in keys],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in [*dict(keys), "status"]],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_status",
                    "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        return Table(self, name, response["TableDescription"]["LatestStreamArn"], range_key)


@dataclass
class Table:
    dynamo: Dynamo
    name: str
    stream_arn: str
    range_key: bool

    def key(self, pk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": "s-" + pk}} if self.range_key else {"pk": {"S": pk}}

    def item(self, pk: str, status: str, **attrs: str) -> dict[str, Any]:
        return {**self.key(pk), "status": {"S": status}, **{k: {"S": v} for k, v in attrs.items()}}

    def put(self, pk: str, status: str, **attrs: str) -> None:
        self.dynamo.client.put_item(TableName=self.name, Item=self.item(pk, status, **attrs))

    def get(self, pk: str) -> dict[str, Any] | None:
        return self.dynamo.client.get_item(TableName=self.name, Key=self.key(pk), ConsistentRead=True).get("Item")

    def scan(self) -> list[dict[str, Any]]:
        return sorted(self.dynamo.client.scan(TableName=self.name)["Items"], key=lambda i: i["pk"]["S"])

    def by_status(self, status: str) -> list[str]:
        response = self.dynamo.client.query(
            TableName=self.name,
            IndexName="by_status",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
        )
        return sorted(i["pk"]["S"] for i in response["Items"])

    def records(self) -> list[tuple[str, Any, Any, Any, str]]:
        """Every stream record so far: (event, keys, old image, new image, sequence number)."""
        shard = self.dynamo.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        iterator = self.dynamo.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.dynamo.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return [
            (
                r["eventName"],
                r["dynamodb"]["Keys"],
                r["dynamodb"].get("OldImage"),
                r["dynamodb"].get("NewImage"),
                r["dynamodb"]["SequenceNumber"],
            )
            for r in records
        ]

    def transact(self, *items: dict[str, Any]) -> dict[str, Any] | None:
        """Runs a transaction; None if it succeeded, else the error code, message and cancellation reasons."""
        try:
            self.dynamo.client.transact_write_items(TransactItems=list(items))
        except ClientError as error:
            return {
                "code": error.response["Error"]["Code"],
                "message": error.response["Error"]["Message"],
                "reasons": error.response.get("CancellationReasons"),
            }
        return None

    # Transaction items
    def t_put(self, pk: str, status: str, condition: str | None = None, **attrs: str) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.name, "Item": self.item(pk, status, **attrs)}
        if condition:
            op["ConditionExpression"] = condition
        return {"Put": op}

    def t_update(self, pk: str, status: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.name,
                "Key": self.key(pk),
                "UpdateExpression": "SET #s = :s, note = :n",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": status}, ":n": {"S": "updated"}},
            }
        }

    def t_delete(self, pk: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.name, "Key": self.key(pk)}}

    def t_check_fails(self, pk: str, all_old: bool = False) -> dict[str, Any]:
        op: dict[str, Any] = {
            "TableName": self.name,
            "Key": self.key(pk),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if all_old:
            op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"ConditionCheck": op}


@pytest.fixture(scope="module")
def dynamo(moto_server: str) -> Dynamo:
    assert moto_speedups.install(), "these tests are written for moto " + moto_speedups.MOTO_VERSION
    options = {"endpoint_url": moto_server, "region_name": "us-east-1"}
    return Dynamo(boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options))


@pytest.fixture(params=["speedup", "moto"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, dynamo: Dynamo) -> Iterator[str]:
    """Every behavioural test runs with the speed-up and with moto's own transact_write_items (same process)."""
    if request.param == "moto":
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_speedups._originals["transact_write_items"])
    yield request.param


@pytest.fixture(params=[False, True], ids=["hash", "hash+range"])
def table(request: pytest.FixtureRequest, dynamo: Dynamo, implementation: str) -> Table:
    table = dynamo.table(range_key=request.param)
    table.put("existing", "open", note="before")
    table.put("blocker", "open")
    table.put("other", "closed")
    return table


# ------------------------------------------------------------------------------------------------ failed transactions

FIRST_ITEMS: dict[str, Callable[[Table], dict[str, Any]]] = {
    "put over an existing item": lambda t: t.t_put("existing", "pending", note="changed"),
    "put of a new item": lambda t: t.t_put("new", "pending"),
    "update of an existing item": lambda t: t.t_update("existing", "pending"),
    "update creating an item": lambda t: t.t_update("new", "pending"),
    "delete": lambda t: t.t_delete("existing"),
}


@pytest.mark.parametrize("first", list(FIRST_ITEMS))
def test_a_failed_condition_on_the_second_item_undoes_the_first(table: Table, first: str) -> None:
    before, records = table.scan(), table.records()
    assert table.by_status("open") == ["blocker", "existing"]

    error = table.transact(FIRST_ITEMS[first](table), table.t_check_fails("blocker"))

    assert error is not None and error["code"] == "TransactionCanceledException"
    assert [r["Code"] for r in error["reasons"]] == ["None", "ConditionalCheckFailed"]
    assert table.scan() == before
    assert table.get("existing") == table.item("existing", "open", note="before")
    assert table.get("new") is None
    assert table.by_status("pending") == []  # nothing the transaction wrote is found through the GSI
    assert table.by_status("open") == ["blocker", "existing"]
    assert table.records() == records  # no stream record of the failed transaction
    # The stream goes on where it was: the next write is the next record, with the next sequence number.
    table.put("after", "closed")
    after = table.records()
    assert after[:-1] == records and after[-1][0] == "INSERT" and after[-1][1] == table.key("after")
    assert int(after[-1][4]) == int(records[-1][4]) + 1


def test_writes_after_the_failing_item_are_undone_too(table: Table) -> None:
    """moto goes on with the items after a failed one (to report every reason); those are undone as well."""
    before, records = table.scan(), table.records()
    error = table.transact(
        table.t_put("new", "pending"),
        table.t_check_fails("blocker"),
        table.t_delete("existing"),
        table.t_update("other", "pending"),
        table.t_put("new2", "pending", condition="attribute_not_exists(pk)"),
    )
    assert error is not None and [r["Code"] for r in error["reasons"]] == [
        "None",
        "ConditionalCheckFailed",
        "None",
        "None",
        "None",
    ]
    assert table.scan() == before
    assert table.by_status("pending") == []
    assert table.records() == records


def test_two_operations_on_one_item_change_nothing(table: Table) -> None:
    before, records = table.scan(), table.records()
    error = table.transact(table.t_put("new", "pending"), table.t_update("existing", "x"), table.t_delete("existing"))
    assert error is not None and error["code"] == "ValidationException"
    assert "multiple operations on one item" in error["message"]
    assert table.scan() == before
    assert table.records() == records


def test_a_successful_transaction_writes_items_and_stream_records(table: Table) -> None:
    records = table.records()
    error = table.transact(
        table.t_put("new", "pending"),
        table.t_update("existing", "pending"),
        table.t_update("created", "pending"),
        table.t_delete("other"),
        {
            "ConditionCheck": {
                "TableName": table.name,
                "Key": table.key("blocker"),
                "ConditionExpression": "#s = :o",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":o": {"S": "open"}},
            }
        },
    )
    assert error is None
    assert table.by_status("pending") == ["created", "existing", "new"]
    assert table.get("other") is None
    assert table.get("existing") == table.item("existing", "pending", note="updated")
    new = table.records()[len(records) :]
    # moto's own records: an update that creates an item is an INSERT of its key, then an "INSERT" of the result.
    assert [(event, keys) for event, keys, *_ in new] == [
        ("INSERT", table.key("new")),
        ("MODIFY", table.key("existing")),
        ("INSERT", table.key("created")),
        ("INSERT", table.key("created")),
        ("REMOVE", table.key("other")),
    ]
    assert new[1][2] == table.item("existing", "open", note="before")
    assert new[1][3] == table.item("existing", "pending", note="updated")
    assert new[2][3] == table.key("created") and new[3][3] == table.item("created", "pending", note="updated")
    assert [int(r[4]) for r in new] == list(range(int(records[-1][4]) + 1, int(records[-1][4]) + 6))


# ------------------------------------------------------------------------------------------------ same as moto


def _outcome(table: Table, *items: dict[str, Any]) -> tuple[Any, ...]:
    """What a client can see of a transaction: its error, the items after it, and the new stream records."""
    records = table.records()
    error = table.transact(*items)
    new = [(event, keys, old, new_image) for event, keys, old, new_image, _ in table.records()[len(records) :]]
    return error, table.scan(), new


SCENARIOS: dict[str, Callable[[Table], list[dict[str, Any]]]] = {
    "condition fails": lambda t: [t.t_put("new", "p"), t.t_check_fails("blocker")],
    "condition fails, ALL_OLD": lambda t: [t.t_update("existing", "p"), t.t_check_fails("blocker", all_old=True)],
    "put condition fails, ALL_OLD": lambda t: [
        t.t_delete("other"),
        {
            "Put": {
                **t.t_put("existing", "p", condition="attribute_not_exists(pk)")["Put"],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ],
    "two conditions fail": lambda t: [t.t_check_fails("blocker"), t.t_put("new", "p"), t.t_check_fails("other")],
    "missing table": lambda t: [t.t_put("new", "p"), {"Put": {**t.t_put("x", "p")["Put"], "TableName": "nope"}}],
    "update of a key attribute": lambda t: [
        t.t_put("new", "p"),
        {
            "Update": {
                "TableName": t.name,
                "Key": t.key("existing"),
                "UpdateExpression": "SET pk = :v",
                "ExpressionAttributeValues": {":v": {"S": "moved"}},
            }
        },
    ],
    "same item twice": lambda t: [t.t_put("new", "p"), t.t_put("new", "q")],
    "success": lambda t: [t.t_put("new", "p"), t.t_update("existing", "p"), t.t_delete("other")],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("range_key", [False, True], ids=["hash", "hash+range"])
def test_same_errors_items_and_stream_records_as_moto(
    dynamo: Dynamo, monkeypatch: pytest.MonkeyPatch, scenario: str, range_key: bool
) -> None:
    outcomes = []
    for patched in (True, False):
        with monkeypatch.context() as patch:
            if not patched:
                patch.setattr(DynamoDBBackend, "transact_write_items", moto_speedups._originals["transact_write_items"])
            table = dynamo.table(range_key)
            table.put("existing", "open", note="before")
            table.put("blocker", "open")
            table.put("other", "closed")
            error, items, records = _outcome(table, *SCENARIOS[scenario](table))
            name = table.name
        outcomes.append(
            (
                error and {k: (v.replace(name, "T") if isinstance(v, str) else v) for k, v in error.items()},
                items,
                records,
            )
        )
    assert outcomes[0] == outcomes[1]


def test_a_multi_operation_item_undoes_the_earlier_writes_where_moto_keeps_them(dynamo: Dynamo) -> None:
    """The one difference from moto: its TransactWriteSingleOpException skips the rollback; the speed-up does not."""
    table = dynamo.table(range_key=False)
    table.put("existing", "open")
    before, records = table.scan(), table.records()
    both = {**table.t_delete("existing"), **table.t_check_fails("existing")}
    error = table.transact(table.t_put("new", "p"), both)
    assert error is not None
    assert table.scan() == before and table.records() == records


# ------------------------------------------------------------------------------------------------ queries

QUERIES: dict[str, dict[str, Any]] = {
    "partition": {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p1"}}},
    "partition, backwards, 3 a page": {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p2"}},
        "ScanIndexForward": False,
        "Limit": 3,
    },
    "partition and range condition": {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": {"S": "p1"}, ":s": {"S": "s1"}},
    },
    "partition with a filter": {
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "#s = :o",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":p": {"S": "p1"}, ":o": {"S": "open"}},
    },
    "missing partition": {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nope"}}},
    "GSI, 4 a page": {
        "IndexName": "by_status_due",
        "KeyConditionExpression": "#s = :o",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":o": {"S": "open"}},
        "Limit": 4,
    },
    "GSI, range condition, backwards": {
        "IndexName": "by_status_due",
        "KeyConditionExpression": "#s = :o AND due < :d",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":o": {"S": "open"}, ":d": {"S": "d05"}},
        "ScanIndexForward": False,
    },
    "GSI without range key": {
        "IndexName": "by_owner",
        "KeyConditionExpression": "#o = :o",
        "ExpressionAttributeNames": {"#o": "owner"},
        "ExpressionAttributeValues": {":o": {"S": "a1"}},
        "Limit": 5,
    },
    "unknown index": {
        "IndexName": "nope",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p1"}},
    },
}


@pytest.fixture(scope="module")
def query_table(dynamo: Dynamo) -> str:
    """Partitions of several items, some with and some without the GSI attributes, in no particular order."""
    name = "speedups-q-" + uuid.uuid4().hex[:12]
    client = dynamo.client
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "status", "due", "owner")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_status_due",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "due", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by_owner",
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in (7, 3, 11, 0, 5, 9, 1, 12, 4, 8, 2, 10, 6):
        for pk in ("p2", "p1", "p3"):
            item = {"pk": {"S": pk}, "sk": {"S": f"s{n % 3}{n:02d}"}, "n": {"N": str(n)}}
            if n % 4:
                item["status"] = {"S": "open" if n % 2 else "closed"}
                item["due"] = {"S": f"d{(n * 7) % 10:02d}"}  # ties: the table's key orders them
            if n % 3:
                item["owner"] = {"S": f"a{n % 2}"}
            client.put_item(TableName=name, Item=item)
    return name


def _all_pages(client: Any, table_name: str, query: dict[str, Any]) -> list[Any]:
    pages: list[Any] = []
    request = dict(query, TableName=table_name)
    try:
        while True:
            response = client.query(**request)
            pages.append((response["Items"], response["Count"], response.get("LastEvaluatedKey")))
            if "LastEvaluatedKey" not in response or len(pages) > 50:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    except ClientError as error:
        pages.append(error.response["Error"])
    pages.append(client.scan(TableName=table_name)["Items"])  # every other all_items() is moto's, sorted
    return pages


@pytest.mark.parametrize("query", list(QUERIES))
def test_queries_return_what_moto_returns(
    dynamo: Dynamo, query_table: str, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    from moto.dynamodb.models.table import Table as MotoTable

    patched = _all_pages(dynamo.client, query_table, QUERIES[query])
    with monkeypatch.context() as patch:
        patch.setattr(MotoTable, "query", moto_speedups._originals["table_query"])
        patch.setattr(MotoTable, "all_items", moto_speedups._originals["all_items"])
        original = _all_pages(dynamo.client, query_table, QUERIES[query])
    assert patched == original
    assert len(patched) > 1


# ------------------------------------------------------------------------------------------------ install()


def test_install_is_idempotent(dynamo: Dynamo) -> None:
    patched, add = DynamoDBBackend.transact_write_items, StreamShard.add
    assert patched is not moto_speedups._originals["transact_write_items"]
    assert add is moto_speedups._stream_add
    assert moto_speedups.install() is True
    assert moto_speedups.install() is True
    assert DynamoDBBackend.transact_write_items is patched
    assert StreamShard.add is add
    assert moto_speedups._originals["stream_add"] is not moto_speedups._stream_add  # not wrapped twice
    assert moto_speedups._originals["table_query"] is not moto_speedups._table_query
    assert moto_speedups._originals["all_items"] is not moto_speedups._all_items


def test_the_local_stack_entry_point_is_moto_server_with_the_speedups() -> None:
    """`python -m local.moto_speedups -H … -p …` (what local/run.py starts) serves, patched, and stops on Ctrl-C."""
    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env.pop("MOTO_PORT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local.moto_speedups", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "the moto server did not start"
            time.sleep(0.2)
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}
        server = Dynamo(boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options))
        # The one behaviour that tells the speed-up from moto: see the multi-operation test above.
        test_a_multi_operation_item_undoes_the_earlier_writes_where_moto_keeps_them(server)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert process.returncode == 0
    assert b"not applied" not in (process.stderr.read() if process.stderr else b"")


def test_the_server_routes_by_the_same_module_list(dynamo: Dynamo) -> None:
    from moto import backends

    listed = backends.list_of_moto_modules()
    assert list(listed) == list(moto_speedups._originals["list_of_moto_modules"]())
    assert "dynamodb" in listed and "stepfunctions" in listed
    assert backends.list_of_moto_modules() is listed  # listed once


def test_other_moto_versions_are_left_alone(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    monkeypatch.delitem(moto_speedups._originals, "transact_write_items")
    before = DynamoDBBackend.transact_write_items
    with caplog.at_level(logging.WARNING, logger="kefu.local.moto_speedups"):
        assert moto_speedups.install() is False
    assert DynamoDBBackend.transact_write_items is before
    assert "not applied" in caplog.text
    assert moto_speedups.supported() is True  # the installed moto is the one it is written for
