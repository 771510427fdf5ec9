#!/bin/sh
# Extracts the King James Bible that Debian's bible-kjv / bible-kjv-text packages ship into a
# plain-text training corpus: one verse per line (verse numbers dropped), a blank line between
# chapters. The `bible` program prints the whole book for the range Gen1:1-Rev22:21; a line
# width of 100000 keeps every verse on one line, and verse lines are the only indented ones.
# Usage: tools/corpus_kjv.sh [OUT]   (default .dev/kjv.txt)
set -eu
out=${1:-.dev/kjv.txt}
command -v bible >/dev/null || { echo "error: 'bible' not found (apt-get install bible-kjv)" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
bible -l100000 "Gen1:1-Rev22:21" | awk '
  /^  [0-9]+ / { sub(/^  [0-9]+ /, ""); print; verses++; next }
  /^[^ ].* [0-9]+$/ { if (verses) print "" }   # a chapter heading such as "Genesis 1"
  END { if (verses != 31102) { print "error: expected 31102 verses, got " verses > "/dev/stderr"; exit 2 } }
' > "$out"
echo "$out: $(wc -l < "$out") lines, $(wc -c < "$out") bytes (bible-kjv-text $(dpkg-query -W -f='${Version}' bible-kjv-text 2>/dev/null || echo unknown))"
