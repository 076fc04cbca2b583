#!/usr/bin/env bash
# Local emulators for the integration tests: kinesis-mock (Kinesis) and moto (DynamoDB).
#
#   scripts/emulators.sh install   pinned versions into .tools/ (skipped when present)
#   scripts/emulators.sh start     (re)start both on free loopback ports, wait until they
#                                  answer, write .tools/emulators.env
#   scripts/emulators.sh stop      stop both (quiet when not running)
#   scripts/emulators.sh status    print the endpoints, or fail when not running
#
# After `start`: `source .tools/emulators.env` and run `cargo test`.
# Logs: .tools/kinesis.log, .tools/moto.log. Needs node (20+), npm and python3 (3.9+).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

KINESIS_MOCK_VERSION="0.6.2"
MOTO_VERSION="5.2.5"
REQUIREMENTS="$ROOT/scripts/requirements-test.txt"

KINESIS_PREFIX="$TOOLS/kinesis"
KINESIS_PKG="$KINESIS_PREFIX/node_modules/kinesis-local"
VENV="$TOOLS/venv"
ENV_FILE="$TOOLS/emulators.env"
PYTHON="${PYTHON:-python3}"
START_TIMEOUT="${EMULATOR_START_TIMEOUT:-60}"

log() { echo "emulators: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- install ----------------------------------------------------------------------

installed_kinesis_version() {
  [[ -f "$KINESIS_PKG/package.json" && -f "$KINESIS_PKG/main.js" && -f "$KINESIS_PKG/server.json" ]] || return 0
  node -p "require(process.argv[1]).version" "$KINESIS_PKG/package.json" 2>/dev/null || true
}

requirements_stamp() { sha256sum "$REQUIREMENTS" | cut -d' ' -f1; }

install_kinesis() {
  if [[ "$(installed_kinesis_version)" == "$KINESIS_MOCK_VERSION" ]]; then
    log "kinesis-mock $KINESIS_MOCK_VERSION already installed"
    return
  fi
  log "installing kinesis-mock (npm kinesis-local@$KINESIS_MOCK_VERSION)"
  mkdir -p "$KINESIS_PREFIX"
  npm install --prefix "$KINESIS_PREFIX" --no-audit --no-fund --no-save --loglevel=error \
    "kinesis-local@$KINESIS_MOCK_VERSION" >&2
  [[ "$(installed_kinesis_version)" == "$KINESIS_MOCK_VERSION" ]] ||
    die "kinesis-local $KINESIS_MOCK_VERSION is not in $KINESIS_PKG after npm install"
}

install_moto() {
  # The stamp is the hash of the pinned requirements: a changed pin reinstalls.
  if [[ -x "$VENV/bin/moto_server" && -f "$VENV/.requirements.sha256" &&
    "$(cat "$VENV/.requirements.sha256")" == "$(requirements_stamp)" ]]; then
    log "moto $MOTO_VERSION already installed"
    return
  fi
  log "installing moto[server]==$MOTO_VERSION into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$REQUIREMENTS" >&2
  local got
  got="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))')"
  [[ "$got" == "$MOTO_VERSION" ]] || die "moto $got installed, expected $MOTO_VERSION"
  requirements_stamp >"$VENV/.requirements.sha256"
}

cmd_install() {
  command -v node >/dev/null || die "node is not installed (kinesis-mock needs Node.js 20+)"
  command -v npm >/dev/null || die "npm is not installed"
  command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (moto needs Python 3.9+)"
  mkdir -p "$TOOLS"
  install_kinesis
  install_moto
}

# --- start / stop -----------------------------------------------------------------

free_port() {
  # The port is free now; the emulator binds it a moment later (a small, accepted race).
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# probe NAME URL: one real API call with a SigV4-looking Authorization header
# (kinesis-mock rejects unsigned calls; moto routes by the credential scope's service).
probe() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import sys, time, urllib.request
name, url = sys.argv[1], sys.argv[2]
service, target, ctype = {
    "kinesis": ("kinesis", "Kinesis_20131202.ListStreams", "application/x-amz-json-1.1"),
    "dynamodb": ("dynamodb", "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0"),
}[name]
now = time.gmtime()
headers = {
    "Content-Type": ctype,
    "X-Amz-Target": target,
    "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", now),
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/%s/us-east-1/%s/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=%s"
    % (time.strftime("%Y%m%d", now), service, "0" * 64),
}
req = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
with urllib.request.urlopen(req, timeout=2) as resp:
    body = resp.read()
    sys.exit(0 if resp.status == 200 and body.startswith(b"{") else 1)
EOF
}

