#!/usr/bin/env bash
# Every benchmark against the peers, side by side in one run, into BENCHMARKS.md.
#
#   scripts/bench.sh
#
# Installs the pinned peers into .tools/peers (Powertools TypeScript 2.35.0 and
# Python 3.37.0, boto3 for its idempotency), builds the functions for release,
# starts the emulators (as the tests do), and runs, in this order:
#   1. engine speed     cargo bench --bench speed; scripts/peers/speed.{py,mjs}
#   2. requests/batch   cargo bench --bench requests; scripts/peers/idempotency.py
#   3. fan-out          cargo bench --bench fanout
#   4. concurrency      cargo bench --bench concurrency; scripts/peers/concurrency.{py,mjs}
#   5. cold start       scripts/bench/cold_start.py
#   6. LMI              scripts/bench/managed_instances.py (N invocations per process)
# then writes BENCHMARKS.md (scripts/bench/report.py) from the results in
# target/bench-results. About 25 minutes on 2 cores. Numbers never fail it;
# an error or a wrong result (the sums must match) does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/target/bench-results
PEERS=$ROOT/.tools/peers
log() { echo "bench: $*" >&2; }
rm -rf "$OUT" && mkdir -p "$OUT"

if [[ ! -d $PEERS/node/node_modules/@aws-lambda-powertools/batch ]]; then
  log "installing Powertools TypeScript 2.35.0"
  npm install --silent --no-audit --no-fund --prefix "$PEERS/node" @aws-lambda-powertools/batch@2.35.0
fi
if [[ ! -x $PEERS/python/bin/python ]] || ! "$PEERS/python/bin/python" -c 'import boto3' 2>/dev/null; then
  log "installing Powertools Python 3.37.0"
  python3 -m venv "$PEERS/python"
  "$PEERS/python/bin/pip" install -q aws-lambda-powertools==3.37.0 boto3==1.44.5
fi
cp scripts/peers/*.mjs "$PEERS/node/"
log "building the functions for release"
cargo build -q --release -p ledger -p fanout -p active-users -p shardline-cli
cargo build -q --release -p shardline-tests --bin io-wait
scripts/emulators.sh install
trap 'scripts/emulators.sh stop' EXIT
scripts/emulators.sh start
# shellcheck source=/dev/null
source .tools/emulators.env

log "1/6 engine speed"
cargo bench -q -p shardline-tests --bench speed > "$OUT/speed.jsonl"
while read -r name path sum; do
  "$PEERS/python/bin/python" scripts/peers/speed.py "$name" "$path" "$sum" >> "$OUT/speed.jsonl"
  (cd "$PEERS/node" && node speed.mjs "$name" "$path" "$sum") >> "$OUT/speed.jsonl"
done < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if "path" in e: print(e["event"], e["path"], e["sum"])' "$OUT/speed.jsonl")

log "2/6 requests per batch"
cargo bench -q -p shardline-tests --bench requests > "$OUT/requests.jsonl"
python3 scripts/fault_proxy.py --target "$SHARDLINE_TEST_DYNAMODB_ENDPOINT" > "$OUT/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 50); do grep -q listening "$OUT/proxy.log" && break; sleep 0.1; done
proxy=$(grep -o 'http://127.0.0.1:[0-9]*' "$OUT/proxy.log")
for n in 100 1000 10000; do
  AWS_ENDPOINT_URL_DYNAMODB=$proxy AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
    "$PEERS/python/bin/python" scripts/peers/idempotency.py "$proxy" "$n" >> "$OUT/requests.jsonl"
done
kill "$proxy_pid"

log "3/6 fan-out"
cargo bench -q -p shardline-tests --bench fanout > "$OUT/fanout.jsonl"

log "4/6 in-batch concurrency"
ts=$(cd "$PEERS/node" && node concurrency.mjs)
py=$("$PEERS/python/bin/python" scripts/peers/concurrency.py)
tables=$(LEDGER_BIN="$ROOT/target/release/ledger" LEDGER_RECORDS=500 cargo bench -q -p shardline-tests --bench concurrency)
field() { python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['$2']))" "$1"; }
cat > "$OUT/concurrency.md" <<MD
Records of one key run one after another, in order; keys overlap up to the concurrency
(\`EngineConfig::concurrency\`, \`SHARDLINE_CONCURRENCY\`). Concurrency 1 is a shard's records
one at a time. Commands: \`cargo bench -p shardline-tests --bench concurrency\` (the ledger part
with \`LEDGER_RECORDS=500\`), \`scripts/peers/concurrency.{py,mjs}\`.
$tables

The unordered peers, the same handler (parse the JSON, await 5 ms) on the same 10,000
records, all records at once, no order kept (median of 7 runs after 2 warm-ups):

| peer | median | best |
|---|---|---|
| Powertools TypeScript 2.35.0, \`processInParallel: true\` | $(field "$ts" median_ms) ms | $(field "$ts" best_ms) ms |
| Powertools Python 3.37.0, \`AsyncBatchProcessor\` + \`async_process_partial_response\` | $(field "$py" median_ms) ms | $(field "$py" best_ms) ms |
MD

log "5/6 cold start and footprint"
python3 scripts/bench/cold_start.py "$ROOT/target/release" "$PEERS" > "$OUT/cold.jsonl"

log "6/6 Lambda Managed Instances"
python3 scripts/bench/managed_instances.py "$ROOT/target/release" > "$OUT/managed.jsonl"

PEERS="$PEERS" python3 - "$OUT/meta.json" <<'PY'
import datetime, json, os, platform, subprocess, sys
def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
json.dump({
    "date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
    "memory": f"{int(mem) / 1024 / 1024:.0f} GiB", "os": platform.platform(terse=True),
    "rustc": run("rustc", "--version"), "node": "Node " + run("node", "--version"),
    "python": run(os.environ.get("PEERS", ".tools/peers") + "/python/bin/python", "--version"),
}, open(sys.argv[1], "w"))
PY
python3 scripts/bench/report.py "$OUT" > BENCHMARKS.md
log "wrote BENCHMARKS.md"
