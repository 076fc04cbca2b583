#!/usr/bin/env bash
# Shardline as a user outside this repository gets it. Part of the test command
# (scripts/test.sh); on its own:
#
#   scripts/user-build.sh
#
# 1. Packages: `cargo package` for the publishable crates (shardline-kpl,
#    shardline-event, shardline-lambda, shardline-esm, shardline-cli).
# 2. Your own function: `shardline-cli new orders --local <this checkout>` in a
#    temporary folder outside the workspace, with a fresh lock file: build,
#    `cargo test`, invoke its good event twice (the second is skipped by its
#    checkpoint), its poison event (quarantined with its payload), and lint its
#    template with the pinned cfn-lint.
# 3. Newest dependencies: those packages, unpacked into a scratch workspace
#    outside this one, without a lock file, resolved afresh to the newest
#    versions their ranges allow (not held back by rust-version, as a user's
#    newer toolchain is not), then documented as docs.rs would, with rustdoc's
#    warnings as errors (broken links), and checked (`cargo check` of every
#    library and binary): the packages are complete and compile with what a
#    user gets today.
#
# Part 2 is the run on the newest dependencies: the framework built with a
# user's features, its tests, three invokes and the quarantine. Part 3 checks
# and documents the packages without building them again: the CLI's features
# (tokio's process and signal support, hyper's server) and the packages'
# dev-dependencies change features deep in the tree, so their build reused
# little of part 2's and cost about 180 CPU-seconds (their tests run in the
# workspace, on `Cargo.lock`); rustdoc needs the tree in check mode anyway
# (it does not read a build's metadata), and `cargo check` shares it. The
# project is written by the checkout's own CLI (`SHARDLINE_CLI`, the test
# command's build; built here when unset): what `new` writes does not depend
# on the versions of the CLI's dependencies. Prints the versions resolved and
# the time to the generated function's first local invoke.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATES=(shardline-kpl shardline-event shardline-lambda shardline-esm shardline-cli)
# Where each package goes in the scratch workspace: the checkout's layout, so
# that `--local` finds `shared/`.
declare -A FOLDER=([shardline-kpl]=kpl [shardline-event]=event [shardline-lambda]=shared [shardline-esm]=esm [shardline-cli]=cli)
# Not the workspace's own target folder: the workspace builds its dependencies
# with the features of every member and test unified, so nothing of it would be
# reused here, and the test command runs this beside the doctests, which use
# that folder (and its build lock).
export CARGO_TARGET_DIR="$ROOT/target/user-build"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=allow
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/shardline-user-build.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

