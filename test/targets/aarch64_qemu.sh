#!/usr/bin/env bash
# The aarch64 native code for real: BIN_DIR SOURCE_DIR OUT_DIR SHARED_MODELS.
# Cross-builds m64run for arm64 (cmd/aarch64-linux.cmake, M64_RUNTIME_ONLY), builds bundles
# with native code for this host and for aarch64-linux, and runs each with m64run here and
# with the arm64 m64run under qemu-aarch64: the same greedy tokens, or the test fails.
# Models: a synthetic Q4_K one (the K-quant i8 paths) always, stories260K when present.
# Exit 77 (ctest: skipped) with the reason when a tool or library for arm64 is missing.
set -euo pipefail
bin=$1 src=$2 out=$3 shared=$4
skip() { echo "SKIP: $*"; exit 77; }
command -v qemu-aarch64 >/dev/null || skip "no qemu-aarch64 (Debian: qemu-user)"
[ -f /usr/aarch64-linux-gnu/include/stdint.h ] || skip "no arm64 C headers (Debian: libc6-dev-arm64-cross)"
ls /usr/lib/gcc-cross/aarch64-linux-gnu/*/libgcc.a >/dev/null 2>&1 || skip "no arm64 libgcc (Debian: gcc-aarch64-linux-gnu)"
for l in libzstd.so libsodium.so; do
  [ -e "/usr/lib/aarch64-linux-gnu/$l" ] ||
    skip "no arm64 $l (Debian: dpkg --add-architecture arm64; apt-get install libzstd-dev:arm64 libsodium-dev:arm64)"
done
# qemu runs the arm64 m64run with the multiarch arm64 C library those packages bring
# (/lib/ld-linux-aarch64.so.1); with `-L /usr/aarch64-linux-gnu` instead, Debian 12's
# qemu 7.2 never returns from pthread_create.
[ -e /lib/ld-linux-aarch64.so.1 ] || skip "no /lib/ld-linux-aarch64.so.1 (Debian: libc6:arm64)"

mkdir -p "$out"
echo "== cross-building m64run for arm64 in $out/build"
cmake -S "$src" -B "$out/build" -DCMAKE_TOOLCHAIN_FILE="$src/cmd/aarch64-linux.cmake" -DM64_RUNTIME_ONLY=ON \
  -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
cmake --build "$out/build" --target m64run -j2 >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
arm_run="$out/build/cmd/m64run"
file "$arm_run" 2>/dev/null | grep -q aarch64 || { echo "$arm_run is not an arm64 executable"; exit 1; }

m64c="$bin/cmd/m64c"
host=$("$m64c" --help | sed -n 's/.*native code for this host (\(.*\))$/\1/p')
[ -n "$host" ] || { echo "cannot tell this host's target from m64c --help"; exit 1; }
"$bin/test/support/m64-synth" --shape small --type Q4_K --seed 23 -o "$out/synth-Q4_K.gguf"
models=("$out/synth-Q4_K.gguf")
if [ -f "$shared/stories260K.gguf" ]; then models+=("$shared/stories260K.gguf"); else
  echo "($shared/stories260K.gguf absent: the synthetic model only)"; fi

fail=0
for gguf in "${models[@]}"; do
  name=$(basename "$gguf" .gguf)
  "$m64c" build -q "$gguf" -o "$out/$name.m64" --target "$host,aarch64-linux"
  "$bin/cmd/m64run" "$out/$name.m64" -p "Once upon a time" -n 32 --temp 0 --json -v \
    >"$out/$name.x86.out" 2>"$out/$name.x86.err" || { cat "$out/$name.x86.err"; exit 1; }
  qemu-aarch64 "$arm_run" "$out/$name.m64" -p "Once upon a time" -n 32 --temp 0 --json -v \
    >"$out/$name.arm.out" 2>"$out/$name.arm.err" || { cat "$out/$name.arm.err"; exit 1; }
  grep -q "native code $host," "$out/$name.x86.err" || { echo "x86 run did not use $host code"; cat "$out/$name.x86.err"; exit 1; }
  grep -q "native code aarch64-linux," "$out/$name.arm.err" || { echo "qemu run did not use aarch64-linux code"; cat "$out/$name.arm.err"; exit 1; }
  x=$(tail -1 "$out/$name.x86.out" | grep -o '"prompt_tokens":\[[^]]*\],"tokens":\[[^]]*\]')
  a=$(tail -1 "$out/$name.arm.out" | grep -o '"prompt_tokens":\[[^]]*\],"tokens":\[[^]]*\]')
  echo "$name, $host:        $x"
  echo "$name, aarch64 (qemu): $a"
  if [ -z "$x" ] || [ "$x" != "$a" ]; then echo "MISMATCH on $name"; fail=1; fi
done
exit $fail
