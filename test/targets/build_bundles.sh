#!/usr/bin/env bash
# Fixture of the targets tests: BIN_DIR OUT_DIR. One synthetic GGUF, built through the real
# m64c command line with several --target lists (the key is the tests' M64_LOCAL_KEY):
#   three.m64     x86_64-v4vnni-linux,x86_64-v3-linux,aarch64-linux
#   three-rev.m64 the same three in the opposite order (the pick must not depend on it)
#   v3.m64        x86_64-linux,x86_64-v3-linux
#   arm.m64       aarch64-linux only
# aarch64-linux is cross-compiled; without the arm64 C headers (Debian libc6-dev-arm64-cross)
# the bundles get the x86 targets only and OUT_DIR/no-aarch64 says why.
set -euo pipefail
bin=$1 final=$2
out="$final.new"
rm -rf "$out" && mkdir -p "$out"
m64c="$bin/cmd/m64c"
"$bin/test/support/m64-synth" --shape tiny --type Q8_0 --seed 21 -o "$out/tiny.gguf"
arm=",aarch64-linux" arm_rev="aarch64-linux,"
if [ ! -f /usr/aarch64-linux-gnu/include/stdint.h ]; then
  echo "no arm64 C headers at /usr/aarch64-linux-gnu/include (install libc6-dev-arm64-cross)" >"$out/no-aarch64"
  arm="" arm_rev=""
fi
"$m64c" build -q "$out/tiny.gguf" -o "$out/three.m64" --target "x86_64-v4vnni-linux,x86_64-v3-linux$arm"
"$m64c" build -q "$out/tiny.gguf" -o "$out/three-rev.m64" --target "${arm_rev}x86_64-v3-linux,x86_64-v4vnni-linux"
"$m64c" build -q "$out/tiny.gguf" -o "$out/v3.m64" --target "x86_64-linux,x86_64-v3-linux"
[ -n "$arm" ] && "$m64c" build -q "$out/tiny.gguf" -o "$out/arm.m64" --target aarch64-linux
rm -rf "$final" && mv "$out" "$final"
echo "targets bundles in $final"
