#!/usr/bin/env bash
# ctest fixture for the `large` label: a synthetic Q8_0 LLaMA whose weights exceed 4 GiB
# (24 layers of a 7B shape with 8 KV heads: ~4.5 GiB), compiled by the real m64c. The
# model cannot fit a wasm32 workspace, so running it must page.
set -euo pipefail
bin="$1" out="$2"
mkdir -p "$out"
free_mb=$(df -Pm "$out" | awk 'NR==2 {print $4}')
if ((free_mb < 12000)); then
  echo "build_large: only ${free_mb} MB free; the large test needs ~10 GB" >&2
  exit 1
fi
# Kept between runs: the GGUF until the generator changes, the bundle until m64c or the
# key that marks its native code (M64_LOCAL_KEY, set by ctest) does.
if [ ! -s "$out/large.gguf" ] || [ "$bin/test/support/m64-synth" -nt "$out/large.gguf" ]; then
  "$bin/test/support/m64-synth" --dim 4096 --ffn 11008 --layers 24 --heads 32 --kv-heads 8 \
    --vocab 32000 --ctx 256 --type Q8_0 --seed 21 -o "$out/large.gguf"
fi
if [ ! -s "$out/large.m64" ] || [ "$bin/cmd/m64c" -nt "$out/large.m64" ] || [ "$out/large.gguf" -nt "$out/large.m64" ] ||
  [ "${M64_LOCAL_KEY:-/nonexistent}" -nt "$out/large.m64" ]; then
  "$bin/cmd/m64c" build -q "$out/large.gguf" -o "$out/large.m64"
fi
ls -l "$out/large.gguf" "$out/large.m64"
