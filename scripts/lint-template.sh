#!/usr/bin/env bash
# Lints template.yaml (AWS SAM) with cfn-lint, pinned, and fails on any finding
# (errors, warnings, informational). Pinned to 1.53.3: cfn-lint 1.54 and later pass broken SAM templates
# silently.
#
#   scripts/lint-template.sh                install (first run) and lint
#   scripts/lint-template.sh FILE.yaml      lint another template
#   scripts/lint-template.sh --non-default  lint a copy of template.yaml whose
#       parameter defaults are the non-default values of
#       tests/template-non-default.params (every option at its other setting;
#       tests/tests/it/template.rs checks the same copy)
#   scripts/lint-template.sh --non-default FILE.yaml PARAMS
#       the same for another template and its values (scripts/user-build.sh:
#       the template `shardline-cli new` writes, tests/new-template-non-default.params)
#
# cfn-lint gets its own virtualenv, .tools/cfn-lint: the emulators' venv
# (.tools/venv) pins a newer cfn-lint as a dependency of moto, and the two must
# not replace each other. Besides cfn-lint's own rules, a check below asserts
# Shardline's own rules for event sources (tests/tests/it/template.rs asserts the
# same from `cargo test`):
# - every Kinesis event source reports batch item failures;
# - retry limits are in Lambda's ranges, and the ordered functions (fanout,
#   ledger) retry without limit, so the parent-shard guard cannot lose data.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/cfn-lint"
VERSION="1.53.3"
PYTHON="${PYTHON:-python3}"
TEMPLATE="${1:-$ROOT/template.yaml}"

log() { echo "lint-template: $*" >&2; }

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("cfn-lint"))' 2>/dev/null || true
}

if [[ "$(installed_version)" != "$VERSION" ]]; then
  log "installing cfn-lint==$VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$ROOT/.tools"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "cfn-lint==$VERSION" >&2
  [[ "$(installed_version)" == "$VERSION" ]] || {
    log "error: cfn-lint $(installed_version) installed, expected $VERSION"
    exit 1
  }
fi

if [[ "$TEMPLATE" == "--non-default" ]]; then
  SOURCE="${2:-$ROOT/template.yaml}"
  PARAMS="${3:-$ROOT/tests/template-non-default.params}"
  TEMPLATE="$ROOT/.tools/template-non-default.yaml"
  if [[ $# -gt 1 ]]; then
    TEMPLATE="$ROOT/.tools/non-default-$(basename "$(dirname "$SOURCE")").yaml"
  fi
  "$PYTHON" - "$SOURCE" "$PARAMS" "$TEMPLATE" <<'PY'
import sys
template, params, out = sys.argv[1:4]
values = {}
for line in open(params):
    line = line.strip()
    if line and not line.startswith("#"):
        key, _, value = line.partition("=")
        values[key] = value
lines, current, section = open(template).read().split("\n"), None, None
for i, line in enumerate(lines):
    if line and not line.startswith(" "):
        section = line.rstrip(":")
    elif section == "Parameters" and line.startswith("  ") and not line.startswith("   "):
        current = line.strip().rstrip(":")
    elif section == "Parameters" and current in values and line.startswith("    Default:"):
        lines[i] = "    Default: '" + values.pop(current).replace("'", "''") + "'"
if values:
    sys.exit(f"lint-template: no Default for {sorted(values)}")
open(out, "w").write("\n".join(lines))
PY
fi

log "cfn-lint $VERSION on $TEMPLATE"
# Informational rules too (explicit deletion policies on stateful resources);
# any finding, error, warning or informational, fails the lint.
"$VENV/bin/cfn-lint" --include-checks I --non-zero-exit-code informational -- "$TEMPLATE"

# Every Kinesis event source must report batch item failures, or Lambda ignores
# Shardline's answer and retries whole batches (duplicates, lost order).
"$VENV/bin/python" - "$TEMPLATE" <<'PY'
import sys
from cfnlint.decode import decode

template, problems = decode(sys.argv[1])
if problems or template is None:
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit("lint-template: the template does not parse")

# Each with its twin on Lambda Managed Instances (<Name>ManagedFunction).
ORDERED = {"FanoutFunction", "LedgerFunction", "FanoutManagedFunction", "LedgerManagedFunction"}

def reports_failures(props):
    types = props.get("FunctionResponseTypes") or []
    return isinstance(types, list) and "ReportBatchItemFailures" in types

def limits_problems(where, props, ordered):
    found = []
    retries = props.get("MaximumRetryAttempts")
    age = props.get("MaximumRecordAgeInSeconds")
    if isinstance(retries, int) and not -1 <= retries <= 10000:
        found.append(f"{where}: MaximumRetryAttempts {retries} is not in -1..10000")
    if isinstance(age, int) and not (age == -1 or 60 <= age <= 604800):
        found.append(f"{where}: MaximumRecordAgeInSeconds {age} is neither -1 nor in 60..604800")
    if ordered and (retries != -1 or age != -1):
        found.append(f"{where}: an ordered function needs MaximumRetryAttempts -1 and "
                     f"MaximumRecordAgeInSeconds -1 (got {retries}, {age})")
    return found

checked, bad = 0, []
for name, resource in (template.get("Resources") or {}).items():
    kind = resource.get("Type")
    props = resource.get("Properties") or {}
    sources = []
    if kind == "AWS::Serverless::Function":
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") == "Kinesis":
                sources.append((f"{name}.Events.{event_name}", event.get("Properties") or {}, name in ORDERED))
    elif kind == "AWS::Lambda::EventSourceMapping":
        sources.append((name, props, False))
    for where, source, ordered in sources:
        checked += 1
        if not reports_failures(source):
            bad.append(f"{where}: no FunctionResponseTypes: [ReportBatchItemFailures]")
        bad.extend(limits_problems(where, source, ordered))
if bad:
    sys.exit("lint-template:\n  " + "\n  ".join(bad))
if checked == 0:
    sys.exit("lint-template: no Kinesis event source found: is this the right template?")
print(f"lint-template: {checked} Kinesis event sources report batch item failures "
      "and retry within Shardline's rules", file=sys.stderr)
PY
log "ok"
