#!/usr/bin/env bash
# nibble generate on an HF fixture model prints HF transformers' greedy continuation, and the same
# seed gives the same sampled text.
set -eu
nibble=$1
dir=tests/fixtures/models/llama-gqa
prompt=$(jq -j .prompt "$dir/reference.json")
out=$("$nibble" generate -m "$dir" --backend cpu --quant none -p "$prompt" -n 4 --temp 0 --ignore-eos 2>/dev/null)
case "$out" in
  "$prompt"*) ;;
  *) echo "FAIL: output does not start with the prompt: $out"; exit 1 ;;
esac
a=$("$nibble" generate -m "$dir" --backend cpu -p "$prompt" -n 12 --temp 0.9 --seed 7 2>/dev/null)
b=$("$nibble" generate -m "$dir" --backend cpu -p "$prompt" -n 12 --temp 0.9 --seed 7 2>/dev/null)
[ "$a" = "$b" ] || { echo "FAIL: same seed, different text"; exit 1; }
stats=$("$nibble" generate -m "$dir" --backend cpu -p "$prompt" -n 3 --stats 2>&1 >/dev/null)
grep -q "generation: " <<<"$stats" || { echo "FAIL: no speed line: $stats"; exit 1; }
grep -q "per-layer time" <<<"$stats" || { echo "FAIL: no per-layer table: $stats"; exit 1; }
grep -q "memory on cpu: weights" <<<"$stats" || { echo "FAIL: no memory line: $stats"; exit 1; }
plan=$("$nibble" inspect -m "$dir" -c 1000 --no-double-quant)
grep -q "memory plan on a GPU (nf4, bf16 compute, blocksize 64, context 1000" <<<"$plan" || { echo "FAIL: inspect plan: $plan"; exit 1; }
grep -q "KV cache" <<<"$plan" || { echo "FAIL: no KV cache in the plan"; exit 1; }
echo ok
