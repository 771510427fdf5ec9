#!/usr/bin/env bash
# nibble generate/chat/bench: bad flags and bad folders give one clear error and exit code 2.
set -u
nibble=$1
fail=0
expect() {  # expect CODE PATTERN -- command...
  local code=$1 pattern=$2
  shift 3
  local out
  out=$("$@" 2>&1 </dev/null)
  local got=$?
  if [ "$got" != "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $got (want $code), output:"
    echo "$out" | head -5
    fail=1
  fi
}
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
expect 0 "usage: nibble generate" -- "$nibble" generate --help
expect 0 "usage: nibble COMMAND" -- "$nibble" --help
expect 2 "unknown command 'frobnicate'" -- "$nibble" frobnicate
expect 2 "unknown argument '--frob'" -- "$nibble" generate --frob -m tests/fixtures/models/llama-gqa
expect 2 "-n expects an integer" -- "$nibble" generate -n many -m tests/fixtures/models/llama-gqa
expect 2 "$empty" -- "$nibble" generate -m "$empty" -p hi --backend cpu
expect 2 "does-not-exist" -- "$nibble" generate -m "$empty/does-not-exist" -p hi --backend cpu
expect 2 "context" -- "$nibble" generate -m tests/fixtures/models/llama-gqa --backend cpu -c 4 -p "And God said, Let there be light"
expect 2 "--temp must be >= 0" -- "$nibble" generate -m tests/fixtures/models/llama-gqa --backend cpu --temp -1 -p hi
expect 2 "backend 'metal'" -- "$nibble" generate -m tests/fixtures/models/llama-gqa --backend metal -p hi
# --truncate drops the oldest prompt tokens instead (and says so).
expect 0 "oldest [0-9]+ prompt tokens were dropped" -- "$nibble" generate -m tests/fixtures/models/llama-gqa --backend cpu -c 8 --truncate -n 2 -p "And God said, Let there be light"
exit $fail
