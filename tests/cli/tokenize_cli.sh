#!/usr/bin/env bash
# nibble tokenize: ids as HF tokenizers gives them (tests/fixtures/tokenizers/cases-*.json), the
# `id -> 'piece'` listing, -f, --no-bos, a folder holding only tokenizer files, and clear errors.
set -u
nibble=$1
dir=tests/fixtures/tokenizers
fail=0
check() {  # check NAME GOT WANT
  if [ "$2" != "$3" ]; then
    printf 'FAIL %s:\n got: %s\nwant: %s\n' "$1" "$2" "$3"
    fail=1
  fi
}

for name in llama2 smollm2 llama3-kjv; do
  for i in 0 5 9 16; do
    text=$(jq -j ".cases[$i].text" "$dir/cases-$name.json")
    want=$(jq -c ".cases[$i].ids" "$dir/cases-$name.json" | sed 's/,/, /g')
    check "$name case $i --ids" "$("$nibble" tokenize -m "$dir/$name" -p "$text" --ids)" "$want"
    want=$(jq -c ".cases[$i].ids_no_special" "$dir/cases-$name.json" | sed 's/,/, /g')
    check "$name case $i --no-bos" "$("$nibble" tokenize -m "$dir/$name" -p "$text" --ids --no-bos)" "$want"
  done
done

check "listing" "$("$nibble" tokenize -m "$dir/llama2" -p 'Hello world')" "1 -> '<s>'
15043 -> ' Hello'
3186 -> ' world'"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'Hello world' >"$tmp/prompt.txt"
check "-f FILE" "$("$nibble" tokenize -m "$dir/llama2" -f "$tmp/prompt.txt" --ids)" "[1, 15043, 3186]"

expect_error() {  # expect_error PATTERN -- command...
  local pattern=$1
  shift 2
  local out code
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" != 2 ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $code, output: $out"
    fail=1
  fi
}
expect_error "tokenizer.json" -- "$nibble" tokenize -m "$tmp" -p x
expect_error "exactly one of -p TEXT or -f FILE" -- "$nibble" tokenize -m "$dir/llama2"
expect_error "cannot open .*missing.txt" -- "$nibble" tokenize -m "$dir/llama2" -f "$tmp/missing.txt"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' >"$tmp/tokenizer.json"
expect_error "$tmp/tokenizer.json: merge 'a b' uses a token missing from the vocab" -- "$nibble" tokenize -m "$tmp" -p x
printf '{"model": ' >"$tmp/tokenizer.json"
expect_error "tokenizer.json is not valid JSON" -- "$nibble" tokenize -m "$tmp" -p x
exit $fail
