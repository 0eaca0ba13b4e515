#!/usr/bin/env bash
# Fresh machine to generated text in one command: setup (deps + build), then compile a
# default model into a bundle and run it greedily.
#   default model: ../shared/models/stories260K.gguf when present, else a model from the
#   project's own synthetic generator (random weights: the text is gibberish by design).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/cmd/setup.sh"
bin="$root/build"
out="$root/out"
mkdir -p "$out"

model="$root/../shared/models/stories260K.gguf"
prompt="${M64_DEMO_PROMPT:-Once upon a time}"
if [ -f "$model" ]; then
  echo "demo: using the trained model $model"
else
  model="$out/synthetic-tiny.gguf"
  echo "demo: ../shared/models is absent; using a synthetic model from the project's generator ($model)"
  "$bin/test/support/m64-synth" --shape tiny --type Q8_0 -o "$model"
fi

"$bin/cmd/m64c" build "$model" -o "$out/demo.m64"
"$bin/cmd/m64c" info "$out/demo.m64" | sed -n '1,/^sections/p' | head -30
echo
echo "demo: m64run $out/demo.m64 -p \"$prompt\" -n 64 --temp 0"
"$bin/cmd/m64run" "$out/demo.m64" -p "$prompt" -n 64 --temp 0
