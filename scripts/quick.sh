#!/usr/bin/env bash
# The inner loop: the framework's unit and integration tests (engine, state on
# the embedded store, windows, decoding, the reproduced defects) and the
# simulator's (its services, and 300 generated scenarios instead of 1,000), with
# no emulators and no lints. About a minute after an edit to the engine, warm.
# `scripts/test.sh` stays the one command that runs everything.
#
#   scripts/quick.sh                       as above
#   SHARDLINE_SIM_SCENARIOS=50 scripts/quick.sh
#   scripts/quick.sh engine::              extra arguments filter the tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SHARDLINE_SIM_SCENARIOS="${SHARDLINE_SIM_SCENARIOS:-300}"
exec cargo test -q -p shardline-lambda -p shardline-sim --lib --test it -- --skip seeds_a_soak_found "$@"
