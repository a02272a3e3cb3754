#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ (cargo-fuzz, libFuzzer,
# nightly), then the corpus minimized and a table of executions and
# coverage per target.
#
# Usage: scripts/fuzz.sh [MINUTES] [TARGET...]
#   MINUTES  per target (default 10); TARGET defaults to all of them.
#   JOBS=N   targets fuzzed side by side (default 2, one per core here).
#
# New inputs go to fuzz/corpus/<target>/ (kept in git: `cargo test` replays
# them, see tests/fuzz_corpus.rs); crashes to fuzz/artifacts/<target>/.
# Seeds are made at each run (scripts/fuzz_seeds.py) from `vane generate`
# and the repository's own examples, rules and documented configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${1:-10}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^vane-fuzz$')
fi
JOBS=${JOBS:-2}
SEEDS=target/fuzz-seeds
LOGS=target/fuzz-logs

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Overflow checks on (-a): an input-derived number that overflows is a
# finding. No sanitizer: the code is safe Rust; the time goes to coverage.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" >&2

if [ -z "${VANE:-}" ]; then
  cargo build --quiet
  VANE=target/debug/vane
fi
rm -rf "$SEEDS" && mkdir -p "$SEEDS" "$LOGS"
python3 scripts/fuzz_seeds.py "$SEEDS" "$VANE"

fuzz_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "fuzz/corpus/$t" "$SEEDS/$t" -- \
    -max_total_time=$((MINUTES * 60)) -rss_limit_mb=2048 -timeout=10 \
    -max_len=8192 -print_final_stats=1 \
    > "$LOGS/$t.log" 2>&1 || echo "$t: stopped with a finding, see $LOGS/$t.log" >&2
}
export -f fuzz_one
export MINUTES SEEDS LOGS
export FUZZ_FLAGS_STR="${FUZZ_FLAGS[*]}"
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'FUZZ_FLAGS=($FUZZ_FLAGS_STR); fuzz_one {}'

# Keep the smallest corpus with the same edges (it lives in git, and
# `cargo test` replays it): minimized by edges alone, not by hit counts and
# comparison operands, it is a quarter of the files for the same coverage.
for t in "${TARGETS[@]}"; do
  cargo +nightly fuzz cmin "${FUZZ_FLAGS[@]}" "$t" "fuzz/corpus/$t" -- -use_counters=0 -use_cmp=0 \
    > "$LOGS/$t.cmin.log" 2>&1 || true
done

printf '%-14s %12s %8s %8s %8s %s\n' target executions exec/s cov corpus findings
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
  files=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-14s %12s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$files" "$crashes"
done
