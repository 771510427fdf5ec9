#!/usr/bin/env bash
# nibble bench reports speed, the roofline and memory as JSON (speed itself is not tested here).
set -eu
nibble=$1
json=$("$nibble" bench --backend cpu -t 2 -p 8 -n 4 -r 2 --json 2>/dev/null)
for key in pp_tps.median tg_tps.min tg_tps.max weight_bytes_per_token bandwidth_gbs roofline_tps \
           tg_roofline_fraction load_seconds memory_bytes.weights; do
  v=$(jq -r ".$key" <<<"$json")
  awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }' || { echo "FAIL: $key = $v"; exit 1; }
done
[ "$(jq -r .quant <<<"$json")" = "nf4 + double quant, bf16 compute, blocksize 64" ] || { echo "FAIL: quant"; exit 1; }
n=$("$nibble" bench --backend cpu -t 2 -p 4 -n 2 -r 1 --matrix --json 2>/dev/null | jq length)
[ "$n" = 8 ] || { echo "FAIL: matrix gave $n configurations"; exit 1; }
# --kernels times each product of a shape alone, here for a 2-token prompt (a crash once: the CPU
# backend reads a weight's host copy in place).
k=$("$nibble" bench --backend cpu -t 2 --kernels --shape tinyllama-1.1b --calls 1 --tokens 2 --json 2>/dev/null)
[ "$(jq '[.kernels[] | select(.us_per_call > 0 and .tflops > 0)] | length' <<<"$k")" = 6 ] ||
  { echo "FAIL: kernels: $k"; exit 1; }
[ "$(jq .tokens <<<"$k")" = 2 ] || { echo "FAIL: kernels' tokens"; exit 1; }
# -d fills the cache with that many positions first: reserved beside the prompt and generation
# (depth + p + n + 1 positions), and the keys and values each generated token reads reported.
d=$("$nibble" bench --backend cpu -t 2 -p 4 -n 2 -r 1 -d 8 --json 2>/dev/null)
[ "$(jq .depth <<<"$d")" = 8 ] && [ "$(jq .depth <<<"$json")" = 0 ] || { echo "FAIL: depth: $d"; exit 1; }
jq -e '(.memory_bytes.kv_cache / 15 * 9.5 - .kv_bytes_per_token | fabs) < 1 and .tg_tps.median > 0' \
  <<<"$d" >/dev/null || { echo "FAIL: depth's cache: $d"; exit 1; }
"$nibble" bench --backend cpu -d -1 2>&1 | grep -q -- "-d must be >= 0" || { echo "FAIL: -d -1"; exit 1; }
"$nibble" bench --backend cpu --bandwidth | grep -q "copy bandwidth: [0-9]* GB/s" || { echo "FAIL: bandwidth"; exit 1; }
echo ok
