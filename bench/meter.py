"""Meters every AWS call made in this process: wall time per call, and DynamoDB capacity per DynamoDB's sizing rules.

moto (5.2.5) answers ReturnConsumedCapacity with constants (1.0 per PutItem/Query/Scan/DeleteItem, 0.5 per GetItem,
nothing for UpdateItem/TransactWriteItems), so capacity is computed here from the real items instead: writes
ceil(size / 1 KB) per item (x2 in a transaction) plus one write per affected GSI (two when a GSI key moves),
reads ceil(size / 4 KB) x 0.5 when eventually consistent (x2 in a transaction), the item sizes read back from moto.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import botocore.client
from botocore.exceptions import ClientError

from chalicelib import resources

KEYS = ("pk", "sk")
WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem"}
READ_OPS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def value_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed attribute value."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        digits = str(Decimal(str(raw)).normalize()).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: member}) for member in raw)
    if kind == "L":
        return 3 + sum(value_size(member) + 1 for member in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in raw.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    """One item write: the larger image, in 1 KB units, plus the GSI writes it causes (all GSIs project ALL)."""
    units = max(1, math.ceil(max(item_size(old), item_size(new)) / 1024))
    for hash_key, range_key in resources.GSIS.values():
        in_old = bool(old) and hash_key in old and range_key in old  # type: ignore[operator]
        in_new = bool(new) and hash_key in new and range_key in new  # type: ignore[operator]
        old_units = max(1, math.ceil(item_size(old) / 1024))
        new_units = max(1, math.ceil(item_size(new) / 1024))
        if in_old and in_new:
            moved = (old[hash_key], old[range_key]) != (new[hash_key], new[range_key])  # type: ignore[index]
            if moved:
                units += old_units + new_units
            elif old != new:
                units += new_units
        elif in_old:
            units += old_units
        elif in_new:
            units += new_units
    return float(units)


def item_kind(item: dict[str, Any] | None, key: dict[str, Any] | None = None) -> str:
    """An item's kind for the breakdown: in a ticket's partition the sort key's prefix (META, MSG, EVT, CLOCK,
    NOTE), elsewhere the partition key's (CUSTOMER, IDENTITY, DEDUPE, COUNTER, SURVEY, RESOLVED, …)."""
    source = item or key or {}
    sk = str(next(iter(source.get("sk", {}).values()), ""))
    pk = str(next(iter(source.get("pk", {}).values()), ""))
    pk_prefix = pk.split("#", 1)[0]
    return sk.split("#", 1)[0] if pk_prefix == "TICKET" else pk_prefix


def read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


@dataclass
class Totals:
    """What the meter saw since the last reset."""

    calls: Counter[str] = field(default_factory=Counter)  # "service.Operation" -> count
    write_units: float = 0.0
    read_units: float = 0.0
    moto_reported_units: float = 0.0  # what moto put in ConsumedCapacity, for comparison
    seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))  # thread id -> time in AWS calls
    item_bytes_written: int = 0
    write_units_by_kind: Counter[str] = field(default_factory=Counter)  # item kind (sort-key prefix) -> units


