#!/usr/bin/env bash
# Fan-out benchmark: starts the emulators (as the tests do), runs
# `cargo bench -p shardline-tests --bench fanout`, stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/emulators.sh install
trap 'scripts/emulators.sh stop' EXIT
scripts/emulators.sh start
# shellcheck source=/dev/null
source .tools/emulators.env
cargo bench -p shardline-tests --bench fanout