log() { echo "user-build: ${SECONDS}s: $*" >&2; }
version() { sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/$1/Cargo.toml" | head -1; }

# 1. Packages.
args=()
for crate in "${CRATES[@]}"; do args+=(-p "$crate"); done
log "cargo package ${CRATES[*]}"
(cd "$ROOT" && cargo package --quiet --no-verify --allow-dirty "${args[@]}")

# 2. Your own function, outside any workspace.
if [[ -z "${SHARDLINE_CLI:-}" ]]; then
  log "build the checkout's shardline-cli (to write the project)"
  (cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --quiet -p shardline-cli)
  SHARDLINE_CLI="$ROOT/target/debug/shardline-cli"
fi
started=$(date +%s)
mkdir -p "$SCRATCH/own"
cd "$SCRATCH/own"
"$SHARDLINE_CLI" new orders --local "$ROOT"
cd orders
export SHARDLINE_STATE_DIR="$SCRATCH/own/orders/.shardline"
log "orders: cargo build"
cargo build --quiet
# rustls on ring, on the newest versions too: no aws-lc C build.
if grep -q '^name = "aws-lc-sys"' Cargo.lock; then
  log "error: the project builds aws-lc-sys; cargo tree -i aws-lc-sys:"
  cargo tree -i aws-lc-sys >&2
  exit 1
fi
first=$(cargo run --quiet -- invoke events/batch.json 2>"$SCRATCH/first.log")
log "orders: first local invoke $(( $(date +%s) - started )) s after shardline-cli new"
again=$(cargo run --quiet -- invoke events/batch.json 2>"$SCRATCH/again.log")
poison=$(cargo run --quiet -- invoke events/poison.json 2>"$SCRATCH/poison.log")
quarantined=$(cargo run --quiet -- quarantine)
log "orders: cargo test"
cargo test --quiet

fail() { log "error: $*"; for f in "$SCRATCH"/*.log; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }
empty='{"batchItemFailures":[]}'
[[ "$first" == "$empty" && "$again" == "$empty" && "$poison" == "$empty" ]] ||
  fail "responses: $first / $again / $poison"
grep -q "3 processed, 0 skipped" "$SCRATCH/first.log" || fail "the first invoke did not process 3 records"
grep -q "0 processed, 3 skipped (3 checkpointed" "$SCRATCH/again.log" || fail "the second invoke was not skipped by its checkpoint"
grep -q "INFO saved id=a-1" "$SCRATCH/first.log" || fail "the handler's own info log is not shown by default"
grep -q "2 processed, .*1 quarantined (1 permanent" "$SCRATCH/poison.log" || fail "the poison record was not quarantined"
# The payload, base64 of `not json`.
[[ "$(echo "$quarantined" | wc -l)" == 1 && "$quarantined" == *'"data":"bm90IGpzb24="'* ]] ||
  fail "quarantine: $quarantined"
log "orders: lint template.yaml"
"$ROOT/scripts/lint-template.sh" "$SCRATCH/own/orders/template.yaml"
# Every option at its other setting, Lambda Managed Instances included.
"$ROOT/scripts/lint-template.sh" --non-default "$SCRATCH/own/orders/template.yaml" \
  "$ROOT/tests/new-template-non-default.params"

# 3. Newest dependencies, from the packages.
mkdir -p "$SCRATCH/packages"
{
  echo '[workspace]'
  echo 'resolver = "3"'
  echo -n 'members = ['
  for crate in "${CRATES[@]}"; do echo -n "\"${FOLDER[$crate]}\", "; done
  echo ']'
  echo
  echo '# The packages depend on each other by version, as published ones do.'
  echo '[patch.crates-io]'
  for crate in "${CRATES[@]}"; do echo "$crate = { path = \"${FOLDER[$crate]}\" }"; done
  echo
  echo '# The debug profile of this workspace and of the project `new` writes.'
  echo '[profile.dev]'
  echo 'debug = "line-tables-only"'
  echo '[profile.dev.package."*"]'
  echo 'debug = false'
} > "$SCRATCH/packages/Cargo.toml"
for crate in "${CRATES[@]}"; do
  folder="${FOLDER[$crate]}"
  version="$(version "$folder")"
  # Each file dated now (-m): a package keeps a fixed date in 2006 for
  # reproducible builds, so a warm target folder took a changed file for an
  # unchanged one and reused the last run's check and docs.
  tar -m -xzf "$CARGO_TARGET_DIR/package/$crate-$version.crate" -C "$SCRATCH/packages"
  mv "$SCRATCH/packages/$crate-$version" "$SCRATCH/packages/$folder"
  [[ -n "$(find "$SCRATCH/packages/$folder/Cargo.toml" -newermt '-10 minutes')" ]] || {
    log "error: $crate's files keep the package's date: a warm build would not see a change"
    exit 1
  }
done
cd "$SCRATCH/packages"
cargo generate-lockfile --quiet
log "newest dependencies resolved:"
for dep in aws-config aws-sdk-dynamodb aws-sdk-kinesis lambda_runtime tokio rusqlite tracing-subscriber clap hyper prost; do
  awk -v name="$dep" '$0 == "name = \"" name "\"" { getline; sub(/version = /, ""); printf "  %s %s\n", name, $0 }' Cargo.lock >&2
done
# What docs.rs renders, with rustdoc's warnings as errors (broken links), and
# every package's library and binaries checked: the tree in check mode once,
# for both.
log "rustdoc and cargo check (newest dependencies)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --workspace --no-deps
cargo check --quiet --workspace --lib --bins

log "ok: orders built, tested, invoked and linted, packages documented and checked, on the newest dependencies"
