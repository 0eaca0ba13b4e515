#!/usr/bin/env bash
# Installs everything m64 needs on a fresh Debian machine, then configures and builds.
# Idempotent and non-interactive: packages already present are not touched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

pkgs=(clang-19 lld-19 libclang-rt-19-dev libzstd-dev libsodium-dev libgtest-dev libsimde-dev libmicrohttpd-dev libjansson-dev libedit-dev cmake make g++ nodejs npm chromium)
# The aarch64 test (test/targets/aarch64_qemu.sh): qemu, the arm64 C library for the cross
# builds, and arm64 builds of the libraries m64run links (multiarch: dpkg learns arm64).
# M64_NO_ARM64=1 leaves them out; the test then skips, saying what is missing.
if [ "${M64_NO_ARM64:-0}" != 1 ]; then
  pkgs+=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libzstd-dev:arm64 libsodium-dev:arm64
         libmicrohttpd-dev:arm64 libjansson-dev:arm64)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from outside Debian on some machines; only ask apt for them if absent.
command -v node >/dev/null && missing=("${missing[@]/nodejs}")
command -v npm >/dev/null && missing=("${missing[@]/npm}")
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${missing[*]} " == *":arm64 "* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo_cmd dpkg --add-architecture arm64
  fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# wasm2c from the pinned npm wabt (Debian's wabt lacks SIMD + memory64 support).
tc="$root/compiler/toolchain"
if [ ! -x "$tc/node_modules/.bin/wasm2c" ] || ! cmp -s "$tc/package-lock.json" "$tc/node_modules/.package-lock.json.m64"; then
  echo "setup: installing pinned npm tools (wabt) from compiler/toolchain/package-lock.json"
  (cd "$tc" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$tc/package-lock.json" "$tc/node_modules/.package-lock.json.m64"
fi
# playwright-core drives Debian's chromium in the browser test; it must never fetch a browser.
tw="$root/test/web"
if [ ! -d "$tw/node_modules/playwright-core" ] || ! cmp -s "$tw/package-lock.json" "$tw/node_modules/.package-lock.json.m64"; then
  echo "setup: installing pinned npm playwright-core from test/web/package-lock.json"
  (cd "$tw" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$tw/package-lock.json" "$tw/node_modules/.package-lock.json.m64"
fi

# the openai client drives m64run --server in its test (test/server/server_test.mjs)
ts="$root/test/server"
if [ ! -d "$ts/node_modules/openai" ] || ! cmp -s "$ts/package-lock.json" "$ts/node_modules/.package-lock.json.m64"; then
  echo "setup: installing pinned npm openai from test/server/package-lock.json"
  (cd "$ts" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$ts/package-lock.json" "$ts/node_modules/.package-lock.json.m64"
fi

# zstd's own sources from Debian (apt-get source libzstd) for the page's zstd decoder,
# which the build compiles to wasm (web/zstd/).
bash "$root/web/zstd/fetch_source.sh"

build_type="${M64_BUILD_TYPE:-Release}"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
cmake --build "$root/build" -j"$(nproc)"
