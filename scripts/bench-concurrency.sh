#!/usr/bin/env bash
# In-batch concurrency benchmark: installs the pinned peers into .tools/peers,
# builds the ledger for release, starts the emulators, runs the peers and
# `cargo bench -p shardline-tests --bench concurrency`, and writes the
# "In-batch concurrency" section of BENCHMARKS.md from this one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PEERS=.tools/peers
if [[ ! -d $PEERS/node/node_modules/@aws-lambda-powertools/batch ]]; then
  npm install --silent --prefix "$PEERS/node" @aws-lambda-powertools/batch@2.35.0
fi
if [[ ! -x $PEERS/python/bin/python ]]; then
  python3 -m venv "$PEERS/python"
  "$PEERS/python/bin/pip" install -q aws-lambda-powertools==3.37.0
fi
cp scripts/peers/concurrency.mjs "$PEERS/node/concurrency.mjs"
cargo build -q --release -p ledger
scripts/emulators.sh install
trap 'scripts/emulators.sh stop' EXIT
scripts/emulators.sh start
# shellcheck source=/dev/null
source .tools/emulators.env
ts=$(cd "$PEERS/node" && node concurrency.mjs)
py=$("$PEERS/python/bin/python" scripts/peers/concurrency.py)
tables=$(LEDGER_BIN="$PWD/target/release/ledger" cargo bench -q -p shardline-tests --bench concurrency)
field() { python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['$2']))" "$1"; }
section=$(cat <<MD
## In-batch concurrency

\`scripts/bench-concurrency.sh\`, run on $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m)).
Records of one key run one after another, in order; keys overlap up to the
concurrency. Concurrency 1 is a shard's records one at a time.
$tables

The unordered peers, the same handler (parse the JSON, await 5 ms) on the same
10,000 records, all records at once, no order kept (median of 7 runs after 2 warm-ups):

| peer | median | best |
|---|---|---|
| Powertools TypeScript 2.35.0, \`BatchProcessor\` + \`processPartialResponse\`, \`processInParallel: true\` (Node $(node --version)) | $(field "$ts" median_ms) ms | $(field "$ts" best_ms) ms |
| Powertools Python 3.37.0, \`AsyncBatchProcessor\` + \`async_process_partial_response\` ($("$PEERS/python/bin/python" --version)) | $(field "$py" median_ms) ms | $(field "$py" best_ms) ms |
MD
)
python3 - "$section" <<'PY'
import pathlib, re, sys
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text() if path.exists() else "# Benchmarks\n"
section = sys.argv[1].rstrip() + "\n"
if "## In-batch concurrency" in text:
    text = re.sub(r"## In-batch concurrency\n.*?(?=\n## |\Z)", section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
path.write_text(text)
PY
echo "wrote BENCHMARKS.md"
