#!/usr/bin/env bash
# crmgate's benchmark (issue 7): crmgate against Debian's h2o and nginx as plain reverse proxies, and against
# nginx + njs doing the same checks in JavaScript, on loopback with wrk; callgrind instruction counts per request;
# RSS over a million requests. Writes tests/bench/RESULTS.md. Method and how to read it: tests/bench/README.md.
#
#   tests/bench/run.sh              # the full run, about 10 minutes on the 2-core machine
#   QUICK=1 tests/bench/run.sh      # a ~2 minute smoke run (1 round of 1 s runs, callgrind on 1 KB only, 100k requests for memory)
#
# Needs a built gateway: build/crmgate (tests/run.sh builds it), or CRMGATE_BUILD=DIR. Installs the missing
# Debian packages it uses (wrk nginx-light h2o libnginx-mod-http-js valgrind) with apt-get. Every server runs on
# 127.0.0.1 on free ports from a temporary directory with its own configuration, and is stopped by its PID at the
# end: the system's nginx and h2o configurations and services are never touched.
#
# Environment (defaults in brackets; QUICK=1 changes the marked ones):
#   CRMGATE_BUILD   build directory, relative to the source tree or absolute [build]
#   ROUNDS          interleaved rounds per workload; the median is reported [3; QUICK 1]
#   DURATION        seconds (whole) per full-rate wrk run [3; QUICK 1]
#   WARMUP          seconds of unreported warm-up per target and workload [1]
#   LAT_DURATION    seconds (whole) per fixed-rate (latency) run [3; QUICK 1]
#   CONNECTIONS     wrk connections (one wrk thread) [32]
#   CALLGRIND_N     requests per callgrind run (16 KB: half, 1 MB: a twentieth) [200; QUICK 20]
#   CALLGRIND_WORKLOADS  the workloads profiled with callgrind [all; QUICK 1k]
#   MEM_REQUESTS    requests of the memory run [1000000; QUICK 100000]
#   WORKLOADS       comma-separated subset of get,200,1k,16k,1m [all]
#   PHASES          comma-separated subset of throughput,latency,callgrind,memory [all]
#   WRK_CPU, PROXY_CPU  CPUs for wrk + the shared upstream, and for the server under test [0, 1]
#   BENCH_RESULTS   where to write the report [tests/bench/RESULTS.md]
#   BENCH_KEEP=1    keep the temporary directory (configurations, logs, callgrind files)
set -euo pipefail

# everything in main(), called on the last line: bash has then read the whole file before running any of it, so
# editing this script while a run is going on cannot change what that run does
main() {
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# the benchmark's own packages, installed (when missing) by the project's installer; any nginx flavour already
# there will do for nginx-light
packages=(wrk h2o libnginx-mod-http-js valgrind)
command -v nginx >/dev/null 2>&1 || packages+=(nginx-light)
"$root/deploy/install-deps.sh" "${packages[@]}"
for tool in wrk nginx h2o valgrind callgrind_annotate taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done
[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || { echo "bench: njs module missing" >&2; exit 1; }

build=${CRMGATE_BUILD:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
[ -x "$build/crmgate" ] || { echo "bench: no $build/crmgate: run tests/run.sh first (or set CRMGATE_BUILD)" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
    echo "bench: fewer than 2 CPUs: wrk and the server under test share one (set WRK_CPU=0 PROXY_CPU=0)" >&2
    export WRK_CPU=${WRK_CPU:-0} PROXY_CPU=${PROXY_CPU:-0}
fi

# the exact command, for the report
cmd=""
for v in QUICK CRMGATE_BUILD ROUNDS DURATION WARMUP LAT_DURATION CONNECTIONS CALLGRIND_N CALLGRIND_WORKLOADS MEM_REQUESTS \
    WORKLOADS PHASES WRK_CPU PROXY_CPU; do
    [ -n "${!v:-}" ] && cmd+="$v=${!v} "
done
export BENCH_COMMAND="${cmd}tests/bench/run.sh"

# bench.py stops every server it started (by PID) on exit, error or signal; forward ours to it
python=/usr/bin/python3
[ -x "$python" ] || python=python3
"$python" "$here/bench.py" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM HUP
wait $pid
}

main "$@"
