// Powertools TypeScript on the engine-speed workload (tests/src/speed.rs): a
// BatchProcessor + processPartialResponse whose handler parses each record's
// JSON and adds up `amount`, sequentially and with processInParallel, at three
// boundaries:
//   records  the event already parsed (an object): processPartialResponse
//   parse    JSON.parse of the event's bytes (UTF-8 decoding included)
//   raw      JSON.parse + processPartialResponse, from the bytes
//
//   node speed.mjs NAME EVENT.json EXPECTED_SUM
//
// Prints one JSON line per boundary and mode: median and best of 15 runs
// after 3 warm-ups. Fails if a sum is wrong. Also prints the import-and-init
// time of the batch utility (`import_ms`), measured once in this fresh process.
import { readFileSync } from 'node:fs';

const started = performance.now();
const { BatchProcessor, EventType, processPartialResponse } = await import('@aws-lambda-powertools/batch');
const processor = new BatchProcessor(EventType.KinesisDataStreams);
const importMs = performance.now() - started;

const WARM_UPS = 3;
const RUNS = 15;
const [name, path, expectedText] = process.argv.slice(2);
const expected = Number(expectedText);
const raw = readFileSync(path);
const context = { getRemainingTimeInMillis: () => 900000 };
let total = 0;
const handler = async (record) => {
  total += JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString()).amount;
};

async function processEvent(event, parallel) {
  total = 0;
  const response = await processPartialResponse(event, handler, processor, { context, processInParallel: parallel });
  if (response.batchItemFailures.length !== 0) throw new Error('failures');
  return total;
}

async function measure(run, want) {
  const times = [];
  for (let i = 0; i < WARM_UPS + RUNS; i++) {
    const begun = performance.now();
    const got = await run();
    const took = performance.now() - begun;
    if (got !== want) throw new Error(`sum ${got}, expected ${want}`);
    if (i >= WARM_UPS) times.push(took);
  }
  times.sort((a, b) => a - b);
  return [times[Math.floor(RUNS / 2)], times[0]];
}

const parsed = JSON.parse(raw.toString());
const records = parsed.Records.length;
const cases = [
  ['powertools-ts', 'parse', async () => JSON.parse(raw.toString()).Records.length, records],
];
for (const [impl, parallel] of [['powertools-ts', false], ['powertools-ts-parallel', true]]) {
  cases.push([impl, 'records', () => processEvent(parsed, parallel), expected]);
  cases.push([impl, 'raw', () => processEvent(JSON.parse(raw.toString()), parallel), expected]);
}
for (const [impl, boundary, run, want] of cases) {
  const [median, best] = await measure(run, want);
  console.log(JSON.stringify({ impl, boundary, event: name, median_ms: median, best_ms: best, sum: expected }));
}
console.log(JSON.stringify({ impl: 'powertools-ts', import_ms: importMs }));
