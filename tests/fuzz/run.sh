#!/usr/bin/env bash
# Runs the libFuzzer targets one after another, each for a while, on a
# scratch copy of its corpus, and sums up what they did.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     # default: 60 s, every target
#   tests/fuzz/run.sh 300 http params           # fuzz_http and fuzz_params
#   tests/fuzz/run.sh --update-corpus 600 rfb   # also merge what is new
#   tests/fuzz/run.sh --keep 30 http            # keep the scratch folder
#
# The fuzzers are built in build/clang (BUILD=DIR for another; set up with
# `CC=clang meson setup build/clang --buildtype=debug -Dwerror=true`, as
# bootstrap.sh does, when it does not exist). Each target runs on a copy of
# tests/fuzz/corpus/NAME (with tests/fuzz/dict/NAME.dict when there is one);
# the repository's corpus is only written with --update-corpus, which
# merges in the new inputs that add coverage (libFuzzer's -merge=1; their
# names are hashes). Findings (crash-*, leak-*, timeout-*, oom-* files) stay
# in the scratch folder, whose path is printed; a run that found nothing
# leaves nothing behind. Exits 1 when anything was found.
#
# Reproduce a finding: BUILD/tests/fuzz/fuzz_NAME FILE (or fuzz_NAME_replay
# FILE with any compiler). A fixed bug's input belongs in the corpus.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUZZ=$ROOT/tests/fuzz
BUILD=${BUILD:-$ROOT/build/clang}
update=0
keep=0

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --update-corpus) update=1 ;;
    --keep) keep=1 ;;
    -h | --help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
    shift
done
seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
[ "$seconds" -gt 0 ] || { echo "run.sh: SECONDS must be at least 1" >&2; exit 2; }

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for d in "$FUZZ"/corpus/*/; do
        targets+=("$(basename "$d")")
    done
fi
for t in "${targets[@]}"; do
    t=${t#fuzz_}
    [ -d "$FUZZ/corpus/$t" ] || { echo "run.sh: no target $t (no tests/fuzz/corpus/$t)" >&2; exit 2; }
done
targets=("${targets[@]#fuzz_}")

if [ ! -d "$BUILD" ]; then
    echo "run.sh: setting up $BUILD" >&2
    CC=clang meson setup "$BUILD" "$ROOT" --buildtype=debug -Dwerror=true >/dev/null
fi
if ! out=$(ninja -C "$BUILD" "${targets[@]/#/tests/fuzz/fuzz_}" 2>&1); then
    printf '%s\n' "$out" | tail -20 >&2
    echo "run.sh: build failed (is $BUILD a clang build with libFuzzer?)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/porthole-fuzz.XXXXXX")
rows=()
found_any=0

# The value of libFuzzer's final "stat::NAME: N" line; when a crash ended
# the run before it, what the progress lines ("#N ...") and the time say.
fuzz_stat() { # LOG NAME ELAPSED_S
    local v
    v=$(sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -1)
    if [ -z "$v" ]; then
        case $2 in
        number_of_executed_units) v=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$1" | tail -1) ;;
        average_exec_per_sec) v=$(($(fuzz_stat "$1" number_of_executed_units) / ($3 > 0 ? $3 : 1))) ;;
        new_units_added) v=$(grep -c '^#[0-9]*.*NEW ' "$1" || true) ;;
        esac
    fi
    echo "${v:-0}"
}

for t in "${targets[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz_$t
    dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/findings"
    cp -R "$FUZZ/corpus/$t/." "$dir/corpus/"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1
        -artifact_prefix="$dir/findings/")
    [ -f "$FUZZ/dict/$t.dict" ] && args+=(-dict="$FUZZ/dict/$t.dict")
    before=$(find "$dir/corpus" -type f | wc -l)
    echo "==> fuzz_$t: ${seconds} s from $before seeds" >&2
    started=$SECONDS
    set +e
    (cd "$dir" && "$bin" "${args[@]}" "$dir/corpus") >"$dir/log" 2>&1
    rc=$?
    set -e
    elapsed=$((SECONDS - started))
    findings=$(find "$dir/findings" -type f | wc -l)
    if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then
        findings="?" # it stopped without an artifact: see the log
    fi
    if [ "$findings" != 0 ]; then
        found_any=1
        echo "    found: $(find "$dir/findings" -type f | tr '\n' ' ')(log: $dir/log)" >&2
        grep -m3 -E 'ERROR: |invariant failed|SUMMARY' "$dir/log" | sed 's/^/    /' >&2 || true
    fi
    if [ "$update" -eq 1 ]; then
        (cd "$dir" && "$bin" -merge=1 "$FUZZ/corpus/$t" "$dir/corpus") >>"$dir/log" 2>&1
    fi
    rows+=("$(printf '%-12s %8s %12s %10s %8s %9s' "$t" "$elapsed" \
        "$(fuzz_stat "$dir/log" number_of_executed_units "$elapsed")" \
        "$(fuzz_stat "$dir/log" average_exec_per_sec "$elapsed")" \
        "$(fuzz_stat "$dir/log" new_units_added "$elapsed")" "$findings")")
done

printf '\n%-12s %8s %12s %10s %8s %9s\n' target seconds execs execs/s new findings
printf '%s\n' "${rows[@]}"
if [ "$found_any" -eq 1 ] || [ "$keep" -eq 1 ]; then
    echo "scratch corpora, logs and findings: $work"
else
    rm -rf "$work"
fi
[ "$found_any" -eq 0 ]
