"""Speeds up moto 5.2.5's DynamoDB for the local stack and tests: no whole-table copies or sorts per request."""

# Real DynamoDB is unaffected by any of this: it is for the local stack (`python -m local.moto_speedups` is the moto
# server `make run` starts) and for the test suite (tests/conftest.py). kefu keeps everything in one table, and moto
# 5.2.5 does work proportional to that whole table on its two hottest calls (1, 2), so the local stack slowed to a
# crawl as the table grew. install() patches these and one per-request cost (3), for moto 5.2.5 only (other
# versions are left alone, with a warning):
#
# 1. `DynamoDBBackend.transact_write_items` deep-copies every table a transaction names, once per item, before it
#    starts, to swap the copies back in if the transaction fails. The patch is a copy of moto's own method
#    (Apache-2.0) in which only the rollback differs:
#    - just before the transaction first reads an item, a deep copy of that item (or its absence) is remembered;
#      on failure exactly those items are put back or removed. GSIs and LSIs need nothing more: moto derives them
#      from `table.items` on every query;
#    - DynamoDB Streams records (`StreamShard.add`, called by moto's put/update/delete) of a transaction are held
#      back and appended only when it commits, in order, so a failed transaction leaves none -- and, unlike moto's
#      table swap, never shows them to a concurrent reader nor sends them to a Lambda event source mapping;
#    - unlike the swap, the restore leaves concurrent writes to other items of the table in place, and it also
#      undoes the earlier writes when a later item names two operations (moto raises without rolling back there).
#    Everything else (condition checks, cancellation reasons, MultipleTransactionsException, the request
#    validation in moto's responses.py) is moto's own code.
# 2. `Table.query` starts from `Table.all_items()`, which sorts the whole table with Python-level comparisons,
#    and then filters it (a query by table key keeps one partition; a GSI query checks every item). Both paths sort
#    what they keep by a total order (the index keys, then the table's key), so the first sort only costs time.
#    During a query, all_items() returns the partition of the queried key, or (GSI, LSI) every item unsorted:
#    same results, same order, same pages.
# 3. The server's dispatcher, under one lock for all request threads, lists moto's package folder (`os.listdir`
#    and an `isdir` per entry, ~0.5 ms) on every request to route it (`moto.backends.list_of_moto_modules`). That
#    folder does not change while the server runs: install() lists it once.

from __future__ import annotations

import copy
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

MOTO_VERSION = "5.2.5"  # the moto whose code the patches below copy and rely on
logger = logging.getLogger("kefu.local.moto_speedups")

_install_lock = threading.Lock()
_transaction = threading.local()  # .records: stream records held back by this thread's running transaction
_query = threading.local()  # .source: what all_items() returns to the query this thread is running
_originals: dict[str, Any] = {}  # moto's own functions, kept for tests and for committing stream records


def supported() -> bool:
    """Whether the installed moto is the one this speed-up is written for (without importing moto)."""
    try:
        return metadata.version("moto") == MOTO_VERSION
    except metadata.PackageNotFoundError:
        return False


