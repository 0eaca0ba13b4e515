#!/usr/bin/env bash
# ctest: examples/stream.c (built against this build's libm64.so) prints the greedy text
# that m64run prints for the same prompt, on each bundle it is given.
set -euo pipefail
stream="$1" bin="$2" bundles="$3"
ran=0
for m in stories260K:"Once upon a time" synth-F32:"one two" synth-Q4_K:"one two"; do
  b="$bundles/${m%%:*}.m64" prompt="${m#*:}"
  [ -f "$b" ] || { echo "example_test: $b absent, skipped"; continue; }
  want="$("$bin/cmd/m64run" "$b" -p "$prompt" -n 32 --temp 0 -t 2 2>/dev/null)"
  got="$("$stream" "$b" "$prompt")"
  echo "example_test: ${m%%:*}: $got"
  [ "$prompt$got" = "$want" ] || { echo "example_test: FAIL: m64run printed '$want'"; exit 1; }
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ]
"$stream" "$bundles/none.m64" hi 2>/dev/null && { echo "example_test: FAIL: a missing bundle succeeded"; exit 1; }
echo "example_test: ok ($ran bundles)"
