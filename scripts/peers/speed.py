"""Powertools Python on the engine-speed workload (tests/src/speed.rs): a
BatchProcessor + process_partial_response whose handler parses each record's
JSON and adds up `amount`, at three boundaries:

  records  the event already parsed (a dict): process_partial_response
  parse    json.loads of the event's bytes
  raw      json.loads + process_partial_response, from the bytes

    speed.py NAME EVENT.json EXPECTED_SUM

Prints one JSON line per boundary: median and best of 15 runs after 3 warm-ups.
Fails if a sum is wrong. Also prints the import-and-init time of the batch
utility (`import_ms`), measured once in this fresh process."""
import json
import statistics
import sys
import time

started = time.perf_counter()
from aws_lambda_powertools.utilities.batch import (  # noqa: E402
    BatchProcessor,
    EventType,
    process_partial_response,
)

processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
import_ms = (time.perf_counter() - started) * 1000

WARM_UPS, RUNS = 3, 15
name, path, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "rb") as f:
    raw = f.read()
total = 0


def handler(record):
    global total
    total += record.kinesis.data_as_json()["amount"]


class Context:
    def get_remaining_time_in_millis(self):
        return 900000


def process(event):
    global total
    total = 0
    response = process_partial_response(event=event, record_handler=handler, processor=processor, context=Context())
    assert response["batchItemFailures"] == [], response
    return total


def measure(run, want):
    times = []
    for i in range(WARM_UPS + RUNS):
        started = time.perf_counter()
        got = run()
        took = (time.perf_counter() - started) * 1000
        assert got == want, f"sum {got}, expected {want}"
        if i >= WARM_UPS:
            times.append(took)
    return statistics.median(times), min(times)


parsed = json.loads(raw)
records = len(parsed["Records"])
impl = "powertools-python"
for boundary, run, want in [
    ("records", lambda: process(parsed), expected),
    ("parse", lambda: len(json.loads(raw)["Records"]), records),
    ("raw", lambda: process(json.loads(raw)), expected),
]:
    median, best = measure(run, want)
    print(json.dumps({"impl": impl, "boundary": boundary, "event": name, "median_ms": median, "best_ms": best, "sum": expected}))
print(json.dumps({"impl": impl, "import_ms": import_ms}))
