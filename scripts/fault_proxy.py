#!/usr/bin/env python3
"""A fault-injecting HTTP proxy between an AWS SDK and kinesis-mock (which never
fails entries by itself), for the fan-out tests.

    fault_proxy.py --target http://127.0.0.1:PORT [--entry-failure-rate 0.2]
                   [--request-failure-rate 0.05] [--deny-stream NAME] [--seed 7]
                   [--delay-ms 100] [--jitter-ms 50] [--max-partition-key 256]
                   [--expire-get-records-nth 3]

Listens on a free 127.0.0.1 port and prints `listening on http://127.0.0.1:N`.
For PutRecords (JSON protocol) it:
  - fails a whole request with a 500 InternalFailure at --request-failure-rate
    (evenly spread: the n-th request fails when n * rate crosses a whole
    number), before forwarding (so nothing was written);
  - fails single entries with ProvisionedThroughputExceededException at
    --entry-failure-rate: those entries are NOT forwarded, the others are, and
    the response is stitched back in the original order;
  - answers AccessDeniedException for streams named by --deny-stream;
  - refuses a whole request with a ValidationException when one of its
    partition keys is longer than --max-partition-key characters, as Kinesis
    does (kinesis-mock does not check);
  - holds each DynamoDB request --dynamodb-delay-ms (a network's latency);
  - holds each request --delay-ms, plus a random 0..--jitter-ms, before
    forwarding it (a slow destination; concurrent requests overtake each other).
In front of DynamoDB (moto) it fails --dynamodb-failure-rate of the requests
(drawn at random from --seed, so failures come in bursts as real throttling
does), the first N requests of an operation given as
--dynamodb-fail-first OPERATION:N, and the N-th request of an operation given as
--dynamodb-fail-nth OPERATION:N (repeatable); and it cancels the N-th
TransactWriteItems given as --dynamodb-cancel-nth N:CODE with CODE as the first
item's cancellation reason (None for the others); half with a 400 ThrottlingException and half
with a 500 InternalServerError, before forwarding (so nothing was written).
For GetRecords it expires the shard iterator of the N-th request given as
--expire-get-records-nth N (1-based, repeatable): that request, and every later
one carrying the same iterator, gets a 400 ExpiredIteratorException without
being forwarded, as Kinesis answers for an iterator more than 5 minutes old (an
expired iterator never works again; a reader needs a new one from
GetShardIterator).
Everything else is forwarded untouched. `GET /__stats` returns counters as JSON.
Standard library only.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS = {
    "put_records_requests": 0,
    "put_records_entries": 0,
    "injected_entry_failures": 0,
    "injected_request_failures": 0,
    "denied_requests": 0,
    "refused_requests": 0,
    "dynamodb_requests": 0,
    "injected_dynamodb_failures": 0,
    "get_records_requests": 0,
    "injected_expired_iterators": 0,
}
LOCK = threading.Lock()
FAIL_FIRST = {}  # operation -> failures still to inject
FAIL_NTH = {}  # operation -> the request numbers (1-based) to fail
CANCEL_NTH = {}  # TransactWriteItems number (1-based) -> cancellation code of its first item
TRANSACTS = [0]  # TransactWriteItems seen
SEEN = {}  # operation -> requests seen
EXPIRE_NTH = set()  # GetRecords numbers (1-based) whose iterator expires
EXPIRED = set()  # shard iterators answered ExpiredIteratorException: for good


def bump(name, by=1):
    with LOCK:
        STATS[name] += by
        return STATS[name]


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Replies go out in several writes: without TCP_NODELAY, Nagle holds the
    # last one for the client's delayed ACK (40 ms a request with boto3).
    disable_nagle_algorithm = True
    config = None  # set in main
    rng = None

    def log_message(self, *args):  # quiet
        pass

    def handle(self):
        # A client that goes away mid-answer (a function process killed by the
        # test) is not the proxy's failure.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def reply(self, status, body, content_type="application/x-amz-json-1.1"):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "fault-proxy")
        self.end_headers()
        self.wfile.write(data)

    def forward(self, body):
        target = urllib.parse.urlsplit(self.config.target)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        conn.close()
        return response.status, out_headers, data

    def relay(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def roll(self, rate):
        with LOCK:
            return self.rng.random() < rate

    def fail_this_request(self, n):
        """Whole-request failures are spread evenly, not drawn at random: the
        n-th PutRecords fails when n * rate crosses a whole number, so a run of
        N requests fails exactly floor(N * rate) of them, whatever the thread
        interleaving does to the random draws."""
        rate = self.config.request_failure_rate
        return int(n * rate) > int((n - 1) * rate)

    def fail_first(self, operation):
        """Whether this request is among the first N of its operation that
        --dynamodb-fail-first OPERATION:N fails (a burst)."""
        with LOCK:
            left = FAIL_FIRST.get(operation, 0)
            if left:
                FAIL_FIRST[operation] = left - 1
            return left > 0

    def fail_nth(self, operation):
        """Whether this request is the N-th of its operation that
        --dynamodb-fail-nth OPERATION:N fails (one request in a sequence)."""
        with LOCK:
            SEEN[operation] = SEEN.get(operation, 0) + 1
            return SEEN[operation] in FAIL_NTH.get(operation, ())

    def cancel_nth(self, body):
        """Cancels the N-th TransactWriteItems that --dynamodb-cancel-nth N:CODE
        names, as DynamoDB does: a TransactionCanceledException with one reason
        per item, CODE for the first item and None for the others (nothing is
        forwarded, so nothing was written). Whether it answered."""
        with LOCK:
            TRANSACTS[0] += 1
            code = CANCEL_NTH.get(TRANSACTS[0])
        if code is None:
            return False
        items = json.loads(body).get("TransactItems", [])
        reasons = [{"Code": code, "Message": "injected"}] + [{"Code": "None"} for _ in items[1:]]
        bump("injected_dynamodb_failures")
        self.reply(400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException", "message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(r['Code'] for r in reasons)}]", "CancellationReasons": reasons}, "application/x-amz-json-1.0")
        return True

    def expire_iterator(self, body):
        """Answers a GetRecords whose iterator --expire-get-records-nth expired
        (this request, or an earlier one with the same iterator) as Kinesis
        does, without forwarding it. Whether it answered."""
        iterator = json.loads(body).get("ShardIterator", "")
        number = bump("get_records_requests")
        with LOCK:
            if number in EXPIRE_NTH:
                EXPIRED.add(iterator)
            expired = iterator in EXPIRED
        if not expired:
            return False
        bump("injected_expired_iterators")
        self.reply(400, {"__type": "ExpiredIteratorException", "message": "Iterator expired. The iterator was created at a time more than 300000 milliseconds ago (injected)."})
        return True

    def do_GET(self):
        if self.path == "/__stats":
            with LOCK:
                self.reply(200, dict(STATS), "application/json")
            return
        self.relay(*self.forward(b""))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        if target.startswith("DynamoDB_20120810."):
            bump("dynamodb_requests")
            operation = target.split(".", 1)[1]
            if operation == "TransactWriteItems" and self.cancel_nth(body):
                return
            nth = self.fail_nth(operation)
            if self.roll(self.config.dynamodb_failure_rate) or self.fail_first(operation) or nth:
                failures = bump("injected_dynamodb_failures")
                if failures % 2:
                    self.reply(400, {"__type": "com.amazon.coral.availability#ThrottlingException", "message": "injected throttle"}, "application/x-amz-json-1.0")
                else:
                    self.reply(500, {"__type": "com.amazon.coral.service#InternalServerError", "message": "injected failure"}, "application/x-amz-json-1.0")
                return
            if self.config.dynamodb_delay_ms:
                time.sleep(self.config.dynamodb_delay_ms / 1000.0)
        if target.endswith(".GetRecords") and self.expire_iterator(body):
            return
        if not target.endswith(".PutRecords"):
            self.relay(*self.forward(body))
            return
        request = json.loads(body)
        request_number = bump("put_records_requests")
        bump("put_records_entries", len(request.get("Records", [])))
        stream = request.get("StreamName") or request.get("StreamARN", "").rsplit("/", 1)[-1]
        if stream in self.config.deny_stream:
            bump("denied_requests")
            self.reply(400, {"__type": "AccessDeniedException", "message": f"injected: no access to {stream}"})
            return
        longest = max((len(r.get("PartitionKey", "")) for r in request.get("Records", [])), default=0)
        if self.config.max_partition_key and longest > self.config.max_partition_key:
            bump("refused_requests")
            self.reply(400, {"__type": "ValidationException", "message": f"1 validation error detected: a partitionKey is {longest} characters, more than {self.config.max_partition_key}"})
            return
        delay = self.config.delay_ms / 1000.0
        if self.config.jitter_ms:
            with LOCK:
                delay += self.rng.random() * self.config.jitter_ms / 1000.0
        if delay:
            time.sleep(delay)
        if self.fail_this_request(request_number):
            bump("injected_request_failures")
            self.reply(500, {"__type": "InternalFailure", "message": "injected request failure"})
            return
        records = request.get("Records", [])
        fail = [self.roll(self.config.entry_failure_rate) for _ in records]
        kept = [r for r, f in zip(records, fail) if not f]
        real = []
        real_failed = 0
        if kept:
            forwarded = dict(request, Records=kept)
            status, headers, data = self.forward(json.dumps(forwarded).encode())
            if status != 200:
                self.relay(status, headers, data)
                return
            answer = json.loads(data)
            real = answer.get("Records", [])
            real_failed = answer.get("FailedRecordCount", 0)
        injected = sum(fail)
        bump("injected_entry_failures", injected)
        results = []
        it = iter(real)
        for failed in fail:
            if failed:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected entry failure"})
            else:
                results.append(next(it))
        self.reply(200, {"FailedRecordCount": injected + real_failed, "Records": results, "EncryptionType": "NONE"})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--entry-failure-rate", type=float, default=0.0)
    parser.add_argument("--request-failure-rate", type=float, default=0.0)
    parser.add_argument("--deny-stream", action="append", default=[])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--max-partition-key", type=int, default=0)
    parser.add_argument("--dynamodb-failure-rate", type=float, default=0.0)
    parser.add_argument("--dynamodb-delay-ms", type=float, default=0.0)
    parser.add_argument("--dynamodb-fail-first", action="append", default=[])
    parser.add_argument("--dynamodb-fail-nth", action="append", default=[])
    parser.add_argument("--dynamodb-cancel-nth", action="append", default=[])
    parser.add_argument("--expire-get-records-nth", action="append", type=int, default=[])
    config = parser.parse_args()
    for spec in config.dynamodb_fail_first:
        operation, count = spec.split(":")
        FAIL_FIRST[operation] = int(count)
    for spec in config.dynamodb_fail_nth:
        operation, nth = spec.split(":")
        FAIL_NTH.setdefault(operation, set()).add(int(nth))
    for spec in config.dynamodb_cancel_nth:
        nth, code = spec.split(":")
        CANCEL_NTH[int(nth)] = code
    EXPIRE_NTH.update(config.expire_get_records_nth)
    Proxy.config = config
    Proxy.rng = random.Random(config.seed)
    # socketserver's default backlog is 5: a client opening hundreds of
    # connections at once (a function at concurrency 1000) gets resets.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
