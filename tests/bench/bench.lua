-- wrk script of tests/bench/run.sh. Environment:
--   BENCH_BODY  a file: POST its bytes with Content-Type: application/json (unset or empty: GET)
--   BENCH_RATE  requests per second for this wrk thread (unset or 0: as fast as possible)
-- done() prints one line "BENCH {json}" that bench.py reads.
--
-- Fixed rate (BENCH_RATE > 0): wrk calls delay() before every request after a connection's first; it returns how
-- many milliseconds to wait. The script keeps one schedule for the thread, one slot every 1000/BENCH_RATE ms, and
-- each call takes the next slot and waits until it (never less than 0: a server that cannot keep up gets requests
-- back to back, and the achieved rate, reported, falls below the target). wrk's timers have 1 ms resolution, so a
-- request leaves up to 1 ms early or late, but the schedule itself never drifts. Latency is measured by wrk from
-- the moment a request is written (as wrk does; unlike wrk2 it is not corrected for coordinated omission, which
-- does not matter while the achieved rate equals the target).

local body_path = os.getenv("BENCH_BODY")
if body_path and body_path ~= "" then
    local f = assert(io.open(body_path, "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
if rate > 0 then
    local ffi = require("ffi")
    ffi.cdef [[
        typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
        int clock_gettime(int clk_id, bench_timespec_t *tp);
    ]]
    local ts = ffi.new("bench_timespec_t")
    local function now_ms()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    local period = 1000 / rate
    local next_slot = nil
    function delay()
        local t = now_ms()
        if next_slot == nil or next_slot < t - 1000 then
            next_slot = t -- start, or more than a second behind: do not burst to catch up
        end
        next_slot = next_slot + period
        local d = next_slot - t
        if d < 0 then
            return 0
        end
        return math.floor(d + 0.5)
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
        '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
