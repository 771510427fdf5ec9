#!/usr/bin/env bash
# nibble-chat shows errors in its window and survives them: a folder that is not a model, and a
# model that does not fit the device (a KV cache far larger than lavapipe's heap). Each scripted
# run must exit with code 2 naming the problem, after drawing the error into a real frame.
# $1: the nibble binary; nibble-chat is built beside it (exit 77, "skipped", when it is not).
set -euo pipefail
chat="$(dirname "$1")/nibble-chat"
if [[ ! -x "$chat" ]]; then
  echo "SKIP: $chat not built (NIBBLE_APP or NIBBLE_VULKAN is OFF)"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="$work"
lavapipe=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [[ -f "$lavapipe" ]]; then export VK_ICD_FILENAMES="$lavapipe" VK_DRIVER_FILES="$lavapipe"; fi

# expect_error NAME PATTERN ARGS...: nibble-chat ARGS fails with code 2, stderr matching PATTERN,
# and its screenshot is a drawn frame (the error banner), not a blank one.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  local rc=0
  xvfb-run -a -s "-screen 0 1280x800x24" "$chat" "$@" -p "hello" --size 1280x800 \
    --screenshot "$work/$name.png" --exit-after-answer >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  if ((rc != 2)); then
    cat "$work/$name.err"
    echo "FAIL [$name]: exit code $rc, expected 2"
    exit 1
  fi
  if ! grep -Eq "$pattern" "$work/$name.err"; then
    cat "$work/$name.err"
    echo "FAIL [$name]: the error does not say /$pattern/"
    exit 1
  fi
  local colours
  colours=$(identify -format '%k' "$work/$name.png")
  if ((colours < 64)); then
    echo "FAIL [$name]: the screenshot has only $colours colours"
    exit 1
  fi
  echo "ok [$name]: $(grep -m1 error "$work/$name.err")"
}

mkdir "$work/not-a-model"
echo "just a file" >"$work/not-a-model/notes.txt"
expect_error not-a-model "not-a-model.*has no config.json" -m "$work/not-a-model" --backend cpu
expect_error too-big "needs .* GiB .* but .* free" -m models/kjv-tiny --backend vulkan --ctx 4000000
echo "PASS: both errors shown, no crash"
