#!/usr/bin/env python3
"""moto's server, one request at a time.

    moto_atomic.py -H 127.0.0.1 -p PORT

moto's DynamoDB checks a condition and writes without a lock, so two
concurrent conditional transactions on one item can both succeed; DynamoDB's
writes are atomic (transactions are serializable). Holding one lock around
each request gives the tests DynamoDB's semantics while connections are still
accepted on threads.

moto undoes a failed TransactWriteItems from a deep copy of every table the
transaction names, made on every call; that memory is never given back (about
2 MB a transaction on a 200-item table, gigabytes over the fault tests, until
the machine swaps). Here a transaction saves only the items it names and puts
them back if it fails: the same undo, since requests run one at a time.
Everything else is moto_server as it ships.
"""

import argparse
import copy
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

LOCK = threading.Lock()


def undo_by_items():
    """TransactWriteItems saving and restoring the items it names instead of
    deep-copying whole tables."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    moto_transact = models.DynamoDBBackend.transact_write_items

    class TablesAsThey:
        """moto's `copy` module, but a table "copied" for the undo is the
        table itself (its items are saved one by one below)."""

        @staticmethod
        def deepcopy(value, memo=None):
            if isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    def transact_write_items(self, transact_items):
        saved = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            name = op.get("TableName")
            table = self.tables.get(name)
            if table is None:
                continue
            if "Key" in op:
                key = op["Key"]
            else:
                names = [table.hash_key_attr, table.range_key_attr]
                key = {n: op["Item"][n] for n in names if n and n in op.get("Item", {})}
            try:
                current = self.get_item(name, key)
            except Exception:
                continue
            before = copy.deepcopy(current.to_json()["Attributes"]) if current else None
            saved.append((name, key, before))
        models.copy = TablesAsThey
        try:
            return moto_transact(self, transact_items)
        except Exception:
            for name, key, before in reversed(saved):
                if before is None:
                    if self.get_item(name, key) is not None:
                        self.delete_item(name, key)
                else:
                    self.put_item(name, before)
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    undo_by_items()
    app = DomainDispatcherApplication(create_backend_app)

    def atomic(environ, start_response):
        with LOCK:
            # moto answers with whole bodies: materialize inside the lock.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, atomic, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
