#!/usr/bin/env bash
# Run every fuzz target (or those named) for a bounded time on the nightly toolchain, growing
# fuzz/corpus/<target>/ and leaving any crash in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [seconds per target, default 60] [target …]
#
# Needs `cargo install cargo-fuzz` and a nightly toolchain (rustup toolchain install nightly).
# CI does not run this: it replays the corpora and fuzz/regressions/ on stable
# (crates/fuzzing/tests/corpora.rs). A crash found here is fixed, then its input is copied to
# fuzz/regressions/<target>/ so that it is replayed for ever. Each run prints one summary line
# per target: executions, executions per second, corpus size, new crashes; it exits 1 if any
# target crashed.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
  [ ${#targets[@]} -gt 0 ] || { echo "cargo fuzz list found no target" >&2; exit 1; }
fi
cargo +nightly fuzz build >/dev/null
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  old_crashes=$(find "artifacts/$t" -type f | wc -l)
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 -max_len=65536 \
    >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - old_crashes ))
  printf '%-12s %10s execs in %ss, %8s exec/s, corpus %5s inputs, exit %s, crashes %s\n' \
    "$t" "$runs" "$secs" "$rate" "$(find "corpus/$t" -type f | wc -l)" "$status" "$crashes"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    tail -40 "$log" >&2
  fi
  rm -f "$log"
done
exit "$failed"
