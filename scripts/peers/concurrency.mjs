// Powertools TypeScript, BatchProcessor with processInParallel: true (no
// order kept): the same simulated handler as Shardline's concurrency
// benchmark, 10,000 Kinesis records, each handler awaiting 5 ms.
// Prints one JSON line: median and best of 7 runs after 2 warm-ups.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';

const RECORDS = 10000;
const records = Array.from({ length: RECORDS }, (_, i) => ({
  eventSource: 'aws:kinesis',
  eventID: `shardId-000000000000:${i}`,
  eventSourceARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/bench',
  kinesis: {
    partitionKey: `key-${i % 100}`,
    sequenceNumber: String(49590338271490256608559692538361571095921575989136000000n + BigInt(i)),
    data: Buffer.from(JSON.stringify({ key: i % 100, n: i })).toString('base64'),
  },
}));
const event = { Records: records };
const context = { getRemainingTimeInMillis: () => 900000 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const handler = async (record) => {
  JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString());
  await sleep(5);
};
const processor = new BatchProcessor(EventType.KinesisDataStreams);
const times = [];
for (let run = 0; run < 9; run++) {
  const started = performance.now();
  const response = await processPartialResponse(event, handler, processor, { context, processInParallel: true });
  const took = performance.now() - started;
  if (response.batchItemFailures.length !== 0) throw new Error('failures');
  if (run >= 2) times.push(took);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ peer: 'powertools-ts-2.35.0-parallel', median_ms: times[3], best_ms: times[0] }));
