#!/usr/bin/env bash
# The bundled model, run with no -m, writes HF transformers' greedy continuation token for token
# (tests/fixtures/models/kjv-tiny-greedy.json), on the CPU and, where one works, on Vulkan.
set -eu
nibble=$1
fixture=tests/fixtures/models/kjv-tiny-greedy.json
prompt=$(jq -j .prompt "$fixture")
text=$(jq -j .text "$fixture")
n=$(jq -j .new_tokens "$fixture")
for backend in cpu vulkan; do
  # A build with Vulkan must run it (CI has lavapipe); only a build without it skips.
  if [ "$backend" = vulkan ] && ! "$nibble" devices 2>&1 | grep -q "backends built in:.*vulkan"; then
    echo "vulkan: not built in, checked the CPU only"
    continue
  fi
  out=$("$nibble" generate --backend "$backend" --quant none -p "$prompt" -n "$n" --temp 0 --ignore-eos 2>/dev/null)
  if [ "$out" != "$prompt$text" ]; then
    echo "FAIL ($backend): got"
    echo "$out"
    echo "want"
    echo "$prompt$text"
    exit 1
  fi
  echo "$backend: matches HF"
done