# wait_ready NAME URL PID LOG
wait_ready() {
  local name="$1" url="$2" pid="$3" logfile="$4" deadline=$((SECONDS + START_TIMEOUT))
  while ! probe "$name" "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during start-up; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name did not answer at $url within ${START_TIMEOUT}s; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# Fails when a process of ours listens anywhere but on loopback.
check_loopback_only() {
  command -v ss >/dev/null || {
    log "ss not found: skipping the loopback-only check"
    return 0
  }
  local pid bad
  for pid in "$@"; do
    bad="$(ss -ltnpH 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}' |
      grep -Ev '^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$' || true)"
    [[ -z "$bad" ]] || die "pid $pid listens beyond loopback: $bad"
  done
}

start_kinesis() {
  local plain_port="$1" tls_port="$2"
  (
    cd "$KINESIS_PKG"
    export KINESIS_MOCK_PLAIN_PORT="$plain_port" KINESIS_MOCK_TLS_PORT="$tls_port"
    export AWS_REGION=us-east-1 LOG_LEVEL="${KINESIS_MOCK_LOG_LEVEL:-WARN}"
    # Every state change that kinesis-mock delays, made near-instant for tests.
    local d
    for d in CREATE_STREAM DELETE_STREAM UPDATE_SHARD_COUNT SPLIT_SHARD MERGE_SHARDS \
      REGISTER_STREAM_CONSUMER DEREGISTER_STREAM_CONSUMER START_STREAM_ENCRYPTION \
      STOP_STREAM_ENCRYPTION UPDATE_STREAM_MODE; do
      export "${d}_DURATION=10ms"
    done
    # Parallel tests each create streams; the default limits (50 shards) are too low.
    export SHARD_LIMIT=10000 ON_DEMAND_STREAM_COUNT_LIMIT=1000 SHOULD_PERSIST_DATA=false
    exec node -r "$ROOT/scripts/loopback.cjs" main.js
  ) </dev/null >"$TOOLS/kinesis.log" 2>&1 &
  echo $! >"$TOOLS/kinesis.pid"
}

start_moto() {
  local port="$1"
  # moto's server with one lock around each request: DynamoDB's writes are
  # atomic, moto's are not under concurrency (scripts/moto_atomic.py).
  "$VENV/bin/python" "$ROOT/scripts/moto_atomic.py" -H 127.0.0.1 -p "$port" </dev/null >"$TOOLS/moto.log" 2>&1 &
  echo $! >"$TOOLS/moto.pid"
}

cmd_start() {
  [[ "$(installed_kinesis_version)" == "$KINESIS_MOCK_VERSION" && -x "$VENV/bin/moto_server" ]] ||
    die "emulators not installed: run scripts/emulators.sh install"
  cmd_stop
  mkdir -p "$TOOLS"
  local started=$SECONDS kinesis_port tls_port moto_port
  kinesis_port="$(free_port)"
  tls_port="$(free_port)"
  moto_port="$(free_port)"
  start_kinesis "$kinesis_port" "$tls_port"
  start_moto "$moto_port"
  local kinesis_url="http://127.0.0.1:$kinesis_port" moto_url="http://127.0.0.1:$moto_port"
  if ! wait_ready kinesis "$kinesis_url" "$(cat "$TOOLS/kinesis.pid")" "$TOOLS/kinesis.log" ||
    ! wait_ready dynamodb "$moto_url" "$(cat "$TOOLS/moto.pid")" "$TOOLS/moto.log"; then
    cmd_stop
    exit 1
  fi
  if ! (check_loopback_only "$(cat "$TOOLS/kinesis.pid")" "$(cat "$TOOLS/moto.pid")"); then
    cmd_stop
    exit 1
  fi
  cat >"$ENV_FILE" <<EOF
# Written by scripts/emulators.sh start; source it before cargo test.
export SHARDLINE_TEST_KINESIS_ENDPOINT=$kinesis_url
export SHARDLINE_TEST_DYNAMODB_ENDPOINT=$moto_url
export AWS_ENDPOINT_URL_KINESIS=$kinesis_url
export AWS_ENDPOINT_URL_DYNAMODB=$moto_url
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
  log "kinesis-mock at $kinesis_url, moto at $moto_url (up in $((SECONDS - started))s)"
}

# stop_one NAME EXPECTED_CMDLINE_PART
stop_one() {
  local name="$1" expect="$2" pidfile="$TOOLS/$1.pid" pid i
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  # Only a live process that is still our emulator (pids get reused).
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$expect"; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_stop() {
  stop_one kinesis "main.js"
  stop_one moto "moto_atomic.py"
  rm -f "$ENV_FILE"
}

cmd_status() {
  [[ -f "$ENV_FILE" ]] || die "not running (no $ENV_FILE)"
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  probe kinesis "$SHARDLINE_TEST_KINESIS_ENDPOINT" || die "kinesis-mock does not answer"
  probe dynamodb "$SHARDLINE_TEST_DYNAMODB_ENDPOINT" || die "moto does not answer"
  echo "kinesis  $SHARDLINE_TEST_KINESIS_ENDPOINT"
  echo "dynamodb $SHARDLINE_TEST_DYNAMODB_ENDPOINT"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
  echo "usage: $0 install|start|stop|status" >&2
  exit 2
  ;;
esac
