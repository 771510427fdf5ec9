#!/usr/bin/env bash
# nibble-chat's scripted session, headless: under Xvfb, the window drawn by Vulkan on lavapipe, the
# app loads the bundled model, sends a prompt, prints the answer, regenerates it (the KV cache then
# holds the old answer: only the prompt's last token is run again), saves the conversation and a
# screenshot. Both answers must equal `nibble generate --chat`'s greedy output for the same prompt
# and model, the saved JSON must hold them, and the screenshot must be a real frame, not a blank.
# $1: the nibble binary; nibble-chat is built beside it (exit 77, "skipped", when the build has no
# app: NIBBLE_APP=OFF or NIBBLE_VULKAN=OFF).
set -euo pipefail
nibble="$1"
chat="$(dirname "$nibble")/nibble-chat"
if [[ ! -x "$chat" ]]; then
  echo "SKIP: $chat not built (NIBBLE_APP or NIBBLE_VULKAN is OFF)"
  exit 77
fi
for tool in xvfb-run identify jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (Debian: xvfb, imagemagick, jq)"; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="$work"  # Mesa's WSI wants one
lavapipe=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [[ -f "$lavapipe" ]]; then export VK_ICD_FILENAMES="$lavapipe" VK_DRIVER_FILES="$lavapipe"; fi

model=models/kjv-tiny
# The engine on the CPU keeps this test to seconds on CI's two cores; the window is Vulkan anyway.
backend="${NIBBLE_CHAT_TEST_BACKEND:-cpu}"
prompt="In the beginning God created the heaven and the earth."
common=(-m "$model" --backend "$backend" -n 32 --temp 0)

"$nibble" generate --chat "${common[@]}" -p "$prompt" >"$work/expected.txt" 2>"$work/generate.log" ||
  { cat "$work/generate.log"; echo "FAIL: nibble generate"; exit 1; }

xvfb-run -a -s "-screen 0 1280x800x24" \
  "$chat" "${common[@]}" -p "$prompt" --regenerate --size 1280x800 --screenshot "$work/shot.png" \
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

# A real frame: the requested size, many colours (text is anti-aliased) and real contrast.
read -r width height colours deviation < <(identify -format '%w %h %k %[fx:standard_deviation]\n' "$work/shot.png")
echo "screenshot: ${width}x${height}, $colours colours, standard deviation $deviation"
if [[ "$width" != 1280 || "$height" != 800 ]]; then echo "FAIL: screenshot is ${width}x${height}"; exit 1; fi
if ((colours < 64)); then echo "FAIL: screenshot has only $colours colours (blank?)"; exit 1; fi
if ! awk -v d="$deviation" 'BEGIN { exit !(d > 0.05) }'; then
  echo "FAIL: screenshot standard deviation $deviation (blank?)"
  exit 1
fi
echo "PASS: answer and regenerated answer ($answer_chars characters) match nibble generate; JSON saved; screenshot is a real frame"
