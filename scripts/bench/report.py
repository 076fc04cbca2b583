"""Writes BENCHMARKS.md from one run of scripts/bench.sh: the JSON lines and
Markdown the benchmarks left in RESULTS_DIR.

    report.py RESULTS_DIR > BENCHMARKS.md

Fails when a result is missing or the sums of the engine-speed implementations
disagree (each benchmark already fails on a wrong sum)."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def lines(name):
    return [json.loads(line) for line in (out / name).read_text().splitlines() if line.startswith("{")]


meta = json.loads((out / "meta.json").read_text())
ms = lambda v: f"{v:,.1f} ms" if v < 100 else f"{v:,.0f} ms"  # noqa: E731
ratio = lambda a, b: f"{a / b:.1f}×"  # noqa: E731

print(f"""# Benchmarks

All tables below come from one run of `scripts/bench.sh` on {meta['date']}: {meta['cpu']},
{meta['cores']} cores, {meta['memory']}, {meta['os']}; {meta['rustc']}, {meta['node']},
{meta['python']}. The machine is shared and noisy: compare within a table, not across runs.
Peers: Powertools for AWS Lambda Python 3.37.0 and TypeScript 2.35.0 (`@aws-lambda-powertools/batch`),
installed by the script into `.tools/peers`. Shardline runs as built here (x86_64);
Lambda's default in `template.yaml` is arm64.
""")

# 1. Engine speed
speed = lines("speed.jsonl")
events = {e["event"]: e for e in speed if "records" in e and "impl" not in e}
rows = {(r["impl"], r["boundary"], r["event"]): r for r in speed if "impl" in r and "boundary" in r}
sums = {r["sum"] for r in speed if "impl" in r and "sum" in r and r["event"] == "10k"}
assert len(sums) == 1, f"the implementations disagree on the sum: {sums}"
IMPLS = [
    ("bare-serde", "bare loop: serde_json (borrowed) + base64 crate"),
    ("bare-sonic", "bare loop: sonic-rs (SIMD) + base64 crate"),
    ("shardline-1t", "Shardline, decode on 1 thread"),
    ("shardline-2t", "Shardline, decode on 2 threads (opt-in: `DecodeOptions::threads(2)`)"),
    ("powertools-python", "Powertools Python `BatchProcessor` + `process_partial_response`"),
    ("powertools-ts", "Powertools TS `BatchProcessor` + `processPartialResponse`"),
    ("powertools-ts-parallel", "Powertools TS, `processInParallel: true`"),
]
print("## 1. Engine speed\n")
print("""The ledger workload (`tests/src/speed.rs`): transactions of about 1 KiB of JSON; the
handler parses each record's JSON and adds up `amount` (every implementation's sum is
checked). Medians of 15 runs after 3 warm-ups (best in brackets). Boundaries: **records**
(the event already parsed: the peers' handlers still base64-decode each record, Shardline's
and the bare loops' payloads are decoded); **parse** (the event's bytes to records: for
Shardline `decode_event`, which also decodes base64 and checks for KPL aggregates; for the
peers the language's JSON parser); **raw** (bytes to the sum: parse + records, and for
Shardline its checkpoint commit on the embedded store). Commands: `cargo bench -p
shardline-tests --bench speed`, `scripts/peers/speed.py`, `scripts/peers/speed.mjs`.
""")
for event in ["10k", "6mb"]:
    e = events[event]
    print(f"\n**{e['records']:,} records, {e['bytes'] / 1e6:.1f} MB of event JSON** "
          f"({'the largest event under the 6 MB payload limit' if event == '6mb' else 'over the 6 MB limit, the reference size'}):\n")
    print("| implementation | records | parse | raw |")
    print("|---|---|---|---|")
    for impl, label in IMPLS:
        cells = []
        for boundary in ["records", "parse", "raw"]:
            r = rows.get((impl, boundary, event))
            cells.append(f"{ms(r['median_ms'])} ({ms(r['best_ms'])})" if r else "—")
        print(f"| {label} | {' | '.join(cells)} |")
    raw = lambda impl: rows[(impl, "raw", event)]["median_ms"]  # noqa: E731
    best = min(raw("shardline-1t"), raw("shardline-2t"))
    print(f"\nFrom raw bytes: Shardline (1 thread) takes {ratio(raw('shardline-1t'), raw('bare-serde'))} "
          f"the time of the bare serde_json loop (2 threads: {ratio(raw('shardline-2t'), raw('bare-serde'))}); "
          f"Powertools Python takes {ratio(raw('powertools-python'), best)} Shardline's time, "
          f"Powertools TS {ratio(raw('powertools-ts'), best)} (parallel: {ratio(raw('powertools-ts-parallel'), best)}).")

# 2. Requests per batch
requests = lines("requests.jsonl")
print("\n## 2. AWS requests per batch\n")
print("""DynamoDB requests counted at the fault proxy (`scripts/fault_proxy.py`, no faults) in
front of moto, per batch of records over 100 partition keys: first run, then the same batch
again (Lambda's retry after a failure). Shardline: `cargo bench -p shardline-tests --bench
requests`; Powertools: `scripts/peers/idempotency.py` (`@idempotent_function` per record,
`DynamoDBPersistenceLayer`). The fan-out's Kinesis requests are in table 3.
""")
MODES = [
    ("checkpoint", "Shardline, checkpoint mode"),
    ("per-key", "Shardline, per-key progress"),
    ("dedup", "Shardline, checkpoint + dedup claims"),
    ("fan-out", "Shardline, fan-out (3 destinations)"),
    ("one-quarantined", "Shardline, one record quarantined"),
    ("idempotency", "Powertools Python idempotency per record"),
]
cell = {}
for r in requests:
    mode = r.get("mode", "idempotency")
    cell[(mode, r["records"], r["run"])] = r["requests"]
sizes = [100, 1000, 10000]
print("| | " + " | ".join(f"{n:,} first | {n:,} replay" for n in sizes) + " |")
print("|---|" + "---|" * (2 * len(sizes)))
for mode, label in MODES:
    values = [f"{cell[(mode, n, run)]:,}" for n in sizes for run in ["first", "replay"]]
    print(f"| {label} | {' | '.join(values)} |")
n = 10000
print(f"\nAt {n:,} records Powertools makes {cell[('idempotency', n, 'first')]:,} requests and "
      f"Shardline {cell[('checkpoint', n, 'first')]} in checkpoint mode, {cell[('dedup', n, 'first')]} with dedup claims.")

# 3. Fan-out
fanout = lines("fanout.jsonl")
print("\n## 3. Fan-out\n")
f0 = fanout[0]
print(f"""{f0['records']:,} records to {f0['destinations']} streams of 4 shards on kinesis-mock, in batches of
{f0['batch']:,}, through `FanOut` and `KinesisSink` (`cargo bench -p shardline-tests --bench fanout`).
The minimum is what the 500-record and 5 MiB PutRecords limits allow: {f0['minimum']} requests.
""")
print("The minimum is for records put one by one; `FANOUT_AGGREGATE=on` packs the records of one")
print("destination shard into KPL aggregates, and *Kinesis records* are what one destination holds after.\n")
print("| order | keys | aggregate | PutRecords | × minimum | Kinesis records | per user record | wall | records/s delivered |")
print("|---|---|---|---|---|---|---|---|---|")
for r in fanout:
    rate = r["records"] * r["destinations"] / (r["wall_ms"] / 1e3)
    put = r.get("kinesis_records", r["records"])
    agg = "on" if r.get("aggregate") else "off"
    print(f"| {r['order']} | {r['keys']} | {agg} | {r['put_records']} | {r['put_records'] / r['minimum']:.2f} | "
          f"{put:,} | {put / r['records']:.4f} | {ms(r['wall_ms'])} | {rate:,.0f} |")

# 4. Concurrency
print("\n## 4. In-batch concurrency\n")
print((out / "concurrency.md").read_text().strip())

# 5. Cold start
cold = lines("cold.jsonl")
print("\n## 5. Cold start and footprint\n")
print("""Each function's release binary (`cargo build --release`, the profile in `Cargo.toml`) on
its sample event through `shardline-cli invoke` (a local Lambda Runtime API), embedded state,
medians of 7 cold starts (`scripts/bench/cold_start.py`): process start to its first
`invocation/next`; the first invocation (which builds the handler and opens the state);
a warm one; peak RSS; the binary and its bootstrap zip.
""")
print("| function | to first `next` | first invocation | warm invocation | peak RSS | binary | zip |")
print("|---|---|---|---|---|---|---|")
for r in cold:
    if "function" in r:
        print(f"| {r['function']} | {r['init_ms']:.1f} ms | {r['first_invocation_ms']:.1f} ms | "
              f"{r['warm_invocation_ms']:.2f} ms | {r['peak_rss_kib'] / 1024:.1f} MiB | "
              f"{r['binary_bytes'] / 1e6:.1f} MB | {r['zip_bytes'] / 1e6:.1f} MB |")
print("\nThe peers' import and init of the batch utility alone (a fresh process each, median of 7):\n")
for r in cold:
    if "peer" in r:
        print(f"- {r['peer']}: {r['import_ms']:.0f} ms")

# 6. Lambda Managed Instances
managed = lines("managed.jsonl")
print("\n## 6. Lambda Managed Instances\n")
print("""One function process answering N invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`, the
runtime's concurrent mode) against one at a time, through `shardline-cli invoke
--per-execution-environment-max-concurrency N` (`scripts/bench/managed_instances.py`). Throughput:
`io-wait` (5 ms of simulated I/O per record, in-batch concurrency 1), state in DynamoDB on moto
(2 requests per batch), 8 shards, two 1,000-record batches each (16 invocations). Memory: peak
RSS of the process with 8 events of about 6 MB at once, against one.
""")
runs = {r["at_once"]: r for r in managed if r["measure"] == "throughput"}
print("| invocations at once | invocations | wall | invocations per second | ratio |")
print("|---|---|---|---|---|")
for n, r in sorted(runs.items()):
    print(f"| {n} | {r['invocations']} | {r['wall_s']:.1f} s | {r['per_second']:.2f} | "
          f"{r['per_second'] / runs[1]['per_second']:.2f}x |")
memory = {r["at_once"]: r for r in managed if r["measure"] == "memory"}
print("\n| events at once | event size | peak RSS | ratio |")
print("|---|---|---|---|")
for n, r in sorted(memory.items()):
    print(f"| {r['events']} | {r['event_bytes'] / 1e6:.2f} MB | {r['peak_rss_kib'] / 1024:.1f} MiB | "
          f"{r['peak_rss_kib'] / memory[1]['peak_rss_kib']:.2f}x |")
