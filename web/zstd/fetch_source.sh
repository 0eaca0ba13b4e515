#!/usr/bin/env bash
# Fetches zstd's sources from Debian (the libzstd source package, with apt-get source) into
# DEST (default .deps/libzstd beside this project), for the page's zstd decoder
# (web/zstd/CMakeLists.txt builds its decompressor to wasm). Idempotent: does nothing when
# DEST already holds them. The deb-src list is private to this script (derived from the
# machine's own Debian "deb" sources), so the machine's apt configuration is not changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:-$root/.deps/libzstd}"
[ -f "$dest/lib/zstd.h" ] && [ -f "$dest/lib/decompress/zstd_decompress.c" ] && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/src"
# deb-src entries for the suites and mirrors this machine already uses
found=0
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  sed -e 's/^Types:.*deb\b.*/Types: deb-src/' "$f" >"$work/parts/$(basename "$f")"
  found=1
done
if [ -f /etc/apt/sources.list ]; then
  grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$work/parts/list.list" || true
  [ -s "$work/parts/list.list" ] && found=1
fi
[ "$found" = 1 ] || { echo "fetch_source: no Debian apt sources on this machine" >&2; exit 1; }
apt_o=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists"
       -o "APT::Sandbox::User=root")
echo "fetch_source: apt-get source libzstd (Debian's zstd sources) into $dest"
apt-get "${apt_o[@]}" update -qq
# the version of the installed libzstd-dev first, then every other version the lists
# offer (a security update's sources may be missing from a mirror)
ver="$(dpkg-query -W -f='${source:Version}' libzstd-dev 2>/dev/null || true)"
got=0
for v in $ver $(apt-cache "${apt_o[@]}" showsrc libzstd | sed -n 's/^Version: //p'); do
  rm -f "$work"/src/*
  if (cd "$work/src" && apt-get "${apt_o[@]}" source --download-only -qq "libzstd=$v" >/dev/null 2>&1); then got=1; break; fi
done
[ "$got" = 1 ] || { echo "fetch_source: apt-get source libzstd failed for every version offered" >&2; exit 1; }
orig="$(ls "$work"/src/libzstd_*.orig.tar.* | head -n1)"
mkdir -p "$dest"
# the decompressor, its common code, the public headers and the licence only
tar -xf "$orig" -C "$dest" --strip-components=1 --wildcards --no-wildcards-match-slash 'zstd-*/lib/common/*' 'zstd-*/lib/decompress/*' 'zstd-*/lib/zstd.h' \
  'zstd-*/lib/zstd_errors.h' 'zstd-*/LICENSE' 'zstd-*/COPYING'
echo "fetch_source: $(basename "$orig") unpacked"
