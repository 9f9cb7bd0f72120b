#!/usr/bin/env bash
# Build the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer, nightly) and run
# each for a bounded time; fail if any target finds a crash.
#
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   targets to run (default: all of fuzz/Cargo.toml)
#
# The build goes to ~/.cache/clusterscale/fuzz-target (CARGO_TARGET_DIR) so
# that reruns only rebuild what changed; the corpus each run grows is kept
# in ~/.cache/clusterscale/fuzz-corpus/<target> and starts from the seeds
# committed in fuzz/corpus/<target> (python3 tests/fuzz/make-seeds.py).
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${FUZZ_SECONDS:-30}
cache=${CLUSTERSCALE_CACHE:-$HOME/.cache/clusterscale}
export CARGO_TARGET_DIR=$cache/fuzz-target
work=$cache/fuzz-corpus

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "SKIPPED: fuzzing needs a nightly Rust toolchain (cargo +nightly), which this machine does not have"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  if ! cargo install cargo-fuzz --locked; then
    echo "SKIPPED: cargo-fuzz is not installed and cannot be installed here"
    exit 0
  fi
fi
cargo +nightly --version
cargo +nightly fuzz --version

targets=${FUZZ_TARGETS:-$(cd fuzz && cargo +nightly fuzz list)}
# -s none: the code under test is safe Rust (AddressSanitizer finds nothing
# there and costs 2-3x the executions); -a: overflow and debug assertions
# panic, and so count as crashes.
flags=(-s none -a --fuzz-dir fuzz)

start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "build: $(( $(date +%s) - start )) s (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"

summary=()
failed=()
for t in $targets; do
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  log=$(mktemp)
  echo "==> fuzz $t for ${seconds}s"
  set +e
  cargo +nightly fuzz run "${flags[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^(#[0-9]+ +(INITED|DONE)|stat::|==[0-9]+== ERROR|SUMMARY|Test unit written|thread .* panicked)' "$log" | tail -20 || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$work/$t" -type f | wc -l)
  bytes=$(du -sb "$work/$t" | cut -f1)
  seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-18s %6ss %12s %10s %8s %10s %7s  %s' "$t" "$seconds" "${execs:--}" "${rate:--}" "$corpus" "$bytes" "$seeds" "$([ $rc = 0 ] && echo ok || echo "CRASH (rc $rc)")")")
  if [ $rc != 0 ]; then
    failed+=("$t")
    echo "--- $t failed; last lines of its log ---"
    tail -60 "$log"
  fi
  rm -f "$log"
done

echo
printf '%-18s %7s %12s %10s %8s %10s %7s  %s\n' target time execs execs/s corpus bytes seeds result
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
