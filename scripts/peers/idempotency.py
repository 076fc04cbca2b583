"""Powertools Python idempotency per record, the peer of Shardline's state:
BatchProcessor + process_partial_response on a Kinesis event of N records,
each record's handler an @idempotent_function keyed by the record's payload,
persisted in DynamoDB (DynamoDBPersistenceLayer) at AWS_ENDPOINT_URL_DYNAMODB
(the counting proxy in front of moto). Runs the event twice (first run, then
the replay Lambda would send after a failure) and prints one JSON line per run
with the DynamoDB requests the proxy counted.

    idempotency.py PROXY_URL N
"""
import base64
import json
import sys
import urllib.request
import uuid

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

proxy, n = sys.argv[1], int(sys.argv[2])
table = f"idempotency-{uuid.uuid4().hex[:8]}"
boto3.client("dynamodb").create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
persistence = DynamoDBPersistenceLayer(table_name=table)
config = IdempotencyConfig(event_key_jmespath="txn")


class Context:
    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self):
        return 900000


config.register_lambda_context(Context())


@idempotent_function(data_keyword_argument="txn", config=config, persistence_store=persistence)
def apply(txn):
    return {"applied": txn["txn"]}


def handler(record):
    apply(txn=record.kinesis.data_as_json())


event = {
    "Records": [
        {
            "eventSource": "aws:kinesis",
            "eventID": f"shardId-000000000000:{i}",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
            "kinesis": {
                "partitionKey": f"key-{i % 100}",
                "sequenceNumber": str(49590338271490256608559692538361571095921575989136000000 + i),
                "data": base64.b64encode(json.dumps({"txn": f"t-{i}", "amount": 1}).encode()).decode(),
            },
        }
        for i in range(n)
    ]
}
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)


def requests():
    with urllib.request.urlopen(f"{proxy}/__stats") as response:
        return json.load(response)["dynamodb_requests"]


for run in ["first", "replay"]:
    before = requests()
    response = process_partial_response(event=event, record_handler=handler, processor=processor, context=Context())
    assert response["batchItemFailures"] == [], response
    print(json.dumps({"impl": "powertools-python-idempotency", "records": n, "run": run, "requests": requests() - before}))
