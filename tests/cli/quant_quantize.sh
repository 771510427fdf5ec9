#!/usr/bin/env bash
# nibble quantize writes a bitsandbytes 4-bit checkpoint that loads back without re-quantizing
# (quantizing it again gives the very same bytes); quant-report prints its table; bad flags and
# bad folders give one clear error and exit code 2, and leave nothing half-written.
set -u
nibble=$1
src=tests/fixtures/models/llama-gqa
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if ! "$@"; then
    echo "FAIL: $what"
    fail=1
  fi
}
expect_error() {  # expect_error PATTERN COMMAND...
  local pattern=$1
  shift
  local out
  out=$("$@" 2>&1 </dev/null)
  local got=$?
  if [ "$got" != 2 ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $got (want 2 and /$pattern/), output:"
    echo "$out" | head -5
    fail=1
  fi
}

check "quantize runs" "$nibble" quantize -m "$src" -o "$tmp/q4" 2>"$tmp/log"
check "progress on stderr" grep -q "quantizing" "$tmp/log"
check "config has quantization_config" grep -q '"quant_method": "bitsandbytes"' "$tmp/q4/config.json"
check "config says nf4" grep -q '"bnb_4bit_quant_type": "nf4"' "$tmp/q4/config.json"
check "tokenizer copied" cmp -s "$src/tokenizer.json" "$tmp/q4/tokenizer.json"
check "quant state stored" grep -qa 'model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4' "$tmp/q4/model.safetensors"
check "no temporary folder left" test -z "$(ls -d "$tmp"/*partial* 2>/dev/null)"
# Loading the 4-bit folder reads the stored codes: writing it again reproduces it exactly.
check "re-export runs" "$nibble" quantize -m "$tmp/q4" -o "$tmp/q4-again" 2>/dev/null
check "round trip is bit-identical" cmp -s "$tmp/q4/model.safetensors" "$tmp/q4-again/model.safetensors"
check "fp4 without double quant" "$nibble" quantize -m "$src" -o "$tmp/fp4" --quant fp4 --no-double-quant --blocksize 128 2>/dev/null
check "config says fp4" grep -q '"bnb_4bit_use_double_quant": false' "$tmp/fp4/config.json"

report=$("$nibble" quant-report -m "$src" 2>/dev/null)
check "quant-report rows" grep -qE '^nf4 \+ dq +4\.1[0-9]{2} ' <<<"$report"
check "quant-report fp4 row" grep -qE '^fp4 +4\.500 ' <<<"$report"

expect_error "already exists" "$nibble" quantize -m "$src" -o "$tmp/q4"
expect_error "needs -m DIR and -o OUT" "$nibble" quantize -m "$src"
expect_error "power of two from 64 to 4096" "$nibble" quantize -m "$src" -o "$tmp/x" --blocksize 100
expect_error "--quant expects nf4, fp4 or none" "$nibble" quantize -m "$src" -o "$tmp/x" --quant int8
expect_error "--compute-dtype expects" "$nibble" quantize -m "$src" -o "$tmp/x" --compute-dtype fp8
expect_error "contradict" "$nibble" quantize -m "$src" -o "$tmp/x" --double-quant --no-double-quant
expect_error "nothing to quantize" "$nibble" quantize -m "$src" -o "$tmp/x" --quant none
expect_error "config.json" "$nibble" quantize -m "$tmp/no-such-model" -o "$tmp/x"
expect_error "already 4-bit" "$nibble" quant-report -m "$tmp/q4"
check "no output after errors" test ! -e "$tmp/x"
exit $fail
