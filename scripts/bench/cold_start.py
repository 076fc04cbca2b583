"""Cold start and footprint of each function's release binary, through
`shardline-cli invoke` (a local Lambda Runtime API): process start to its first
`invocation/next` (init_ms), the first invocation's duration, a warm one's,
and peak RSS; the bootstrap zip's size (the binary named `bootstrap`,
deflated, as `cargo lambda build --output-format zip` ships it); and, beside
them, Python's and Node's import-and-init of the Powertools batch utility, each
in a fresh process.

    cold_start.py TARGET_DIR PEERS_DIR

Prints one JSON line per measurement (medians of 7 runs)."""
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile

RUNS = 7
target, peers = sys.argv[1], sys.argv[2]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUNCTIONS = {
    "ledger": ("events/ledger/batch.json", {}),
    "fanout": ("events/fanout/batch.json", {"FANOUT_SINK": "file", "FANOUT_DESTINATIONS": "a,b"}),
    "active-users": ("events/active-users/batch.json", {}),
}


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDLINE_", "AWS_"))}
    env.update({"SHARDLINE_METRICS": "off", "SHARDLINE_LOG": "warn"})
    env.update(extra)
    return env


def invoke(binary, event, extra):
    with tempfile.TemporaryDirectory() as state:
        env = clean_env(dict(extra, SHARDLINE_STATE_DIR=state))
        out = subprocess.run(
            [f"{target}/shardline-cli", "invoke", "--event", event, "--event", event, "--", binary],
            env=env, cwd=root, capture_output=True, text=True, check=True,
        )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(line["outcome"] == "response" for line in lines), lines
    return lines


def zipped(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary, "rb") as f:
            z.writestr(info, f.read())
    return len(buffer.getvalue())


for name, (event, extra) in FUNCTIONS.items():
    binary = f"{target}/{name}"
    runs = [invoke(binary, event, extra) for _ in range(RUNS)]
    print(json.dumps({
        "function": name,
        "init_ms": statistics.median(r[0]["init_ms"] for r in runs),
        "first_invocation_ms": statistics.median(r[0]["ms"] for r in runs),
        "warm_invocation_ms": statistics.median(r[1]["ms"] for r in runs),
        "peak_rss_kib": max(r[1]["peak_rss_kib"] for r in runs),
        "binary_bytes": os.path.getsize(binary),
        "zip_bytes": zipped(binary),
    }))

PYTHON = ("import time; s = time.perf_counter(); "
          "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response; "
          "BatchProcessor(event_type=EventType.KinesisDataStreams); print((time.perf_counter() - s) * 1000)")
NODE = ("const s = performance.now(); const m = await import('@aws-lambda-powertools/batch'); "
        "new m.BatchProcessor(m.EventType.KinesisDataStreams); console.log(performance.now() - s);")
for peer, command, cwd in [
    ("powertools-python", [f"{peers}/python/bin/python", "-c", PYTHON], root),
    ("powertools-ts", ["node", "--input-type=module", "-e", NODE], f"{peers}/node"),
]:
    times = [float(subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout) for _ in range(RUNS)]
    print(json.dumps({"peer": peer, "import_ms": statistics.median(times)}))
