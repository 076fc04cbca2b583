#!/usr/bin/env bash
# The simulator must catch what it is for: each fix of the simulation issue's
# five reproduced defects is reverted in turn (sim/mutants/defect*.patch), and
# a defect is put into the parent-shard guard (guard-not-transitive.patch: a
# grandparent no longer holds a grandchild); the simulator runs, and the first
# scenario that breaks a promise is reported.
#
#   scripts/sim-mutants.sh [SCENARIOS]      2,000 by default
#
# The work tree must be clean under shared/; each patch is taken back out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count="${1:-2000}"
if ! git diff --quiet -- shared; then
  echo "sim-mutants: shared/ has changes; commit or stash them first" >&2
  exit 2
fi
for patch in sim/mutants/*.patch; do
  name=$(basename "$patch" .patch)
  git apply "$patch"
  trap 'git apply -R "$patch"' EXIT
  cargo build -q -p shardline-sim --bin shardline-sim
  out=$(target/debug/shardline-sim many --count "$count" || true)
  git apply -R "$patch"
  trap - EXIT
  first=$(grep -m1 '^seed .* FAILED' <<<"$out" || true)
  failed=$(head -1 <<<"$out")
  if [[ -z "$first" ]]; then
    echo "$name: NOT FOUND in $count scenarios ($failed)"
  else
    seed=$(awk '{print $2}' <<<"$first")
    echo "$name: found at seed $seed (about $((seed + 1)) scenarios): ${first#*FAILED: }" | cut -c1-400
  fi
done
