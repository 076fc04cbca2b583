"""Powertools Python, async_process_partial_response (no order kept): the same
simulated handler as Shardline's concurrency benchmark, 10,000 Kinesis
records, each awaiting 5 ms. Prints one JSON line: median and best of 7 runs
after 2 warm-ups."""
import asyncio
import base64
import json
import statistics
import time

from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)

RECORDS = 10000
event = {
    "Records": [
        {
            "eventSource": "aws:kinesis",
            "eventID": f"shardId-000000000000:{i}",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
            "kinesis": {
                "partitionKey": f"key-{i % 100}",
                "sequenceNumber": str(49590338271490256608559692538361571095921575989136000000 + i),
                "data": base64.b64encode(json.dumps({"key": i % 100, "n": i}).encode()).decode(),
                "kinesisSchemaVersion": "1.0",
                "approximateArrivalTimestamp": 1700000000.0,
            },
            "eventVersion": "1.0",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
            "awsRegion": "us-east-1",
        }
        for i in range(RECORDS)
    ]
}


async def handler(record):
    json.loads(record.kinesis.data_as_bytes())
    await asyncio.sleep(0.005)


class Context:
    def get_remaining_time_in_millis(self):
        return 900000


processor = AsyncBatchProcessor(event_type=EventType.KinesisDataStreams)
times = []
for run in range(9):
    started = time.perf_counter()
    response = async_process_partial_response(event=event, record_handler=handler, processor=processor, context=Context())
    took = (time.perf_counter() - started) * 1000
    assert response["batchItemFailures"] == [], response
    if run >= 2:
        times.append(took)
print(json.dumps({"peer": "powertools-python-3.37.0-async", "median_ms": statistics.median(times), "best_ms": min(times)}))