class AwsMeter:
    """Patches botocore's BaseClient._make_api_call (boto3 and PynamoDB both go through it)."""

    def __init__(self) -> None:
        self.totals = Totals()
        self.capacity = True  # False: time calls only (no item read-backs)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._original: Any = None

    # -- lifecycle
    def install(self) -> None:
        if self._original is not None:
            return
        self._original = botocore.client.BaseClient._make_api_call
        meter = self

        def metered(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            return meter._call(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = metered  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            botocore.client.BaseClient._make_api_call = self._original  # type: ignore[method-assign]
            self._original = None

    def reset(self) -> Totals:
        with self._lock:
            old, self.totals = self.totals, Totals()
        return old

    def thread_seconds(self) -> float:
        return self.totals.seconds.get(threading.get_ident(), 0.0)

    @contextmanager
    def _internal(self) -> Iterator[None]:
        self._local.internal = True
        try:
            yield
        finally:
            self._local.internal = False

    # -- the hook
    def _raw(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        with self._internal():
            return self._original(client, operation, params)

    def _get(self, client: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._raw(client, "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}).get("Item")
        return dict(item) if item else None

    def _call(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        if getattr(self._local, "internal", False):
            return self._original(client, operation, params)
        service = client.meta.service_model.service_name
        start = time.perf_counter()
        units_w = units_r = 0.0
        written = 0
        try:
            if self.capacity and service == "dynamodb" and (operation in WRITE_OPS or operation in READ_OPS
                                          or operation in ("TransactWriteItems", "BatchWriteItem")):
                params = dict(params)
                params.setdefault("ReturnConsumedCapacity", "TOTAL")
                before = self._before(client, operation, params)
                try:
                    response = self._original(client, operation, params)
                except ClientError as error:
                    units_w = self._failed_write_units(operation, before, error)
                    with self._lock:
                        self.totals.write_units_by_kind["failed conditional writes"] += units_w
                    raise
                units_w, units_r, written = self._units(client, operation, params, before, response)
                self._moto_units(response)
                return response
            return self._original(client, operation, params)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.totals.calls[f"{service}.{operation}"] += 1
                self.totals.seconds[threading.get_ident()] += elapsed
                self.totals.write_units += units_w
                self.totals.read_units += units_r
                self.totals.item_bytes_written += written

    def _moto_units(self, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        with self._lock:
            self.totals.moto_reported_units += sum(float(e.get("CapacityUnits", 0)) for e in entries)

    def _before(self, client: Any, operation: str, params: dict[str, Any]) -> list[dict[str, Any] | None]:
        """Old images of the items a write touches (in request order)."""
        if operation == "PutItem":
            return [self._get(client, params["TableName"], {k: params["Item"][k] for k in KEYS})]
        if operation in ("UpdateItem", "DeleteItem"):
            return [self._get(client, params["TableName"], params["Key"])]
        if operation == "TransactWriteItems":
            olds = []
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                key = {k: body["Item"][k] for k in KEYS} if kind == "Put" else body["Key"]
                olds.append(self._get(client, body["TableName"], key))
            return olds
        if operation == "BatchWriteItem":
            olds = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        key = {k: request["PutRequest"]["Item"][k] for k in KEYS}
                    else:
                        key = request["DeleteRequest"]["Key"]
                    olds.append(self._get(client, table, key))
            return olds
        return []

    def _tally(self, item: dict[str, Any], units: float) -> float:
        with self._lock:
            self.totals.write_units_by_kind[item_kind(item)] += units
        return units

    def _failed_write_units(self, operation: str, before: list[dict[str, Any] | None], error: ClientError) -> float:
        code = error.response.get("Error", {}).get("Code", "")
        factor = 2.0 if operation == "TransactWriteItems" else 1.0
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return factor * sum(max(1, math.ceil(item_size(old) / 1024)) for old in before or [None])
        return 0.0

    def _units(
        self, client: Any, operation: str, params: dict[str, Any], before: list[Any], response: dict[str, Any]
    ) -> tuple[float, float, int]:
        if operation == "PutItem":
            units = self._tally(params["Item"], write_units(before[0], params["Item"]))
            return units, 0.0, item_size(params["Item"])
        if operation == "UpdateItem":
            new = self._get(client, params["TableName"], params["Key"])
            return self._tally(new or params["Key"], write_units(before[0], new)), 0.0, item_size(new)
        if operation == "DeleteItem":
            return self._tally(params["Key"], write_units(before[0], None)), 0.0, 0
        if operation == "TransactWriteItems":
            units, written = 0.0, 0
            for entry, old in zip(params["TransactItems"], before, strict=True):
                ((kind, body),) = entry.items()
                if kind == "ConditionCheck":
                    units += self._tally(body["Key"], 2 * max(1, math.ceil(item_size(old) / 1024)))
                    continue
                key = {k: body["Item"][k] for k in KEYS} if kind == "Put" else body["Key"]
                new = None if kind == "Delete" else self._get(client, body["TableName"], key)
                base = max(1, math.ceil(max(item_size(old), item_size(new)) / 1024))
                units += self._tally(key, base + write_units(old, new))  # the item twice, its GSI writes once
                written += item_size(new)
            return units, 0.0, written
        if operation == "BatchWriteItem":
            units, written, i = 0.0, 0, 0
            for requests in params["RequestItems"].values():
                for request in requests:
                    new = request["PutRequest"]["Item"] if "PutRequest" in request else None
                    key = request["PutRequest"]["Item"] if new else request["DeleteRequest"]["Key"]
                    units += self._tally(key, write_units(before[i], new))
                    written += item_size(new)
                    i += 1
            return units, 0.0, written
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            return 0.0, read_units(item_size(response.get("Item")), consistent), 0
        if operation in ("Query", "Scan"):
            total = sum(item_size(item) for item in response.get("Items", []))
            return 0.0, read_units(total, consistent), 0
        if operation == "BatchGetItem":
            units = sum(
                read_units(item_size(item), consistent)
                for items in response.get("Responses", {}).values()
                for item in items
            )
            return 0.0, units, 0
        if operation == "TransactGetItems":
            units = sum(2 * read_units(item_size(r.get("Item")), True) for r in response.get("Responses", []))
            return 0.0, units, 0
        return 0.0, 0.0, 0
