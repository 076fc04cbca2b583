#!/usr/bin/env bash
# Builds each function as a Lambda bootstrap zip with cargo-lambda (pinned),
# then prints the zip sizes.
#
#   scripts/build-lambdas.sh                     every function, arm64 (the template's default)
#   scripts/build-lambdas.sh --x86-64            every function, x86_64
#   scripts/build-lambdas.sh --arm64 ledger      one function
#
# Zips land in target/lambda/<arch>/<function>/bootstrap.zip. Only functions
# that exist in functions/ are built (the template may name more).
#
# cargo-lambda comes from PyPI (with zig, its cross-linker) into its own
# virtualenv, .tools/cargo-lambda. The Rust standard library of the target must
# be installed: `rustup target add aarch64-unknown-linux-gnu` for arm64,
# `x86_64-unknown-linux-gnu` for x86_64.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/cargo-lambda"
VERSION="1.9.2"
PYTHON="${PYTHON:-python3}"

log() { echo "build-lambdas: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

arch="arm64"
wanted=()
for arg in "$@"; do
  case "$arg" in
  --arm64) arch="arm64" ;;
  --x86-64 | --x86_64) arch="x86_64" ;;
  -h | --help)
    sed -n '2,16p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  -*) die "unknown option $arg" ;;
  *) wanted+=("$arg") ;;
  esac
done

case "$arch" in
arm64) target="aarch64-unknown-linux-gnu" flag="--arm64" ;;
x86_64) target="x86_64-unknown-linux-gnu" flag="--x86-64" ;;
esac

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("cargo-lambda"))' 2>/dev/null || true
}

if [[ "$(installed_version)" != "$VERSION" ]]; then
  log "installing cargo-lambda==$VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$ROOT/.tools"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "cargo-lambda==$VERSION" >&2
  [[ "$(installed_version)" == "$VERSION" ]] || die "cargo-lambda $(installed_version) installed, expected $VERSION"
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
  die "the Rust standard library for $target is not installed: rustup target add $target"
fi

# Every function package that exists (functions/<name>/Cargo.toml, binary <name>).
cd "$ROOT"
available=()
for manifest in functions/*/Cargo.toml; do
  [[ -f "$manifest" ]] && available+=("$(basename "$(dirname "$manifest")")")
done
if ((${#wanted[@]} == 0)); then
  wanted=("${available[@]}")
fi
bins=()
for name in "${wanted[@]}"; do
  [[ " ${available[*]} " == *" $name "* ]] || die "no function $name (have: ${available[*]})"
  bins+=(--bin "$name")
done

out="target/lambda/$arch"
log "cargo lambda build --release $flag for: ${wanted[*]}"
PATH="$VENV/bin:$PATH" cargo lambda build --release "$flag" --output-format zip \
  --lambda-dir "$out" "${bins[@]}"

printf '%-14s %-7s %12s %12s\n' function arch "zip bytes" "unzipped" >&2
for name in "${wanted[@]}"; do
  zip="$out/$name/bootstrap.zip"
  [[ -f "$zip" ]] || die "no $zip after the build"
  unzipped="$("$PYTHON" -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")"
  printf '%-14s %-7s %12s %12s\n' "$name" "$arch" "$(stat -c %s "$zip")" "$unzipped"
done
