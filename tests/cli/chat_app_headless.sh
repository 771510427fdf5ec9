#!/usr/bin/env bash
# nibble-chat, headless: on an Xvfb display, the window drawn by Vulkan on lavapipe.
# 1. A scripted session loads the bundled model, sends a prompt, prints the answer, regenerates it
#    (the KV cache then holds the old answer: only the prompt's last token runs again), saves the
#    conversation and a screenshot. Both answers must equal `nibble generate --chat`'s greedy
#    output for the same prompt and model, the saved JSON must hold them, and the screenshot must
#    be a real frame, not a blank one.
# 2. Errors are shown in the window and survived: a folder that is not a model, and a model that
#    does not fit the device (a KV cache far beyond lavapipe's heap) each end a scripted session
#    with code 2 and a message naming the problem, after drawing it.
# $1: the nibble binary; nibble-chat is built beside it (exit 77, "skipped", when the build has no
# app: NIBBLE_APP=OFF or NIBBLE_VULKAN=OFF).
set -euo pipefail
nibble="$1"
chat="$(dirname "$nibble")/nibble-chat"
if [[ ! -x "$chat" ]]; then
  echo "SKIP: $chat not built (NIBBLE_APP or NIBBLE_VULKAN is OFF)"
  exit 77
fi
for tool in Xvfb identify jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (Debian: xvfb, imagemagick, jq)"; exit 1; }
done

work="$(mktemp -d)"
xvfb_pid=""
trap '[[ -n "$xvfb_pid" ]] && kill "$xvfb_pid" 2>/dev/null; rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="$work"  # Mesa's WSI wants one
lavapipe=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [[ -f "$lavapipe" ]]; then export VK_ICD_FILENAMES="$lavapipe" VK_DRIVER_FILES="$lavapipe"; fi

# One X server for the whole test; -displayfd makes Xvfb pick a free display itself (no race with
# tests running beside this one) and write its number once it accepts clients.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 100); do [[ -s "$work/display" ]] && break; sleep 0.1; done
[[ -s "$work/display" ]] || { cat "$work/xvfb.log"; echo "FAIL: Xvfb did not start"; exit 1; }
export DISPLAY=":$(cat "$work/display")"

# is_real_frame PNG: the window's size, many colours (text is anti-aliased) and real contrast.
is_real_frame() {
  local width height colours deviation
  read -r width height colours deviation < <(identify -format '%w %h %k %[fx:standard_deviation]\n' "$1")
  echo "$(basename "$1"): ${width}x${height}, $colours colours, standard deviation $deviation"
  [[ "$width" == 1280 && "$height" == 800 ]] && ((colours >= 64)) &&
    awk -v d="$deviation" 'BEGIN { exit !(d > 0.05) }'
}

# --- 1. the answer, regenerated, saved, drawn ---------------------------------------------------
model=models/kjv-tiny
# The engine on the CPU keeps this test to seconds on CI's two cores; the window is Vulkan anyway.
backend="${NIBBLE_CHAT_TEST_BACKEND:-cpu}"
prompt="In the beginning God created the heaven and the earth."
common=(-m "$model" --backend "$backend" -n 32 --temp 0)

"$nibble" generate --chat "${common[@]}" -p "$prompt" >"$work/expected.txt" 2>"$work/generate.log" ||
  { cat "$work/generate.log"; echo "FAIL: nibble generate"; exit 1; }

"$chat" "${common[@]}" -p "$prompt" --regenerate --size 1280x800 --screenshot "$work/chat.png" \
  --save "$work/chat.json" --exit-after-answer >"$work/answers.txt" 2>"$work/chat.log" ||
  { cat "$work/chat.log"; echo "FAIL: nibble-chat exited with an error"; exit 1; }

# `generate` prints the prompt, then the answer and a newline; nibble-chat prints each answer and a
# newline: the answer, then (--regenerate, greedy) the same answer again.
if [[ "$(head -c ${#prompt} "$work/expected.txt")" != "$prompt" ]]; then
  echo "FAIL: nibble generate did not echo the prompt"
  exit 1
