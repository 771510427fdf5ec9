#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) into build-fuzz/ and runs each
# tests/fuzz/fuzz_*.cpp for SECONDS (default 60) from its seed corpus. Fails on the first crash,
# sanitizer report, leak, timeout or out-of-memory; the input is saved as build-fuzz/crashes/TARGET-*.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# With FUZZ_RUNS=N each target instead makes N runs from seed 1 and a fresh corpus (SECONDS stays
# a cap): the same inputs on every machine, so CI cannot turn red on a lucky new find; a shorter
# run on a slow machine only sees a prefix of the same inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNIBBLE_FUZZ=ON -DNIBBLE_VULKAN=OFF -DNIBBLE_CUDA=OFF -DNIBBLE_APP=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

mkdir -p build-fuzz/crashes build-fuzz/logs
for t in "${targets[@]}"; do
  # New inputs go to a working corpus in build-fuzz/; the seeds in git stay small.
  corpus=build-fuzz/corpus/$t
  log=build-fuzz/logs/$t.log
  budget=(-max_total_time="$seconds")
  if [ -n "${FUZZ_RUNS:-}" ]; then
    corpus=build-fuzz/corpus-fixed/$t
    rm -rf "$corpus"
    budget+=(-runs="$FUZZ_RUNS" -seed=1)
  fi
  mkdir -p "$corpus"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s"
  if ! "build-fuzz/$t" "${dict[@]}" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
      "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (log: $log); reproduce with build-fuzz/$t build-fuzz/crashes/$t-*"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|cov: .* DONE|^#[0-9]+ +DONE" "$log" || true
done
echo "fuzz: all targets ran ${FUZZ_RUNS:+$FUZZ_RUNS runs or }${seconds}s each without a failure"
