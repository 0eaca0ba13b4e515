#!/usr/bin/env bash
# The fuzz harnesses under ctest (and bench/fuzz):
#   run.sh replay HARNESS DIR...            every file in the DIRs through the harness
#   run.sh fuzz HARNESS SECONDS WORK DIR... libFuzzer for SECONDS, corpus in WORK/corpus
#                                           (seeded from the DIRs), crashes in WORK/crashes;
#                                           inputs up to $M64_FUZZ_MAX_LEN bytes (256 KiB)
# A libFuzzer binary replays files given as arguments; the replay driver takes dirs too.
set -euo pipefail
mode=$1 harness=$2
shift 2
case "$mode" in
  replay)
    files=()
    for d in "$@"; do
      [ -d "$d" ] || { echo "run.sh: $d is missing" >&2; exit 1; }
      while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f ! -name '.*' -print0 | sort -z)
    done
    echo "replaying ${#files[@]} inputs through $(basename "$harness")"
    ((${#files[@]})) || exit 0
    # one process per 200 inputs keeps argument lists short
    for ((i = 0; i < ${#files[@]}; i += 200)); do
      "$harness" "${files[@]:i:200}" >/dev/null 2>"${TMPDIR:-/tmp}/m64-replay.$$.log" || {
        cat "${TMPDIR:-/tmp}/m64-replay.$$.log" >&2; rm -f "${TMPDIR:-/tmp}/m64-replay.$$.log"; exit 1; }
    done
    rm -f "${TMPDIR:-/tmp}/m64-replay.$$.log"
    ;;
  fuzz)
    seconds=$1 work=$2
    shift 2
    mkdir -p "$work/corpus" "$work/crashes"
    for d in "$@"; do [ -d "$d" ] && find "$d" -type f ! -name '.*' -exec cp -n {} "$work/corpus/" \; ; done
    name=$(basename "$harness")
    set +e
    "$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len="${M64_FUZZ_MAX_LEN:-262144}" \
      -print_final_stats=1 -artifact_prefix="$work/crashes/" "$work/corpus" 2>"$work/log"
    rc=$?
    set -e
    grep -E "^(stat::number_of_executed_units|stat::new_units_added)|^#[0-9]+ *DONE" "$work/log" | sed "s/^/$name: /"
    echo "$name: corpus $(find "$work/corpus" -type f | wc -l) files"
    if [ $rc -ne 0 ] || [ -n "$(ls -A "$work/crashes")" ]; then
      tail -n 60 "$work/log" >&2
      echo "$name: FOUND A BUG: the input is in $work/crashes; fix it and add the input to" \
           "test/fuzz/regressions/${name#fuzz_}/" >&2
      exit 1
    fi
    ;;
  *) echo "usage: run.sh replay|fuzz ..." >&2; exit 2 ;;
esac
