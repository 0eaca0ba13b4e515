#!/usr/bin/env bash
# Fresh machine to test results in one command: setup (deps + build), then every test through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/cmd/setup.sh"
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" "$@"

# Hardening (issue 5), each in its own build directory; M64_HARDENING=0 skips both.
[ "${M64_HARDENING:-1}" = 0 ] && exit 0
# 1. ASan + UBSan over the whole suite but the `large` label (a >4 GiB model under ASan
#    takes far too long). The runtime catches wasm traps with its own SIGSEGV handler, so
#    ASan must leave SIGSEGV/SIGBUS to it (a real crash still ends the test).
export CC=clang-19 CXX=clang++-19
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DM64_SANITIZE=ON >/dev/null
cmake --build "$root/build-asan" -j"$(nproc)"
(cd "$root/build-asan" &&
  ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1 \
  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$(nproc)" -LE large)
# 2. libFuzzer: every harness replays its corpus, then fuzzes for M64_FUZZ_SECONDS (default
#    30) each; long runs: bench/fuzz.
cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DM64_FUZZ=ON \
  -DM64_FUZZ_SECONDS="${M64_FUZZ_SECONDS:-30}" >/dev/null
cmake --build "$root/build-fuzz" -j"$(nproc)" --target fuzz_gguf fuzz_bundle fuzz_tokenizer fuzz_build m64-fuzz-seeds
(cd "$root/build-fuzz" && ctest --output-on-failure -L '^fuzz' -R '^fuzz_')
