#!/usr/bin/env bash
# A lost Vulkan device ends `nibble generate` with exit code 2 and one error line saying so. The
# loss is simulated (NIBBLE_VK_SIMULATE_DEVICE_LOSS=n: a backend's n-th step wait reports
# VK_ERROR_DEVICE_LOST, see docs/RELIABILITY.md), since no device can be made to fail on demand.
# The text written before the loss is the bundled model's greedy continuation (HF's, which the
# 16-bit model on Vulkan reproduces: cli.default_model_greedy), cut short.
set -u
nibble=$1
# A build with Vulkan must run it (CI has lavapipe); only a build without it has nothing to check.
if ! "$nibble" devices 2>&1 | grep -q "backends built in:.*vulkan"; then
  echo "vulkan: not built in, nothing to check"
  exit 0
fi
fixture=tests/fixtures/models/kjv-tiny-greedy.json
prompt=$(jq -j .prompt "$fixture")
healthy="$prompt$(jq -j .text "$fixture")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Lost at the 3rd step: the prefill and one decode step have written two tokens.
rc=0
NIBBLE_VK_SIMULATE_DEVICE_LOSS=3 "$nibble" generate --backend vulkan --quant none -p "$prompt" \
  -n 8 --temp 0 --ignore-eos >"$work/out.txt" 2>"$work/err.txt" || rc=$?
want="error: the Vulkan device was lost during a step (GPU fault, driver reset or timeout); load the model again, or use the CPU backend (--backend cpu)"
# stderr: the loading messages, then that one error line, last, and no report after it.
errors=$(grep -c "error" "$work/err.txt")
if [ "$rc" != 2 ] || [ "$errors" != 1 ] || [ "$(tail -n 1 "$work/err.txt")" != "$want" ]; then
  echo "FAIL: exit code $rc (want 2), $errors error lines (want 1), stderr:"
  cat "$work/err.txt"
  echo "want, as its only error and last line:"
  echo "$want"
  exit 1
fi
out=$(cat "$work/out.txt")
if [ ${#out} -le ${#prompt} ] || [ "${healthy:0:${#out}}" != "$out" ] || [ "$out" = "$healthy" ]; then
  echo "FAIL: the text before the loss is not the healthy continuation, cut short"
  echo "got:     $out"
  echo "healthy: $healthy"
  exit 1
fi
echo "ok: exit code 2, $want"
echo "ok: before the loss: $out"
