"""Lambda Managed Instances: one function process answering N invocations at
once, against one at a time, through `shardline-cli invoke
--per-execution-environment-max-concurrency N` (a local Lambda Runtime API).

1. Throughput: `io-wait` (5 ms of simulated I/O per record, in-batch
   concurrency 1), state in DynamoDB on moto (2 requests per batch), 8 shards,
   two 1,000-record batches each (16 invocations): invocations per second of
   one process at N = 1 and N = 8.
2. Memory: the process's peak RSS with 8 events of about 6 MB at once (N = 8)
   against one such event (N = 1).

    managed_instances.py TARGET_DIR

Needs the emulators' variables (`source .tools/emulators.env`). Prints one
JSON line per measurement."""
import json
import os
import subprocess
import sys
import tempfile
import time

target = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
cli = f"{target}/shardline-cli"
function = f"{target}/io-wait"


def env(extra):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHARDLINE_")}
    clean.update({"SHARDLINE_METRICS": "off", "SHARDLINE_LOG": "warn"})
    clean.update(extra)
    return clean


def event(folder, shard, first, count, payload):
    lines = os.path.join(folder, f"{shard}-{first}.txt")
    with open(lines, "w") as f:
        f.write((payload + "\n") * count)
    path = os.path.join(folder, f"{shard}-{first}.json")
    with open(path, "wb") as f:
        subprocess.run([cli, "event", "--shard", shard, "--first-sequence", str(first), lines],
                       stdout=f, check=True)
    return path


def invoke(events, at_once, extra, timeout=120):
    command = [cli, "invoke", "--function-timeout", str(timeout),
               "--per-execution-environment-max-concurrency", str(at_once)]
    for e in events:
        command += ["--event", e]
    started = time.monotonic()
    out = subprocess.run(command + ["--", function], env=env(extra), cwd=root,
                         capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    bad = [l for l in lines if l["outcome"] != "response" or l["response"]["batchItemFailures"]]
    assert not bad, (bad, out.stderr[-2000:])
    return wall, lines


def throughput(folder):
    shards = [f"shardId-{s:012d}" for s in range(8)]
    for at_once in (1, 8):
        table = f"bench-lmi-{at_once}-{os.getpid()}"
        # The made-up events name no real stream: no parent-shard guard.
        extra = {"SHARDLINE_STATE_TABLE": table, "SHARDLINE_PARENT_GUARD": "off"}
        subprocess.run([function, "setup"], env=env(extra), check=True, capture_output=True)
        # Each shard's first batch, then its second: 16 invocations, 8 at a time at N = 8.
        events = [event(folder, shard, first, 1000, '{"n":1}')
                  for first in (1, 2001) for shard in shards]
        wall, lines = invoke(events, at_once, extra)
        yield {"measure": "throughput", "at_once": at_once, "invocations": len(lines),
               "records": 1000 * len(lines), "wall_s": wall,
               "per_second": len(lines) / wall}


def memory(folder):
    # 1,000 records of about 4.2 KB: with base64 and the event's JSON, just
    # under Lambda's 6 MB invocation payload (6,291,456 bytes).
    payload = json.dumps({"pad": "x" * 4190})
    big = [event(folder, f"shardId-{s:012d}", 1, 1000, payload) for s in range(8)]
    assert all(5_900_000 < os.path.getsize(e) <= 6_291_456 for e in big), [os.path.getsize(e) for e in big]
    for at_once, events in ((1, big[:1]), (8, big)):
        with tempfile.TemporaryDirectory() as state:
            extra = {"SHARDLINE_STATE_DIR": state, "IO_WAIT_MS": "0"}
            _, lines = invoke(events, at_once, extra)
        yield {"measure": "memory", "at_once": at_once, "events": len(events),
               "event_bytes": os.path.getsize(events[0]),
               "peak_rss_kib": max(l.get("peak_rss_kib", 0) for l in lines)}


with tempfile.TemporaryDirectory() as folder:
    for line in list(throughput(folder)) + list(memory(folder)):
        print(json.dumps(line), flush=True)
