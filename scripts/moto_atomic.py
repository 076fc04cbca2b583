#!/usr/bin/env python3
"""moto's server, one request at a time.

    moto_atomic.py -H 127.0.0.1 -p PORT

moto's DynamoDB checks a condition and writes without a lock, so two
concurrent conditional transactions on one item can both succeed; DynamoDB's
writes are atomic (transactions are serializable). Holding one lock around
each request gives the tests DynamoDB's semantics while connections are still
accepted on threads. Everything else is moto_server as it ships.
"""

import argparse
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

LOCK = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)

    def atomic(environ, start_response):
        with LOCK:
            # moto answers with whole bodies: materialize inside the lock.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, atomic, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
