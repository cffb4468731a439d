#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 30) each, from the seeds in corpus/ (new
# inputs go to a scratch copy, so the repository is not modified). Any crash fails. Stable
# Rust: cargo-fuzz with --sanitizer none (libFuzzer's coverage guidance, no ASan: the crate
# forbids unsafe code, so panics are what is looked for).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz@0.13.2
cargo fuzz build --sanitizer none -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  cp -r "corpus/$target/." "$scratch/$target/" 2>/dev/null || true
  echo "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run --sanitizer none -O "$target" "$scratch/$target" -- \
    -max_total_time="$seconds" >"$scratch/$target.log" 2>&1; then
    tail -40 "$scratch/$target.log" >&2
    echo "fuzz target $target failed; its input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  tail -1 "$scratch/$target.log"
done
