#!/usr/bin/env bash
# nibble make-checkpoint writes a sharded random-weight checkpoint in HF layout that nibble loads.
set -eu
nibble=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$nibble" make-checkpoint --shape tinyllama-1.1b --layers 1 --shard-size 0.1 \
  --tokenizer models/kjv-tiny -o "$tmp/tl" >/dev/null 2>&1
[ "$(jq '.weight_map | length' "$tmp/tl/model.safetensors.index.json")" = 12 ] || { echo "FAIL: weight_map"; exit 1; }
[ "$(ls "$tmp"/tl/model-0000?-of-00003.safetensors | wc -l)" = 3 ] || { echo "FAIL: shards"; exit 1; }
[ "$(jq .num_key_value_heads "$tmp/tl/config.json")" = 4 ] || { echo "FAIL: config"; exit 1; }
"$nibble" inspect -m "$tmp/tl" | grep -q "hidden size *2048" || { echo "FAIL: inspect"; exit 1; }
"$nibble" generate -m "$tmp/tl" --backend cpu -p "In the beginning" -n 2 >/dev/null 2>&1 || { echo "FAIL: generate"; exit 1; }
set +e
out=$("$nibble" make-checkpoint --shape tinyllama-1.1b -o "$tmp/tl" 2>&1); code=$?
[ $code = 2 ] && grep -q "already exists" <<<"$out" || { echo "FAIL: existing folder: $code $out"; exit 1; }
out=$("$nibble" make-checkpoint --shape gpt-5 -o "$tmp/x" 2>&1); code=$?
[ $code = 2 ] && grep -q "unknown shape 'gpt-5' (known: llama-2-7b" <<<"$out" || { echo "FAIL: unknown shape: $out"; exit 1; }
[ ! -e "$tmp/x" ] && [ ! -e "$tmp/x.partial" ] || { echo "FAIL: left files behind"; exit 1; }
echo ok
