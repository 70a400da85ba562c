#!/usr/bin/env bash
# Fuzzes every target of tests/fuzz for SECONDS each, two at a time:
#
#   tests/fuzz/run.sh SECONDS [TARGET...]      # TARGET: body rules config describe render
#
# Configures build-fuzz (CC=clang, -DCRMGATE_FUZZ=ON -DCRMGATE_TESTS=ON), builds
# the libFuzzer binaries, and runs each over its committed corpus
# (tests/fuzz/corpus/NAME, read only) with new inputs written to a scratch
# directory (build-fuzz/fuzz-out/RUN/NAME/corpus, or $CRMGATE_FUZZ_OUT/...).
# libFuzzer runs in fork mode and goes on after a crash, so that one run
# reports every distinct crash it finds (files in .../NAME/artifacts).
#
# Prints per target: executions, final coverage (cov: of the last status
# line), and the crash files. Exits 1 if any target crashed (or timed out,
# leaked or ran out of memory), 2 on a usage or build error.
#
# Environment: CRMGATE_FUZZ_JOBS (default 2) targets at a time;
# CRMGATE_FUZZ_ALLOW tolerates named known-bug checks (see README.md);
# FUZZ_FLAGS extra libFuzzer flags.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
all_targets=(body rules config describe render)

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
    echo "usage: $0 SECONDS [TARGET...]   (targets: ${all_targets[*]})" >&2
    exit 2
fi
seconds=$1
shift
targets=("$@")
[ ${#targets[@]} -ne 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target: $t" >&2; exit 2; }
done
jobs=${CRMGATE_FUZZ_JOBS:-2}

command -v clang >/dev/null || { echo "clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
build="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRMGATE_FUZZ=ON -DCRMGATE_TESTS=ON >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}" >/dev/null

run="${CRMGATE_FUZZ_OUT:-$build/fuzz-out}/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "fuzzing ${targets[*]} for ${seconds}s each, $jobs at a time; output in $run"

# leaks are findings; UBSan already aborts (-fno-sanitize-recover)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

fuzz_one() { # target
    local t=$1 dir="$run/$1"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    local dict=()
    [ -f "$root/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$t.dict")
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    "$build/tests/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 -max_total_time="$seconds" \
        -artifact_prefix="$dir/artifacts/" "${dict[@]}" ${FUZZ_FLAGS:-} \
        "$dir/corpus" "$root/tests/fuzz/corpus/$t" >"$dir/log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    echo "  started $t"
    fuzz_one "$t" &
    running=$((running + 1))
done
wait || true

status=0
printf '\n%-10s %14s %8s %8s  %s\n' target executions cov corpus findings
for t in "${targets[@]}"; do
    dir="$run/$t"
    # fork mode: "#EXECS: cov: N ft: N corp: N exec/s N oom/timeout/crash: a/b/c time: Ns job: N ..."
    last=$(grep -aE '^#[0-9]+: cov: ' "$dir/log" | tail -1 || true)
    if [ -z "$last" ]; then # not fork mode (e.g. FUZZ_FLAGS=-fork=0): "#EXECS ... cov: N ..."
        last=$(grep -aE '^#[0-9]+.*cov: [0-9]+' "$dir/log" | tail -1 || true)
    fi
    execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(find "$dir/corpus" -type f | wc -l)
    mapfile -t found < <(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | sort)
    slow=$(find "$dir/artifacts" -type f -name 'slow-unit-*' | wc -l)
    note="none"
    if [ ${#found[@]} -ne 0 ]; then
        status=1
        note="${#found[@]} file(s):"
    fi
    [ "$slow" -eq 0 ] || note="$note ($slow slow units)"
    printf '%-10s %14s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "$corp" "$note"
    # distinct findings: the first invariant or sanitizer line of (at most 30) crash files, replayed
    if [ ${#found[@]} -ne 0 ]; then
        for f in "${found[@]:0:30}"; do
            "$build/tests/fuzz_$t" -timeout=20 "$f" 2>&1 |
                grep -aE -m1 'invariant failed at|^SUMMARY: |ERROR: libFuzzer|ERROR: AddressSanitizer' |
                sed -E 's/0x[0-9a-f]+/0x.../g; s/(does not compile: [^:]+: [^:]+: [^"]{0,60}).*/\1.../' || true
        done | sort | uniq -c | sort -rn | sed 's/^/             /'
        printf '             %s\n' "${found[@]:0:5}"
        [ ${#found[@]} -le 5 ] || echo "             ... (${#found[@]} in $dir/artifacts)"
    fi
    [ -n "$last" ] || { echo "             no status line: see $dir/log"; status=1; }
done
echo
echo "logs: $run/*/log"
if [ "$status" -ne 0 ]; then
    echo "reproduce: $build/tests/fuzz_TARGET FILE   (or build/tests/fuzz_TARGET_replay FILE without clang)"
fi
exit $status
