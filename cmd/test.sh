#!/usr/bin/env bash
# Fresh machine to test results in one command: setup (deps + build), then every test through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/cmd/setup.sh"
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" "$@"
