#!/usr/bin/env bash
# The test command: the SAM template lint (pinned cfn-lint), formatting, lints,
# rustdoc, the user's build and every test, against real local emulators
# (kinesis-mock for Kinesis, moto for DynamoDB; installed into .tools/ on first use).
#
#   scripts/test.sh                     everything
#   scripts/test.sh -p shardline-tests  extra arguments go to the test runner:
#   scripts/test.sh --no-capture        cargo nextest (.config/nextest.toml)
#                                       where installed, else cargo test
# Every test runs (no fail-fast); any failure makes the script fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Where the time goes: each step's start, in seconds since the script began.
step() { echo "test.sh: ${SECONDS}s: $*" >&2; }

# The emulators and cfn-lint install (npm, pip) while the workspace compiles.
install_log="$(mktemp "${TMPDIR:-/tmp}/shardline-install.XXXXXX")"
step "install the emulators and cfn-lint in the background (first run only)"
scripts/emulators.sh install >"$install_log" 2>&1 &
install_pid=$!

sim_pid=""
trap 'kill "$install_pid" $sim_pid 2>/dev/null || true; scripts/emulators.sh stop; rm -f "$install_log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# No incremental compilation (unless asked for): its caches cost a fresh
# build of the workspace's own crates about 22% more CPU (126 to 132 CPU-s
# against 161 to 170, measured), and this command's builds are mostly fresh.
# The inner loop (scripts/quick.sh) keeps it; cargo does not rebuild for the
# switch.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "check formatting"
cargo fmt --all --check

# Clippy's lints in the compile the tests use, not a second one: cargo runs
# clippy-driver in place of rustc for the workspace's own crates (what `cargo
# clippy` does), here in a real build of every target; CLIPPY_ARGS is how
# cargo-clippy hands clippy-driver its `-- -D warnings`. The log is read back
# for any warning left, so the lints still fail the run if that hand-over ever
# changes.
clippy_driver="$(command -v clippy-driver)" || {
  echo "test.sh: clippy-driver not found (rustup component add clippy)" >&2
  exit 1
}
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-Dwarnings"
step "build every target with clippy's lints (-D warnings)"
build_log="$(mktemp "${TMPDIR:-/tmp}/shardline-build.XXXXXX")"
cargo test --workspace --all-targets --no-run 2>&1 | tee "$build_log" >&2
# The binaries too (the fault tests run them, user-build writes its project
# with shardline-cli): with the same features, only linking is left.
cargo build --workspace --bins --tests 2>&1 | tee -a "$build_log" >&2
if grep -E '^warning: .*generated [0-9]+ warnings?' "$build_log" >&2; then
  echo "test.sh: the build left warnings" >&2
  exit 1
fi
rm -f "$build_log"

step "wait for the install, start the emulators"
wait "$install_pid" || {
  cat "$install_log" >&2
  exit 1
}
scripts/emulators.sh start
# shellcheck source=/dev/null
source .tools/emulators.env

# The template lint (pinned cfn-lint), at default and non-default values.
lint() {
  scripts/lint-template.sh
  scripts/lint-template.sh --non-default
}
# The crates as a user outside this repository gets them: a project from
# `shardline-cli new` built, tested and invoked on the newest dependencies, and
# the packages checked and documented (rustdoc's warnings as errors) on them
# (see the script), in its own target folder (target/user-build).
user_build() {
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS SHARDLINE_CLI="$PWD/target/debug/shardline-cli" \
    scripts/user-build.sh
}
# The doctests (cargo test runs them itself, nextest does not), on the
# build's own libraries: rustdoc's lint runs in user-build, where the tree is
# checked once for it (rustdoc does not read a build's metadata).
docs() {
  cargo test --workspace --doc --quiet
}
# Tests that hold the real clock to a deadline of a second or so (the time
# cut-off, a slow destination, a crash at 500 ms): on 2 loaded cores the
# scheduler alone can take the few hundred milliseconds they leave, so they
# run first, alone.
clock_tests='test(/cut_off|deadline|hangs|in_time|crash_before_the_commit/)'

# The whole workspace, unless the arguments name packages (cargo lets
# --workspace win over -p).
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in -p | -p* | --package | --package=*) scope=() ;; esac
done

rm -f target/fault-summaries.txt
status=0
if cargo nextest --version >/dev/null 2>&1; then
  # The three compiling or linting jobs at once (each its own log, shown after),
  # then the tests, which mostly wait (on the emulators, the processes they
  # start, Lambda's clock) and slow down under a compile beside them: the
  # fault tests took 3 to 5 times as long, and the clock tests failed.
  step "the template lint, the doctests, and user-build, at once"
  jobs_log="$(mktemp -d "${TMPDIR:-/tmp}/shardline-jobs.XXXXXX")"
  declare -A job_pids=()
  for job in lint docs user_build; do
    "$job" >"$jobs_log/$job" 2>&1 &
    job_pids[$job]=$!
  done
  for job in lint docs user_build; do
    job_status=0
    wait "${job_pids[$job]}" || job_status=$?
    step "$job: exit $job_status"
    cat "$jobs_log/$job"
    [ "$job_status" -eq 0 ] || status=$job_status
  done
  rm -rf "$jobs_log"
  step "the clock tests, alone (cargo nextest)"
  cargo nextest run "${scope[@]}" --no-tests=warn --test-threads 2 -E "$clock_tests" "$@" || status=$?
  if [ "${#scope[@]}" -gt 0 ]; then
    # The simulator's tests only compute (no emulator, no real clock): at the
    # lowest CPU priority beside the others, they take the CPU those leave
    # idle while they wait on the emulators' round trips and Lambda's clock
    # (kinesis-mock is one Node thread). Measured warm: every other test in
    # 202 s, the simulator's done within them, against 283 s in one pool.
    # The same build (--workspace and a filter, not -p, which resolves
    # features anew); its own junit file (the `sim` profile).
    step "every other test, the simulator's at the lowest priority beside them (cargo nextest)"
    sim_log="$(mktemp "${TMPDIR:-/tmp}/shardline-sim.XXXXXX")"
    nice -n 19 cargo nextest run --profile sim "${scope[@]}" --no-tests=warn \
      -E "not ($clock_tests) & package(shardline-sim)" "$@" >"$sim_log" 2>&1 &
    sim_pid=$!
    cargo nextest run "${scope[@]}" --no-tests=warn \
      -E "not ($clock_tests) & not package(shardline-sim)" "$@" || status=$?
    sim_status=0
    wait "$sim_pid" || sim_status=$?
    step "the simulator's tests: exit $sim_status"
    cat "$sim_log"
    rm -f "$sim_log"
    [ "$sim_status" -eq 0 ] || status=$sim_status
  else
    step "every other test (cargo nextest)"
    cargo nextest run "${scope[@]}" --no-tests=warn -E "not ($clock_tests)" "$@" || status=$?
  fi
else
  # Without cargo-nextest: one thing after another, as cargo test runs them.
  step "the template lint"
  lint
  step "user-build"
  user_build
  step "cargo test"
  cargo test "${scope[@]}" --no-fail-fast "$@" || status=$?
fi
# The fault tests' summary lines (a passing test's own output is not shown).
if [ -f target/fault-summaries.txt ]; then
  echo "fault test summaries:"
  cat target/fault-summaries.txt
fi
step "done (exit $status)"
exit "$status"
