#!/usr/bin/env bash
# Installs what is missing, builds crmgate twice (optimised, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), and runs every test through
# ctest in both builds. Exits non-zero if anything fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

"$root/deploy/install-deps.sh"

configure_and_build() { # dir, extra cmake args...
    local dir=$1; shift
    cmake -S "$root" -B "$root/$dir" -DCRMGATE_TESTS=ON "$@" >/dev/null
    cmake --build "$root/$dir" -j"$jobs"
}

configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRMGATE_SANITIZE=OFF
configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DCRMGATE_SANITIZE=ON

# A sanitizer finding fails the test that hit it; leaks are checked for every
# test binary (LeakSanitizer runs at exit).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
passed=0
failed=0
for dir in build build-asan; do
    echo "== ctest in $dir"
    log="$root/$dir/ctest.log"
    (cd "$root/$dir" && ctest --output-on-failure -j"$jobs" --timeout 600) 2>&1 | tee "$log" || status=1
    summary=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
    if [ -z "$summary" ]; then
        status=1
        continue
    fi
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
    nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$summary")
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