def install() -> bool:
    """Applies the speed-ups above to moto (idempotent); False, with a warning, if moto is not 5.2.5."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        logger.warning(
            "moto %s is not %s: its speed-ups (local/moto_speedups.py) are not applied", moto.__version__, MOTO_VERSION
        )
        return False
    from moto import backends
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard, Table

    with _install_lock:
        if "transact_write_items" in _originals:
            return True
        _originals["stream_add"] = StreamShard.add
        _originals["transact_write_items"] = DynamoDBBackend.transact_write_items
        _originals["table_query"] = Table.query
        _originals["all_items"] = Table.all_items
        setattr(StreamShard, "add", _stream_add)  # noqa: B010 - mypy refuses assigning to a method
        setattr(DynamoDBBackend, "transact_write_items", _make_transact_write_items())  # noqa: B010
        setattr(Table, "query", _table_query)  # noqa: B010
        setattr(Table, "all_items", _all_items)  # noqa: B010
        _originals["list_of_moto_modules"] = backends.list_of_moto_modules
        moto_modules = tuple(backends.list_of_moto_modules())
        setattr(backends, "list_of_moto_modules", lambda: moto_modules)  # noqa: B010
    return True


def _stream_add(shard: Any, old: Any, new: Any) -> None:
    """StreamShard.add, held back while this thread runs a transaction (the items are copied as they are now)."""
    held = getattr(_transaction, "records", None)
    if held is None:
        _originals["stream_add"](shard, old, new)
    else:
        held.append((shard, copy.deepcopy(old), copy.deepcopy(new)))


def _table_query(
    self: Any,
    hash_key: Any,
    range_comparison: Any,
    range_objs: Any,
    limit: Any,
    exclusive_start_key: Any,
    scan_index_forward: Any,
    projection_expressions: Any,
    index_name: Any = None,
    consistent_read: Any = False,
    filter_expression: Any = None,
    hash_key_conditions: Any = None,
    range_key_conditions: Any = None,
    **filter_kwargs: Any,
) -> Any:
    """moto's Table.query (same signature), whose all_items() is the partition, or every item unsorted."""
    if index_name:
        _query.source = ("all",)
    elif hash_key is not None:
        _query.source = ("partition", hash_key)
    try:
        return _originals["table_query"](
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
    finally:
        _query.source = None


def _all_items(self: Any) -> list[Any]:
    """moto's Table.all_items (every item, sorted by key), except for the query running in this thread."""
    source = getattr(_query, "source", None)
    if source is None:
        return _originals["all_items"](self)  # type: ignore[no-any-return]
    _query.source = None  # moto's query calls all_items() once
    if source[0] == "partition":  # query() keeps only the items of this partition, then sorts them by range key
        bucket = self.items.get(source[1])  # .get: table.items is a defaultdict
        if bucket is None:
            return []
        return list(bucket.values()) if self.range_key_attr else [bucket]
    if self.range_key_attr:  # query() then sorts by index keys and the table's key
        return [item for bucket in self.items.values() for item in bucket.values()]
    return list(self.items.values())


@dataclass
class _Saved:
    table: Any
    hash_value: Any
    range_value: Any
    bucket_existed: bool  # range-keyed tables: whether table.items had this hash key (moto's get_item adds it)
    item: Any  # a deep copy of the item before the transaction, or None if there was none


def _stored(items: Any, hash_value: Any, range_value: Any) -> Any:
    """The item under this key in a moto table's items, or None (without adding to that defaultdict)."""
    bucket = items.get(hash_value)
    if range_value is None:
        return None if isinstance(bucket, dict) else bucket  # a {} there is the defaultdict's, not an item
    return None if bucket is None else bucket.get(range_value)


def _same(current: Any, saved: Any) -> bool:
    """Whether the item in the table is still the one remembered (moto's Item == fails on None)."""
    if current is None or saved is None:
        return current is saved
    return bool(current == saved)


class _Undo:
    """The items a transaction touches, as they were before it, and its held-back stream records."""

    def __init__(self) -> None:
        self.saved: dict[tuple[int, Any, Any], _Saved] = {}
        self.records: list[tuple[Any, Any, Any]] = []

    def remember(self, backend: Any, table_name: str, key: dict[str, Any]) -> None:
        """Called just before the transaction reads (and may then write) the item with this key."""
        try:
            table = backend.get_table(table_name)
            hash_value, range_value = backend.get_keys_value(table, key)
        except Exception:  # moto's get_item, called next, raises the same error before anything is written
            return
        slot = (id(table), hash_value, range_value)
        if slot in self.saved:  # two operations on one item are refused, but keep the state before the first
            return
        item = _stored(table.items, hash_value, range_value)
        bucket_existed = hash_value in table.items
        self.saved[slot] = _Saved(table, hash_value, range_value, bucket_existed, copy.deepcopy(item))

    def restore(self) -> None:
        """Puts every remembered item back as it was; drops the held-back stream records. Idempotent."""
        for saved in reversed(self.saved.values()):
            items = saved.table.items
            if _same(_stored(items, saved.hash_value, saved.range_value), saved.item):
                pass
            elif saved.range_value is None:
                if saved.item is None:
                    del items[saved.hash_value]
                else:
                    items[saved.hash_value] = saved.item
            elif saved.item is None:
                del items[saved.hash_value][saved.range_value]
            else:
                items[saved.hash_value][saved.range_value] = saved.item
            emptied = saved.range_value is not None and items.get(saved.hash_value) == {}
            if emptied and not saved.bucket_existed:
                del items[saved.hash_value]  # the empty bucket moto's get_item left behind
        self.records.clear()

    def commit(self) -> None:
        """Appends the transaction's stream records, in the order moto made them."""
        add = _originals["stream_add"]
        for shard, old, new in self.records:
            add(shard, old, new)
        self.records.clear()


def _make_transact_write_items() -> Callable[[Any, list[dict[str, Any]]], None]:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    # moto 5.2.5 DynamoDBBackend.transact_write_items; the lines marked "kefu" differ.
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        undo = _Undo()  # kefu: instead of deep-copying each table the transaction names

        target_items: set[tuple[str, str]] = set()

        def check_unicity(table_name: str, key: dict[str, Any]) -> None:
            item = (str(table_name), str(dict(sorted(key.items()))))
            if item in target_items:
                raise MultipleTransactionsException()
            target_items.add(item)

        errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []  # [(Code, Message, Item), ..]
        _transaction.records = undo.records  # kefu: hold stream records back until the transaction commits
        try:
            for item in transact_items:
                original_item: dict[str, Any] | None = None
                # Check transact writes are not performing multiple operations on the same item
                if len(list(item.keys())) > 1:
                    raise TransactWriteSingleOpException

                try:
                    op_type, op = next(iter(item.items()))
                    if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                        raise ValueError("Unsupported transaction operation")

                    table_name = op["TableName"]
                    condition_expression = op.get("ConditionExpression")
                    expression_attribute_names = op.get("ExpressionAttributeNames")
                    expression_attribute_values = op.get("ExpressionAttributeValues")
                    return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

                    if op_type == "Put":
                        attrs = op["Item"]
                        table = self.get_table(table_name)
                        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = attrs[table.range_key_attr]
                    else:
                        key = op["Key"]

                    check_unicity(table_name, key)

                    undo.remember(self, table_name, key)  # kefu
                    current = self.get_item(table_name, key)
                    if condition_expression is not None:
                        condition_op = get_filter_expression(
                            condition_expression,
                            expression_attribute_names,
                            expression_attribute_values,
                        )
                        if not condition_op.expr(current):
                            if return_values_on_condition_check_failure == "ALL_OLD" and current:
                                original_item = current.to_json()["Attributes"]
                            raise ConditionalCheckFailed(item=original_item)

                    if op_type == "Put":
                        attrs = op["Item"]
                        self.put_item(
                            table_name,
                            attrs,
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    elif op_type == "Delete":
                        self.delete_item(
                            table_name,
                            key,
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    elif op_type == "Update":
                        update_expression = op["UpdateExpression"]
                        self.update_item(
                            table_name,
                            key,
                            update_expression=update_expression,
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    errors.append((None, None, None))
                except (MultipleTransactionsException, MockValidationException):
                    # Rollback to the original state, and reraise the error
                    undo.restore()  # kefu
                    raise
                except ConditionalCheckFailed as e:
                    errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
                except Exception as e:
                    # For other exceptions, capture their details
                    errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]

            if any(code is not None for code, _, _ in errors):
                # Rollback to the original state, and reraise the errors
                undo.restore()  # kefu
                raise TransactionCanceledException(errors)
        except BaseException:
            undo.restore()  # kefu: also after TransactWriteSingleOpException, where moto keeps the earlier writes
            raise
        finally:
            _transaction.records = None  # kefu
        undo.commit()  # kefu

    transact_write_items.__doc__ = "moto's transact_write_items, rolling back only the items it touched (kefu)."
    return transact_write_items


def main(argv: list[str] | None = None) -> None:
    """`python -m local.moto_speedups [moto.server options]`: moto's server, with install() applied first."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install()
    from moto.server import main as moto_server_main

    moto_server_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
