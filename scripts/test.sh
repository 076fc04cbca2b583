#!/usr/bin/env bash
# The test command: the SAM template lint (pinned cfn-lint), formatting, lints and every test, against real local emulators
# (kinesis-mock for Kinesis, moto for DynamoDB; installed into .tools/ on first use).
#
#   scripts/test.sh                     everything
#   scripts/test.sh -p shardline-tests  extra arguments go to `cargo test`
#   scripts/test.sh -- --nocapture
# Every test binary runs (--no-fail-fast); any failure makes the script fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Where the time goes: each step's start, in seconds since the script began.
step() { echo "test.sh: ${SECONDS}s: $*" >&2; }

step "install the emulators and cfn-lint (first run only)"
scripts/emulators.sh install

trap 'scripts/emulators.sh stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
step "start the emulators"
scripts/emulators.sh start
# shellcheck source=/dev/null
source .tools/emulators.env

step "lint the template, check formatting and lints"
scripts/lint-template.sh
scripts/lint-template.sh --non-default
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
step "rustdoc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The crates as a user outside this repository gets them: packaged, built on
# the newest dependencies, and a project from `shardline-cli new` (see the script).
step "user-build"
scripts/user-build.sh
step "cargo test"
rm -f target/fault-summaries.txt
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The fault tests' summary lines (a passing test's own output is not shown).
if [ -f target/fault-summaries.txt ]; then
  echo "fault test summaries:"
  cat target/fault-summaries.txt
fi
step "done (exit $status)"
exit "$status"
