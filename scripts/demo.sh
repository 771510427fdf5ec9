#!/usr/bin/env bash
# README command 1: set up, build, and generate text with the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/nibble generate -p "${1:-In the beginning}" -n 64
