#!/usr/bin/env bash
# nibble inspect: a good folder prints its architecture and memory table; bad folders exit 2 with
# one "error:" line naming the file at fault.
set -euo pipefail
nibble=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$nibble" inspect -m tests/fixtures/loader/tiny-llama-sharded)
for want in "architecture +LlamaForCausalLM" "key/value heads +2$" "tensors +21 in 2 files" \
            "rms norm eps +1e-06" "nf4 \+ double quant +[0-9.]+ KiB"; do
  grep -qE "$want" <<<"$out" || { echo "inspect output lacks '$want':"; echo "$out"; exit 1; }
done

# expect_error DIR TEXT: inspect exits 2 and its message contains TEXT.
expect_error() {
  local rc=0 err
  err=$("$nibble" inspect -m "$1" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" -ne 2 ] || ! grep -qF "error: " <<<"$err" || ! grep -qF "$2" <<<"$err"; then
    echo "inspect -m $1: want exit 2 and '$2', got exit $rc: $err"
    exit 1
  fi
}

mkdir "$tmp/empty"
expect_error "$tmp/empty" "$tmp/empty is empty"
expect_error "$tmp/missing" "$tmp/missing does not exist"

mkdir "$tmp/no-weights"
cp tests/fixtures/loader/tiny-llama/config.json "$tmp/no-weights/"
expect_error "$tmp/no-weights" "has no model.safetensors"

mkdir "$tmp/bad-config"
echo '{"architectures": ["LlamaForCausalLM"], "hidden_size": ' >"$tmp/bad-config/config.json"
expect_error "$tmp/bad-config" "$tmp/bad-config/config.json: config is not valid JSON"

mkdir "$tmp/truncated"
cp tests/fixtures/loader/tiny-llama/config.json "$tmp/truncated/"
head -c 5000 tests/fixtures/loader/tiny-llama/model.safetensors >"$tmp/truncated/model.safetensors"
expect_error "$tmp/truncated" "$tmp/truncated/model.safetensors"

mkdir "$tmp/bad-shard"
cp tests/fixtures/loader/tiny-llama-sharded/* "$tmp/bad-shard/"
printf 'not a safetensors file' >"$tmp/bad-shard/model-00002-of-00002.safetensors"
expect_error "$tmp/bad-shard" "$tmp/bad-shard/model-00002-of-00002.safetensors"

rc=0
"$nibble" inspect -m tests/fixtures/loader/tiny-llama --bogus 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "an unknown flag should exit 2, got $rc"; exit 1; }
echo "loader_inspect: ok"
