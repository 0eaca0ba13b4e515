#!/usr/bin/env bash
# Fixture of the security tests: BIN_DIR SOURCE_DIR OUT_DIR CLANG
#   trap.m64             trap_module.c as a bundle, native code from `m64c aot` (local mark)
#   tiny_a.m64, tiny_b.m64  the same synthetic GGUF built twice (reproducibility)
#   tiny_other.m64       the same GGUF built by "another user": marked with other.key (a
#                        stranger's bundle as downloaded)
#   tiny_signed.m64      tiny_other.m64 signed by that stranger's publisher key
#                        (publisher.key / publisher.pub, from m64c keygen)
# The tests' key is OUT_DIR/local.key (M64_LOCAL_KEY), never the user's own.
set -euo pipefail
bin=$1 src=$2 final=$3 clang=$4
out="$final.new"
rm -rf "$out" && mkdir -p "$out"
export M64_LOCAL_KEY="$out/local.key" TMPDIR="$out" # moves with the directory below
"$clang" --target=wasm32 -msimd128 -mbulk-memory -O2 -ffreestanding -nostdlib \
  -I "$src/module" -Wl,--no-entry -Wl,-z,stack-size=65536 -Wl,--max-memory=4294967296 \
  -Xlinker --import-memory=m64,memory -Xlinker --export=__stack_pointer -fuse-ld=lld \
  -o "$out/trap.wasm" "$src/test/security/trap_module.c"
"$bin/test/security/m64-test-bundle" "$out/trap.wasm" "$out/trap.m64"
"$bin/cmd/m64c" aot "$out/trap.m64" -q
"$bin/test/support/m64-synth" --shape tiny --seed 5 -o "$out/tiny.gguf"
"$bin/cmd/m64c" build "$out/tiny.gguf" -o "$out/tiny_a.m64" -q
"$bin/cmd/m64c" build "$out/tiny.gguf" -o "$out/tiny_b.m64" -q
M64_LOCAL_KEY="$out/other.key" "$bin/cmd/m64c" build "$out/tiny.gguf" -o "$out/tiny_other.m64" -q
"$bin/cmd/m64c" keygen -o "$out/publisher" >/dev/null
M64_LOCAL_KEY="$out/other.key" "$bin/cmd/m64c" sign "$out/tiny_other.m64" --key "$out/publisher.key" \
  -o "$out/tiny_signed.m64" -q
# publish only complete artifacts (the tests read them in parallel)
rm -rf "$final" && mv "$out" "$final"
echo "security artifacts in $final"
