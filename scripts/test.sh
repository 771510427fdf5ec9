#!/usr/bin/env bash
# README command 2: set up, build, and run the whole test suite through ctest.
# With --sanitize, the same in an ASan+UBSan build (build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir=build flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan flags=(-DNIBBLE_SANITIZE=ON -DNIBBLE_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
bash scripts/build.sh "$dir" "${flags[@]}"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