fi
tail -c +$((${#prompt} + 1)) "$work/expected.txt" >"$work/answer.txt"
cat "$work/answer.txt" "$work/answer.txt" >"$work/expected_answers.txt"
if ! cmp -s "$work/expected_answers.txt" "$work/answers.txt"; then
  echo "FAIL: nibble-chat's answers (first, regenerated) differ from nibble generate's"
  diff "$work/expected_answers.txt" "$work/answers.txt" || true
  exit 1
fi
answer_chars=$(wc -m <"$work/answer.txt")
if ((answer_chars < 10)); then
  echo "FAIL: the answer is almost empty ($answer_chars characters)"
  exit 1
fi

# The saved conversation holds the prompt and the (regenerated, so still one) answer.
if [[ "$(jq '.messages | length' "$work/chat.json")" != 2 ]]; then
  echo "FAIL: the saved conversation should hold 2 messages"
  cat "$work/chat.json"
  exit 1
fi
jq -r '.messages[0].content' "$work/chat.json" >"$work/saved_prompt.txt"
jq -r '.messages[1].content' "$work/chat.json" >"$work/saved_answer.txt"
if [[ "$(cat "$work/saved_prompt.txt")" != "$prompt" ]] || ! cmp -s "$work/saved_answer.txt" "$work/answer.txt"; then
  echo "FAIL: the saved conversation does not hold the prompt and the answer"
  cat "$work/chat.json"
  exit 1
fi
is_real_frame "$work/chat.png" || { echo "FAIL: the screenshot is not a real frame"; exit 1; }
echo "ok: answer and regenerated answer ($answer_chars characters) match nibble generate; JSON saved"

# --- 2. errors in the window, no crash ----------------------------------------------------------
# expect_error NAME PATTERN ARGS...: nibble-chat ARGS fails with code 2, stderr matching PATTERN,
# and its screenshot (the error banner) is a real frame.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  local rc=0
  "$chat" "$@" -p "hello" --size 1280x800 --screenshot "$work/$name.png" --exit-after-answer \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
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
  is_real_frame "$work/$name.png" || { echo "FAIL [$name]: the screenshot is not a real frame"; exit 1; }
  echo "ok [$name]: $(grep -m1 error "$work/$name.err")"
}
mkdir "$work/not-a-model"
echo "just a file" >"$work/not-a-model/notes.txt"
expect_error not-a-model "not-a-model.*has no config.json" -m "$work/not-a-model" --backend cpu
expect_error too-big "needs .* GiB .* but .* free" -m "$model" --backend vulkan --ctx 4000000

# --- 3. a lost device ---------------------------------------------------------------------------
# Simulated (NIBBLE_VK_SIMULATE_DEVICE_LOSS=3: the engine's 3rd step wait reports
# VK_ERROR_DEVICE_LOST, see docs/RELIABILITY.md), after two tokens of the answer. Alone, it ends the
# session like any error. With --reload-on-error cpu the app then reloads the model on the CPU, as
# the Reload button does, and answers the prompt again: that answer must be the CPU's greedy one,
# and the window must still show the error's banner (its background colour, 89,31,31 in sRGB).
lost=(-m "$model" --backend vulkan --quant none -n 32 --temp 0)
NIBBLE_VK_SIMULATE_DEVICE_LOSS=3 expect_error device-lost "Generation failed: the Vulkan device was lost" "${lost[@]}"

"$nibble" generate --chat -m "$model" --backend cpu --quant none -n 32 --temp 0 -p "$prompt" \
  >"$work/cpu_expected.txt" 2>"$work/cpu_generate.log" ||
  { cat "$work/cpu_generate.log"; echo "FAIL: nibble generate on the CPU"; exit 1; }
tail -c +$((${#prompt} + 1)) "$work/cpu_expected.txt" >"$work/cpu_answer.txt"
rc=0
NIBBLE_VK_SIMULATE_DEVICE_LOSS=3 "$chat" "${lost[@]}" -p "$prompt" --reload-on-error cpu \
  --size 1280x800 --screenshot "$work/recovered.png" --exit-after-answer \
  >"$work/recovered.txt" 2>"$work/recovered.err" || rc=$?
if ((rc != 2)) || ! grep -q "error: Generation failed: the Vulkan device was lost" "$work/recovered.err"; then
  cat "$work/recovered.err"
  echo "FAIL [recovered]: exit code $rc (want 2: an answer failed), or no lost device reported"
  exit 1
fi
if ! cmp -s "$work/cpu_answer.txt" "$work/recovered.txt"; then
  cat "$work/recovered.err"
  echo "FAIL [recovered]: the answer after reloading on the CPU differs from nibble generate's"
  diff "$work/cpu_answer.txt" "$work/recovered.txt" || true
  exit 1
fi
# banner_pixels PNG: how many pixels have the error banner's background colour.
banner_pixels() {
  convert "$1" -fill black +opaque "srgb(89,31,31)" -fill white -opaque "srgb(89,31,31)" \
    -format '%[fx:int(mean*w*h+0.5)]' info:
}
is_real_frame "$work/recovered.png" || { echo "FAIL [recovered]: the screenshot is not a real frame"; exit 1; }
for shot in device-lost recovered; do
  pixels=$(banner_pixels "$work/$shot.png")
  if ((pixels < 5000)); then
    echo "FAIL [$shot]: no error banner in the window ($pixels pixels of its colour)"
    exit 1
  fi
done
if (($(banner_pixels "$work/chat.png") != 0)); then
  echo "FAIL: the banner colour test is not specific: the error-free frame has it too"
  exit 1
fi
echo "ok [recovered]: the lost device shown ($pixels banner pixels), then the CPU's answer after Reload"
[[ -n "${NIBBLE_CHAT_TEST_KEEP:-}" ]] && cp "$work"/*.png "$NIBBLE_CHAT_TEST_KEEP"/

echo "PASS: nibble-chat answers as nibble generate does, saves, draws, and shows errors, a lost device included"
