#!/usr/bin/env bash
# test/fuzz/hostile_corpus.sh BUILD_DIR WORK_DIR [M64RUN...] — a hostile corpus through m64run
# (issue 21: no crash, no false success on any hostile bundle).
#
# Builds a small synthetic model three ways (plain with native code, split into three
# segments, compressed), writes hostile variants of each with m64-hostile (truncations,
# header/table/layer-index fields at boundary values, segments one byte off, layers shrunk
# with their old hash, the native object truncated or with wild ELF fields: see hostile.c),
# and runs each m64run given (default BUILD_DIR/cmd/m64run) on every variant twice: as is,
# and with --trust-bundle-native (which loads the native object). Counts per binary:
#   crash           killed by a signal (SIGSEGV, SIGBUS, SIGABRT, ...)
#   hang            still running after 30 s
#   false success   exit 0 on a variant that must fail (an inconsistent or corrupt bundle)
#   clean error     exit 1 with an "m64run: error:" line
#   ran             exit 0 where that is fine (a label changed, a tolerated ELF byte)
#   other           anything else
# Results per run in WORK_DIR/results.<n>.tsv. Exit status 1 when any crash, hang or false
# success was counted. The key, temp files and verified-bundle stamps stay in WORK_DIR.
set -euo pipefail
build=$(cd "$1" && pwd)
mkdir -p "$2"
work=$(cd "$2" && pwd)
shift 2
runs=("$@")
((${#runs[@]})) || runs=("$build/cmd/m64run")
export M64_LOCAL_KEY="$work/local.key" TMPDIR="$work/tmp" XDG_CACHE_HOME="$work/cache"
mkdir -p "$TMPDIR" "$XDG_CACHE_HOME"
ulimit -c 0

if [ ! -f "$work/models/z.m64" ]; then
  rm -rf "$work/models" && mkdir -p "$work/models"
  "$build/test/support/m64-synth" --shape tiny --seed 5 -o "$work/models/tiny.gguf" >/dev/null
  "$build/cmd/m64c" build "$work/models/tiny.gguf" -o "$work/models/plain.m64" -q
  "$build/cmd/m64c" build "$work/models/tiny.gguf" -o "$work/models/segs.m64" --segment-max 300K -q
  "$build/cmd/m64c" compress "$work/models/plain.m64" -o "$work/models/z.m64" -q
fi
rm -rf "$work/corpus" && mkdir -p "$work/corpus"
"$build/test/fuzz/m64-hostile" "$work/corpus" "$work/models/plain.m64" "$work/models/segs.m64" "$work/models/z.m64"

status=0
n=0
for bin in "${runs[@]}"; do
  n=$((n + 1))
  out="$work/results.$n.tsv"
  : >"$out"
  declare -A count=()
  while IFS=$'\t' read -r file expect what; do
    for trust in "" "--trust-bundle-native"; do
      set +e
      # in a subshell whose stderr is dropped: the shell's own "Bus error" line goes there
      (timeout -k 5 30 "$bin" "$work/corpus/$file" -p hi -n 2 --temp 0 -t 1 $trust \
        >/dev/null 2>"$work/err"; exit $?) 2>/dev/null
      rc=$?
      set -e
      if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then class=hang
      elif [ $rc -gt 128 ]; then class="crash"
      elif [ $rc -eq 0 ] && [ "$expect" = fail ]; then class="false success"
      elif [ $rc -eq 0 ]; then class=ran
      elif [ $rc -eq 1 ] && grep -q "^m64run: error: " "$work/err"; then class="clean error"
      else class=other
      fi
      count[$class]=$((${count[$class]:-0} + 1))
      msg=$(grep -m1 "error" "$work/err" | cut -c1-300 || true)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$file" "$expect" "${trust:-default}" "$rc" "$class" "$what" "$msg" >>"$out"
    done
  done <"$work/corpus/manifest"
  total=$(wc -l <"$out")
  echo "== $bin: $total runs of $(wc -l <"$work/corpus/manifest") variants"
  for class in crash hang "false success" "clean error" ran other; do
    printf '  %-14s %d\n' "$class" "${count[$class]:-0}"
  done
  reserved=$(awk -F'\t' '$5 == "false success" && $6 ~ /reserved|padding/' "$out" | wc -l)
  printf '  (false successes on reserved or padding bytes: %d; on sizes, offsets, counts and the rest: %d)\n' \
    "$reserved" $((${count[false success]:-0} - reserved))
  for class in crash hang "false success" other; do
    [ "${count[$class]:-0}" -gt 0 ] || continue
    echo "  -- $class (first 15):"
    awk -F'\t' -v c="$class" '$5 == c && n++ < 15 {printf "     %s %s rc=%s: %s | %s\n", $1, $3, $4, $6, $7}' "$out"
  done
  if [ "${count[crash]:-0}" -gt 0 ] || [ "${count[hang]:-0}" -gt 0 ] || [ "${count[false success]:-0}" -gt 0 ]; then
    status=1
  fi
  unset count
done
exit $status
