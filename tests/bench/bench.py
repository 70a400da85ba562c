#!/usr/bin/env python3
"""
crmgate's benchmark (issue 7, part 1): the measurement harness. Run it through run.sh, which installs the tools;
tests/bench/README.md explains the method and how to read RESULTS.md. Python 3 standard library only.

It measures, it asserts nothing: the exit status is non-zero only when the benchmark itself could not run
(a server did not start, a payload is not valid, a target did not answer 201).
"""
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import callgrind_split  # noqa: E402
import make_payloads  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name) or default)


def env_float(name, default):
    return float(os.environ.get(name) or default)


QUICK = os.environ.get("QUICK", "") == "1"
BUILD = os.environ.get("CRMGATE_BUILD") or "build"
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD)
CRMGATE = os.path.join(BUILD, "crmgate")
ROUNDS = env_int("ROUNDS", 1 if QUICK else 3)
DURATION = env_float("DURATION", 1 if QUICK else 3)                # seconds (whole) per wrk run at full rate
WARMUP = env_float("WARMUP", 1)                                    # seconds per target per workload, not counted
LAT_DURATION = env_float("LAT_DURATION", 1 if QUICK else 3)        # seconds per fixed-rate run
CONNECTIONS = env_int("CONNECTIONS", 32)
MEM_REQUESTS = env_int("MEM_REQUESTS", 100000 if QUICK else 1000000)
CALLGRIND_N = env_int("CALLGRIND_N", 20 if QUICK else 200)
CALLGRIND_WORKLOADS = os.environ.get("CALLGRIND_WORKLOADS") or ("1k" if QUICK else "")  # empty: every workload
WRK_CPU = os.environ.get("WRK_CPU", "0")                           # wrk and the shared upstream
PROXY_CPU = os.environ.get("PROXY_CPU", "1")                       # the server under test
KEEP = os.environ.get("BENCH_KEEP", "") == "1"
OUT = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "RESULTS.md")
WORKLOADS_ENV = os.environ.get("WORKLOADS", "get,200,1k,16k,1m")

PATH = "/crmRestApi/resources/11.13.18.05/interactions"
SIZES = dict(make_payloads.SIZES)
TARGETS = [  # id, label on POST rows, label on GET rows
    ("upstream", "(a) upstream direct (nginx `return 201`)", "(a) upstream direct (nginx `return 201`)"),
    ("h2o", "(b) h2o 2.2.5 reverse proxy — baseline", "(b) h2o 2.2.5 reverse proxy — baseline"),
    ("nginx", "(c) nginx reverse proxy", "(c) nginx reverse proxy"),
    ("crmgate", "(d) crmgate, validated POST", "(e) crmgate, pass-through GET"),
    ("njs", "(f) nginx + njs, same checks in JavaScript", "(f) nginx + njs (GET: route miss, proxied)"),
]


def log(msg):
    print("bench: " + msg, flush=True)


# ---- processes ---------------------------------------------------------------------------------------------------

PROCS = []


def start(name, argv, cpu=None, cwd=None, env=None):
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    err = open(os.path.join(WORK, name + ".stderr"), "wb")
    out = open(os.path.join(WORK, name + ".stdout"), "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd or WORK, env=env,
                         start_new_session=True)
    p.bench_name = name
    PROCS.append(p)
    return p


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def stop(p, sig=signal.SIGTERM, wait=10):
    """Stops one process this script started (and the helpers it forked, e.g. h2o's), by pid."""
    if p.poll() is None:
        kids = children_of(p.pid)
        try:
            os.kill(p.pid, sig)
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            pass
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except ProcessLookupError:
                pass
    if p in PROCS:
        PROCS.remove(p)
    return p.returncode


def stop_all():
    for p in list(reversed(PROCS)):
        stop(p, wait=5)


def on_signal(signum, frame):
    raise SystemExit("bench: interrupted (signal %d)" % signum)


def stderr_of(name):
    with open(os.path.join(WORK, name + ".stderr"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def wait_for_log(p, pattern, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = re.search(pattern, stderr_of(p.bench_name))
        if m:
            return m
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("bench: %s did not log /%s/ (status %s); stderr:\n%s"
                     % (p.bench_name, pattern, p.poll(), stderr_of(p.bench_name)[-3000:]))


def wait_for_port(p, port, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench: %s is not listening on %d (status %s); stderr:\n%s"
                     % (p.bench_name, port, p.poll(), stderr_of(p.bench_name)[-3000:]))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


# ---- servers -----------------------------------------------------------------------------------------------------

NGINX_COMMON = """worker_processes 1;
daemon off;
master_process off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
{load}
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_max_body_size 4m;
    client_body_buffer_size 4m;      # bodies stay in memory (njs reads r.requestText only from memory)
    client_body_in_single_buffer on;
{http}
}}
"""


def nginx_conf(name, http, load=""):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(NGINX_COMMON.format(dir=d, load=load, http=http))
    return d, path


def start_nginx(name, http, cpu, port, load=""):
    d, conf = nginx_conf(name, http, load)
    p = start(name, ["nginx", "-p", d, "-c", conf], cpu=cpu)
    wait_for_port(p, port)
    return p


SANITY_PATH = "/crmRestApi/resources/latest/interactions"  # a validated route too ({version}), answered by echo.js


def upstream_http(port, js_dir):
    """The CRM stand-in: 201 and a small JSON body for everything, cheaply. SANITY_PATH alone is answered by njs
    with the length and SHA-256 of the body it received, for the sanity check (an exact location: no cost to the
    others)."""
    return """    access_log off;
    js_path %s;
    js_import echo from echo.js;
    server {
        listen 127.0.0.1:%d;
        location / { default_type application/json; return 201 '{"InteractionId":300100000000001}\\n'; }
        location = %s { js_content echo.received; }
    }""" % (js_dir, port, SANITY_PATH)


ECHO_JS = """// the benchmark upstream's sanity answer: what arrived
function received(r) {
    var body = r.requestBuffer || Buffer.from('');
    r.headersOut['Content-Type'] = 'application/json';
    r.return(201, JSON.stringify({method: r.method, length: body.length,
                                  sha256: require('crypto').createHash('sha256').update(body).digest('hex')}));
}
export default {received};
"""


PROXY_LOCATION = "proxy_pass http://crm; proxy_http_version 1.1; proxy_set_header Connection \"\";"


def nginx_proxy_http(port, upstream_port):
    return """    access_log off;
    upstream crm { server 127.0.0.1:%d; keepalive 64; }
    server {
        listen 127.0.0.1:%d;
        location / { %s }
    }""" % (upstream_port, port, PROXY_LOCATION)


def njs_http(port, upstream_port, js_dir):
    return """    access_log off;
    js_path %s;
    js_import crm from crmcheck.js;
    upstream crm { server 127.0.0.1:%d; keepalive 64; }
    server {
        listen 127.0.0.1:%d;
        location / { js_content crm.check; }
        location @upstream { %s }
    }""" % (js_dir, upstream_port, port, PROXY_LOCATION)


def start_h2o(name, port, upstream_port, cpu, valgrind=None):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "h2o.conf")
    with open(conf, "w") as f:
        f.write(("user: root\n" if os.geteuid() == 0 else "") + """num-threads: 1
listen:
  host: 127.0.0.1
  port: %d
error-log: %s/error.log
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:%d/
""" % (port, d, upstream_port))
    p = start(name, (valgrind or []) + ["h2o", "-c", conf], cpu=cpu)
    wait_for_port(p, port, seconds=60 if valgrind else 20)
    return p


def crmgate_conf(name, upstream_port):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "crmgate.yaml")
    with open(conf, "w") as f:
        f.write("""# the benchmark's crmgate: the production shape (audit on, to a file, fsync every second), one thread
listen: 127.0.0.1:0
admin: 127.0.0.1:0
threads: 1
upstream:
  url: http://127.0.0.1:%d
rules: %s
limits:
  max-body: 2MiB
audit:
  path: %s/audit.log
  fsync: interval
  fsync-interval: 1s
""" % (upstream_port, os.path.join(ROOT, "rules"), d))
    return d, conf


def start_crmgate(name, upstream_port, cpu, valgrind=None):
    d, conf = crmgate_conf(name, upstream_port)
    p = start(name, (valgrind or []) + [CRMGATE, "-c", conf], cpu=cpu)
    secs = 120 if valgrind else 20
    m = wait_for_log(p, r"crmgate\[info\]: listening on http://127\.0\.0\.1:(\d+)", secs)
    p.port = int(m.group(1))
    m = wait_for_log(p, r"crmgate\[info\]: admin listening on http://127\.0\.0\.1:(\d+)", secs)
    p.admin_port = int(m.group(1))
    p.dir = d
    return p


def http_request(port, method, path, body=None, headers=None, conn=None, timeout=60):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    return r.status, data


def metrics(admin_port):
    status, body = http_request(admin_port, "GET", "/-/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("crmgate_requests_total{"):
            m = re.match(r'crmgate_requests_total\{(.*)\}\s+(\S+)', line)
            if m:
                out[m.group(1)] = float(m.group(2))
    return out


# ---- wrk ---------------------------------------------------------------------------------------------------------

def cpu_times():
    """cpu index -> (busy, total) jiffies from /proc/stat"""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()][:8]  # user nice system idle iowait irq softirq steal
                busy = v[0] + v[1] + v[2] + sum(v[5:7])  # not idle, iowait, or time stolen by the hypervisor
                out[int(m.group(1))] = (busy, sum(v))
    return out


def busy_percent(before, after, cpu):
    b0, t0 = before.get(cpu, (0, 0))
    b1, t1 = after.get(cpu, (0, 0))
    return 100.0 * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def run_wrk(port, workload, duration, rate=0):
    env = dict(os.environ)
    env["BENCH_BODY"] = PAYLOADS.get(workload, "")
    env["BENCH_RATE"] = str(rate)
    argv = ["taskset", "-c", WRK_CPU, "wrk", "-t1", "-c%d" % CONNECTIONS, "-d%ds" % max(1, round(duration)), "--timeout", "10s",
            "-s", os.path.join(HERE, "bench.lua"), "http://127.0.0.1:%d%s" % (port, PATH)]
    before = cpu_times()
    cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    after = cpu_times()
    m = re.search(r"^BENCH (\{.*\})$", cp.stdout, re.M)
    if cp.returncode != 0 or not m:
        raise SystemExit("bench: wrk failed (%d): %s\n%s" % (cp.returncode, " ".join(argv), cp.stdout + cp.stderr))
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    # how busy each core was: a load-generator core near 100 % caps every target alike and compresses the ratios
    r["wrk_cpu_busy"] = busy_percent(before, after, int(WRK_CPU.split(",")[0]))
    r["proxy_cpu_busy"] = busy_percent(before, after, int(str(PROXY_CPU).split(",")[0]))
    return r


# ---- phases ------------------------------------------------------------------------------------------------------

def check_payloads():
    for w in WORKLOADS:
        if w == "get":
            continue
        cp = subprocess.run([CRMGATE, "validate", "--rules", os.path.join(ROOT, "rules"), "--method", "POST",
                             "--path", PATH, PAYLOADS[w]], capture_output=True, text=True)
        if cp.returncode != 0 or "report mode" in cp.stdout + cp.stderr:  # not even a report-mode violation
            raise SystemExit("bench: payload %s is not valid for crmgate (exit %d):\n%s%s"
                             % (w, cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:]))
    log("payloads valid for crmgate validate: %s" % ", ".join(
        "%s (%d B)" % (w, os.path.getsize(PAYLOADS[w])) for w in WORKLOADS if w != "get"))


def sanity(ports, gw):
    """Every target answers 201 for every workload; every proxy forwards the body byte for byte (the upstream's
    echo of its length and SHA-256, on SANITY_PATH); invalid bodies get 400 from crmgate and njs; crmgate audits the
    POST (forwarded, no violation) and passes the GET through without validating it."""
    before = metrics(gw.admin_port)
    audit_path = os.path.join(gw.dir, "audit.log")

    def audit_lines():
        return open(audit_path).read().splitlines() if os.path.exists(audit_path) else []

    for w in WORKLOADS:
        body = open(PAYLOADS[w], "rb").read() if w != "get" else None
        for t, port in ports.items():
            n_audit = len(audit_lines())
            status, data = http_request(port, "POST" if body is not None else "GET", PATH, body)
            if status != 201:
                raise SystemExit("bench: sanity: %s %s answered %d: %r" % (t, w, status, data[:500]))
            if t != "upstream":
                status, data = http_request(port, "POST" if body is not None else "GET", SANITY_PATH, body)
                echo = json.loads(data) if status == 201 else {}
                want = {"method": "POST" if body else "GET", "length": len(body or b""),
                        "sha256": hashlib.sha256(body or b"").hexdigest()}
                if echo != want:
                    raise SystemExit("bench: sanity: %s did not forward the %s request unchanged: upstream got %r, "
                                     "expected %r (status %d)" % (t, w, echo, want, status))
            if t == "crmgate":
                lines = audit_lines()
                for _ in range(50):  # records are written when the request ends, by the writer thread
                    if len(lines) >= n_audit + (0 if w == "get" else 2):
                        break
                    time.sleep(0.05)
                    lines = audit_lines()
                if w == "get":
                    time.sleep(0.2)
                    if len(audit_lines()) != n_audit:
                        raise SystemExit("bench: sanity: crmgate audited the GET: it was validated, not passed through")
                    continue
                for line in lines[n_audit:]:
                    rec = json.loads(line)
                    if rec.get("decision") != "forwarded" or rec.get("violations"):
                        raise SystemExit("bench: sanity: crmgate audit record of %s: %.2000r" % (w, rec))
    after = metrics(gw.admin_port)
    passed = sum(v for k, v in after.items() if 'pass-through' in k) - sum(
        v for k, v in before.items() if 'pass-through' in k)
    if "get" in WORKLOADS and passed < 1:
        raise SystemExit("bench: sanity: crmgate's GET was not counted as pass-through: %r" % after)
    bad = b'{"ChannelTypeCd":"ORA_SVC_WEB_CHANNEL_CODE_TOO_LONG","CreatedBy":"me",' \
          b'"interactionReferences":[{"ObjectTypeCd":"MOO_OPTYX","ObjectId":1}]}'
    for t in ("crmgate", "njs"):
        status, data = http_request(ports[t], "POST", PATH, bad)
        if status != 400:
            raise SystemExit("bench: sanity: %s answered %d to an invalid body, expected 400" % (t, status))
    log("sanity: every target answers 201; every proxy forwards the body unchanged (upstream's SHA-256); crmgate and "
        "njs answer 400 to an invalid body; crmgate audits POSTs (forwarded) and passes GETs through unaudited")


CRASHES = []  # (phase, workload, exit status) of crmgate deaths during the measurements
GW = {}  # the crmgate under measurement: {"proc": Popen, "upstream_port": n}


def measure(ports, t, w, duration, rate=0, phase=""):
    """One wrk run. crmgate found dead before or after it is recorded as a crash and started again, so that one
    crash does not lose the rest of the benchmark; RESULTS.md lists every crash."""
    if t == "crmgate":
        revive(ports, phase, w)
    r = run_wrk(ports[t], w, duration, rate)
    if t == "crmgate":
        time.sleep(0.05)
        if revive(ports, phase, w):
            r["crashed"] = True
    return r


def revive(ports, phase, w):
    p = GW["proc"]
    if p.poll() is None:
        return False
    status = p.returncode
    CRASHES.append({"phase": phase, "workload": w, "status": status,
                    "log": stderr_of(p.bench_name)[-1500:]})
    log("WARNING: crmgate died (exit status %s%s) during %s %s; restarting it" % (
        status, ", signal %d" % -status if status < 0 else "", phase, w))
    PROCS.remove(p) if p in PROCS else None
    os.rename(os.path.join(WORK, p.bench_name + ".stderr"),
              os.path.join(WORK, "%s.crash%d.stderr" % (p.bench_name, len(CRASHES))))
    gw = start_crmgate("crmgate", GW["upstream_port"], PROXY_CPU)
    GW["proc"] = gw
    ports["crmgate"] = gw.port
    return True


def throughput(ports):
    res = {}
    for w in WORKLOADS:
        targets = [t for t in ports]
        for t in targets:
            measure(ports, t, w, WARMUP, phase="warm-up")
        runs = {t: [] for t in targets}
        for r in range(ROUNDS):
            for t in targets:  # interleaved: A B C D E, A B C D E, ...
                runs[t].append(measure(ports, t, w, DURATION, phase="throughput"))
        res[w] = {}
        for t in targets:
            rps = [x["rps"] for x in runs[t]]
            res[w][t] = {"rps": statistics.median(rps), "rps_all": rps,
                         "errors": sum(x["errors"] for x in runs[t]),
                         "wrk_cpu_busy": statistics.median(x["wrk_cpu_busy"] for x in runs[t]),
                         "proxy_cpu_busy": statistics.median(x["proxy_cpu_busy"] for x in runs[t]),
                         "p99_peak_us": statistics.median(x["p99_us"] for x in runs[t])}
        log("throughput %-4s %s" % (w, "  ".join("%s %.0f" % (t, res[w][t]["rps"]) for t in targets)))
    return res


def latency(ports, tput):
    res = {}
    for w in WORKLOADS:
        rate = max(1, int(tput[w]["h2o"]["rps"] / 2))
        res[w] = {"rate": rate}
        for t in ports:
            x = measure(ports, t, w, LAT_DURATION, rate=rate, phase="latency")
            res[w][t] = {"p50_us": x["p50_us"], "p99_us": x["p99_us"], "achieved": x["rps"], "errors": x["errors"]}
        log("latency at %d/s %-4s %s" % (rate, w, "  ".join(
            "%s p50 %.2f p99 %.2f ms (%.0f/s)" % (t, res[w][t]["p50_us"] / 1000, res[w][t]["p99_us"] / 1000,
                                                   res[w][t]["achieved"]) for t in ports)))
    return res


VALGRIND = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no"]


def callgrind_n(w):
    if w == "1m":
        return max(3, CALLGRIND_N // 20)
    if w == "16k":
        return max(5, CALLGRIND_N // 2)
    return CALLGRIND_N


def callgrind_run(kind, w, n, upstream_port):
    out = os.path.join(WORK, "callgrind.%s.%s.%d.out" % (kind, w, n))
    vg = VALGRIND + ["--callgrind-out-file=" + out]
    name = "cg-%s-%s-%d" % (kind, w, n)
    if kind == "crmgate":
        p = start_crmgate(name, upstream_port, None, valgrind=vg)
        port = p.port
    else:
        port = free_port()
        p = start_h2o(name, port, upstream_port, None, valgrind=vg)
    body = open(PAYLOADS[w], "rb").read() if w != "get" else None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for _ in range(n):
        status, data = http_request(port, "POST" if body is not None else "GET", PATH, body, conn=conn)
        if status != 201:
            raise SystemExit("bench: callgrind %s %s: status %d %r" % (kind, w, status, data[:300]))
    conn.close()
    time.sleep(0.2)
    stop(p, wait=300)
    if not os.path.exists(out):
        raise SystemExit("bench: callgrind wrote no %s; stderr:\n%s" % (out, stderr_of(name)[-2000:]))
    return out


def callgrind(upstream_port):
    res = {}
    for w in CG_WORKLOADS:
        n = callgrind_n(w)
        res[w] = {}
        for kind in ("crmgate", "h2o"):
            a = callgrind_run(kind, w, n, upstream_port)
            b = callgrind_run(kind, w, 2 * n, upstream_port)
            cp = subprocess.run([sys.executable, os.path.join(HERE, "callgrind_split.py"), ROOT, a, b, str(n)],
                                capture_output=True, text=True)
            if cp.returncode != 0:
                raise SystemExit("bench: callgrind_split failed:\n" + cp.stderr)
            res[w][kind] = json.loads(cp.stdout)
            if kind == "crmgate":
                res[w]["annotate"] = annotate(b)
                for miss in res[w][kind]["missing"] if w != "get" else []:  # a GET is neither parsed nor audited
                    log("WARNING: callgrind: function not found in crmgate's profile: %s — the split will not show "
                        "it (renamed or inlined? update FUNCTIONS in callgrind_split.py)" % miss)
        c = res[w]["crmgate"]
        log("callgrind %-4s crmgate %.0f instr/req (parse %.0f, validation %.0f, crmgate other %.0f, h2o+rest %.0f);"
            " plain h2o %.0f" % (w, c["total"], c["parts"].get("parse", {}).get("ir", 0),
                                 c["parts"].get("validate", {}).get("ir", 0),
                                 c["crmgate"] - c["parts"].get("parse", {}).get("ir", 0), c["h2o_and_rest"],
                                 res[w]["h2o"]["total"]))
    return res


def native_costs():
    """Parse and SHA-256 of each payload, timed natively (see native_costs.c): valgrind hides the CPU's SHA
    extensions, so callgrind's count of the digest is not what it costs outside valgrind."""
    exe = os.path.join(WORK, "native_costs")
    cp = subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "native_costs.c"), "-ljansson", "-lcrypto"],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        log("WARNING: native_costs.c did not compile, the native timing is left out:\n" + cp.stderr)
        return None
    sizes = [w for w in WORKLOADS if w in SIZES]
    cp = subprocess.run(["taskset", "-c", str(PROXY_CPU), exe] + [PAYLOADS[w] for w in sizes], capture_output=True,
                        text=True, timeout=600)
    if cp.returncode != 0:
        log("WARNING: native_costs failed:\n" + cp.stderr)
        return None
    res = {}
    for w, line in zip(sizes, cp.stdout.split("\n")):
        size, parse_ns, sha_ns = line.split()
        res[w] = {"parse_ns": float(parse_ns), "sha_ns": float(sha_ns)}
        log("native %-4s parse %.0f ns, SHA-256 %.0f ns (%.1f %% of the parse)" % (
            w, float(parse_ns), float(sha_ns), 100 * float(sha_ns) / float(parse_ns)))
    return res


def annotate(path):
    """callgrind_annotate's inclusive view of the named functions, as a cross-check of callgrind_split's parser."""
    try:
        cp = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], capture_output=True, text=True,
                            timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for line in cp.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+):(\S+)", line)
        if not m:
            continue
        for specs in callgrind_split.FUNCTIONS.values():
            for spec in specs:
                name, _, suffix = spec.partition("@")
                if m.group(3).split(" ")[0] == name and (not suffix or m.group(2).endswith(suffix)):
                    found.setdefault(spec, int(m.group(1).replace(",", "")))
    return found


def memory(upstream_port):
    gw = start_crmgate("crmgate-mem", upstream_port, PROXY_CPU)
    time.sleep(1)
    res = {"idle_kb": rss_kb(gw.pid), "samples": [], "requests_target": MEM_REQUESTS}
    step = max(1, min(100000, MEM_REQUESTS // 10))
    env = dict(os.environ)
    env["BENCH_BODY"] = PAYLOADS.get("200", PAYLOADS.get("1k", ""))
    env["BENCH_RATE"] = "0"
    wrk = subprocess.Popen(["taskset", "-c", WRK_CPU, "wrk", "-t1", "-c%d" % CONNECTIONS, "-d3600s", "-s",
                            os.path.join(HERE, "bench.lua"), "http://127.0.0.1:%d%s" % (gw.port, PATH)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wrk.bench_name = "wrk-mem"
    PROCS.append(wrk)
    audit = os.path.join(gw.dir, "audit.log")
    t0 = time.monotonic()
    next_mark = step
    under_load = None
    done = 0
    while done < MEM_REQUESTS:
        time.sleep(0.2)
        try:
            done = int(sum(metrics(gw.admin_port).values()))
        except OSError:
            continue
        if under_load is None and (time.monotonic() - t0 > 2 or done >= step // 2):
            under_load = rss_kb(gw.pid)
            res["under_load_at"] = done
        while done >= next_mark:
            res["samples"].append({"requests": done, "rss_kb": rss_kb(gw.pid)})
            next_mark += step
            if os.path.exists(audit):
                os.truncate(audit, 0)  # the audit file keeps ~500 B a request: bound the disk used (O_APPEND)
        if gw.poll() is not None:
            CRASHES.append({"phase": "memory", "workload": "200", "status": gw.returncode,
                            "log": stderr_of(gw.bench_name)[-1500:]})
            log("WARNING: crmgate died (exit status %s) during the memory run at %d requests" % (gw.returncode, done))
            res["died_at"] = done
            break
        if wrk.poll() is not None:
            raise SystemExit("bench: wrk stopped during the memory run")
        if time.monotonic() - t0 > 1800:
            log("WARNING: memory run stopped after 30 minutes at %d requests" % done)
            break
    elapsed = time.monotonic() - t0
    stop(wrk, signal.SIGINT)
    res["under_load_kb"] = under_load
    time.sleep(1)
    alive = gw.poll() is None
    res["after_kb"] = rss_kb(gw.pid) if alive else None
    res["hwm_kb"] = rss_kb(gw.pid, "VmHWM") if alive else None
    res["requests"] = done
    res["rate"] = done / elapsed
    stop(gw)
    log("memory: idle %s kB, under load %s kB, after %d requests %s kB (peak %s kB)"
        % (res["idle_kb"], under_load, done, res["after_kb"], res["hwm_kb"]))
    return res


# ---- report ------------------------------------------------------------------------------------------------------

def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "?"


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"])
    try:  # not sh(): its strip() would eat the status column of the first line
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.rstrip("\n")
    except OSError:
        dirty = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": "%s, %s, %d cores (%s)" % (platform.node(), cpu, os.cpu_count(), " ".join(platform.uname()[2:3])),
        "commit": commit + (" + uncommitted changes in: " + ", ".join(
            sorted({l[3:].split("/")[0] for l in dirty.splitlines()})) if dirty else ""),
        "versions": "; ".join([
            sh([CRMGATE, "--version"]).splitlines()[0] if sh([CRMGATE, "--version"]) else "crmgate ?",
            sh(["h2o", "--version"]).splitlines()[0],
            sh(["nginx", "-v"]) or subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "njs " + sh(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-http-js"]),
            "wrk " + sh(["dpkg-query", "-W", "-f=${Version}", "wrk"]),
            sh(["valgrind", "--version"])]),
        "load_start": LOAD_START,
        "load_end": open("/proc/loadavg").read().split()[:3],
    }


def fmt_int(x):
    return "-" if x is None else "{:,.0f}".format(x)


def report(m, tput, lat, cg, mem, started):
    L = []
    add = L.append
    add("# crmgate benchmark results")
    add("")
    add("Written by `tests/bench/run.sh` (method: `tests/bench/README.md`). Numbers are from one run on a shared "
        "machine: read the **ratios**, measured side by side in the same run; absolute req/s are noisy.")
    add("")
    add("| | |")
    add("|---|---|")
    add("| date | %s |" % m["date"])
    add("| machine | %s |" % m["host"])
    add("| load average (1/5/15 min) | at start %s, at end %s |" % (" ".join(m["load_start"]), " ".join(m["load_end"])))
    add("| git commit | %s |" % m["commit"])
    add("| software | %s |" % m["versions"])
    add("| command | `%s` |" % COMMAND)
    add("| settings | ROUNDS=%d DURATION=%gs WARMUP=%gs LAT_DURATION=%gs CONNECTIONS=%d (wrk -t1) CALLGRIND_N=%d "
        "(workloads %s) MEM_REQUESTS=%d; wrk and the shared upstream on CPU %s, the server under test on CPU %s%s |"
        % (ROUNDS, DURATION, WARMUP, LAT_DURATION, CONNECTIONS, CALLGRIND_N, ",".join(CG_WORKLOADS), MEM_REQUESTS,
           WRK_CPU, PROXY_CPU,
           "; QUICK=1 (smoke run)" if QUICK else ""))
    add("| run time | %.1f min |" % ((time.monotonic() - started) / 60))
    add("")
    if tput:
        add("## Throughput and latency")
        add("")
        add("req/s: median of %d interleaved rounds of %gs (min–max in brackets), closed loop, %d connections. "
            "**× (b)**: ratio to the h2o baseline. MB/s: request bodies per second. p50/p99: latency at a fixed "
            "rate of half of (b)'s median peak for that workload (the *achieved* column should equal the target "
            "rate; below it the server could not keep up). CPU busy: median share of the throughput runs during "
            "which each core was busy (/proc/stat); when the wrk + upstream core is near 100 %%, it is the limit and "
            "every target's req/s is capped alike, which pulls the ratios towards 1." % (ROUNDS, DURATION, CONNECTIONS))
        add("")
        for w in WORKLOADS:
            size = SIZES.get(w, 0)
            title = "GET %s (pass-through route)" % PATH if w == "get" else \
                "POST %s, %s body (%s bytes)" % (PATH, w.upper().replace("K", " KB").replace("M", " MB")
                                                  if w != "200" else "200 B", fmt_int(size))
            add("### " + title)
            add("")
            rate = lat[w]["rate"] if lat else None
            add("| target | req/s | × (b) | MB/s | p50 ms | p99 ms | achieved req/s (target %s) | errors | CPU busy: "
                "wrk + upstream core, proxy core |" % (fmt_int(rate) if rate else "-"))
            add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            base = tput[w]["h2o"]["rps"]
            for t, post_label, get_label in TARGETS:
                if t not in tput[w]:
                    continue
                x = tput[w][t]
                l = lat[w][t] if lat else None
                add("| %s | %s (%s–%s) | %.2f | %s | %s | %s | %s | %s | %.0f %%, %.0f %% |" % (
                    get_label if w == "get" else post_label, fmt_int(x["rps"]), fmt_int(min(x["rps_all"])),
                    fmt_int(max(x["rps_all"])), x["rps"] / base, "%.1f" % (x["rps"] * size / 1e6) if size else "-",
                    "%.2f" % (l["p50_us"] / 1000) if l else "-", "%.2f" % (l["p99_us"] / 1000) if l else "-",
                    fmt_int(l["achieved"]) if l else "-", x["errors"] + (l["errors"] if l else 0),
                    x.get("wrk_cpu_busy", 0), x.get("proxy_cpu_busy", 0)))
            add("")
        posts = [w for w in WORKLOADS if w != "get"]
        if posts:
            add("### Scaling with payload size (validated POST)")
            add("")
            add("| body | crmgate req/s | crmgate MB/s | × (b) | nginx+njs req/s | njs × (b) | crmgate µs/request "
                "(1/req/s) |")
            add("|---|---:|---:|---:|---:|---:|---:|")
            for w in posts:
                g = tput[w]["crmgate"]["rps"]
                add("| %s B | %s | %.1f | %.2f | %s | %.2f | %.1f |" % (
                    fmt_int(SIZES[w]), fmt_int(g), g * SIZES[w] / 1e6, g / tput[w]["h2o"]["rps"],
                    fmt_int(tput[w]["njs"]["rps"]), tput[w]["njs"]["rps"] / tput[w]["h2o"]["rps"], 1e6 / g))
            add("")
    if cg:
        add("## Cost per request (callgrind instruction counts)")
        add("")
        add("Instructions executed in user space per request, by the real `crmgate` (threads 1, audit on) under "
            "`valgrind --tool=callgrind`: (run of 2N requests − run of N requests) / N, so start-up and shutdown "
            "cancel out. Requests are sent one at a time on one keep-alive connection. System calls' kernel work "
            "is not counted. *crmgate, all* = crmgate's own code and everything it calls (jansson, PCRE2, "
            "SHA-256, libc), *h2o and the rest* = everything else in the process (HTTP parsing, the proxy, "
            "sockets). The functions are listed in `callgrind_split.py`.")
        add("")
        add("| workload | N | whole process | h2o and the rest | crmgate, all | parse (`json_loadb`) | validation "
            "(`gw_validate_document`) | crmgate minus parse | ÷ parse | audit SHA-256 | crmgate minus parse and "
            "SHA-256 | ÷ parse | plain h2o binary, whole process |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w in CG_WORKLOADS:
            c = cg[w]["crmgate"]
            parse = c["parts"].get("parse", {}).get("ir")
            val = c["parts"].get("validate", {}).get("ir")
            if w == "get":  # not parsed, not validated: what is left is run-to-run noise
                parse = val = None
            other = c["crmgate"] - (parse or 0)
            sha = c["parts"].get("sha256", {}).get("ir") if parse else None
            rest = other - (sha or 0)
            add("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w.upper() if w == "get" else SIZES_LABEL[w], c["n"], fmt_int(c["total"]), fmt_int(c["h2o_and_rest"]),
                fmt_int(c["crmgate"]), fmt_int(parse) if parse is not None else "-",
                fmt_int(val) if val is not None else "-", fmt_int(other),
                "%.0f %%" % (100 * other / parse) if parse else "-", fmt_int(sha) if sha is not None else "-",
                fmt_int(rest), "%.1f %%" % (100 * rest / parse) if parse else "-", fmt_int(cg[w]["h2o"]["total"])))
        add("")
        if NATIVE:
            add("The audit record's SHA-256 of the body runs on OpenSSL's generic code under valgrind, which does "
                "not offer the CPU's SHA extensions; natively (`native_costs.c`, best of 5 timed runs on the "
                "proxy's CPU) it is a much smaller share of the parse:")
            add("")
            add("| body | parse, native | SHA-256, native | SHA-256 ÷ parse, native | SHA-256 ÷ parse, callgrind |")
            add("|---|---:|---:|---:|---:|")
            for w in CG_WORKLOADS:
                if w not in NATIVE:
                    continue
                c = cg[w]["crmgate"]
                parse = c["parts"].get("parse", {}).get("ir")
                sha = c["parts"].get("sha256", {}).get("ir")
                n = NATIVE[w]
                add("| %s | %.2f µs | %.2f µs | %.1f %% | %s |" % (
                    SIZES_LABEL[w], n["parse_ns"] / 1e3, n["sha_ns"] / 1e3, 100 * n["sha_ns"] / n["parse_ns"],
                    "%.1f %%" % (100 * sha / parse) if parse and sha else "-"))
            add("")
        add("Inclusive instructions per request of the named functions (a function's count includes what it "
            "calls, so the rows overlap; `handler` is h2o's entry into crmgate, `on_req`, and contains route, "
            "request id, evaluate = headers + parse + validation, audit prepare = SHA-256 + record fields):")
        add("")
        parts = list(callgrind_split.FUNCTIONS)
        add("| part | function | " + " | ".join(w.upper() if w == "get" else SIZES_LABEL[w] for w in CG_WORKLOADS) + " |")
        add("|---|---|" + "---:|" * len(CG_WORKLOADS))
        for part in parts:
            fn = callgrind_split.FUNCTIONS[part][0]
            cells = []
            for w in CG_WORKLOADS:
                p = cg[w]["crmgate"]["parts"].get(part)
                cells.append(("≈0" if p["ir"] < 0.5 else fmt_int(p["ir"])) if p else "—")
                if p:
                    fn = p["function"]
            add("| %s | `%s` | %s |" % (part, fn, " | ".join(cells)))
        add("")
        missing = sorted({m for w in CG_WORKLOADS if w != "get" for m in cg[w]["crmgate"]["missing"]})
        if missing:
            add("**Warning**: not found in the profile (renamed, inlined or never called): %s." % "; ".join(missing))
            add("")
        wsel = "1k" if "1k" in CG_WORKLOADS else CG_WORKLOADS[-1]
        top = sorted(cg[wsel]["crmgate"]["by_function"].items(), key=lambda kv: -kv[1])[:12]
        add("Where crmgate's instructions go, %s workload (self cost + calls into libraries, per function):" % wsel)
        add("")
        add("| function | instructions / request |")
        add("|---|---:|")
        for name, v in top:
            add("| `%s` | %s |" % (name, fmt_int(v)))
        add("")
    if mem:
        add("## Memory (RSS of crmgate, /proc/PID/status VmRSS)")
        add("")
        add("One thread, audit on; wrk at full rate with the %s body on %d connections (%s req/s on average); "
            "the audit file is truncated at every sample to bound the disk used." % (
                "200 B" if "200" in PAYLOADS else "1 KB", CONNECTIONS, fmt_int(mem["rate"])))
        add("")
        add("| when | RSS kB |")
        add("|---|---:|")
        add("| idle, after start-up | %s |" % fmt_int(mem["idle_kb"]))
        add("| under load (after %s requests) | %s |" % (fmt_int(mem.get("under_load_at")), fmt_int(mem["under_load_kb"])))
        for s in mem["samples"]:
            add("| after %s requests | %s |" % (fmt_int(s["requests"]), fmt_int(s["rss_kb"])))
        add("| idle again, after %s requests | %s |" % (fmt_int(mem["requests"]), fmt_int(mem["after_kb"])))
        add("| peak (VmHWM) | %s |" % fmt_int(mem["hwm_kb"]))
        add("")
    if CRASHES:
        add("## crmgate crashed during the run")
        add("")
        add("crmgate was found dead %d time(s) and restarted by the benchmark (the measurement it died in, and "
            "the runs after, are on a fresh process):" % len(CRASHES))
        add("")
        add("| phase | workload | exit status | last log lines |")
        add("|---|---|---|---|")
        for c in CRASHES:
            st = c["status"]
            lines = [l for l in c["log"].splitlines() if "[info]" not in l][-2:]
            add("| %s | %s | %s | %s |" % (c["phase"], c["workload"],
                                          "%d (signal %d)" % (st, -st) if st is not None and st < 0 else st,
                                          "<br>".join(l.replace("|", "\\|")[:200] for l in lines) or "-"))
        add("")
    if tput and "1k" in tput:
        add("## Against the design's performance targets (reported, not asserted)")
        add("")
        add("| target | measured |")
        add("|---|---|")
        add("| validated POST 1 KB ≥ 0.6 × plain h2o | %.2f × |" % (tput["1k"]["crmgate"]["rps"] / tput["1k"]["h2o"]["rps"]))
        if "get" in tput:
            add("| pass-through GET ≥ 0.97 × plain h2o | %.2f × |" % (tput["get"]["crmgate"]["rps"] / tput["get"]["h2o"]["rps"]))
        if lat:
            add("| p99 at half of peak ≤ 1.2 × plain h2o's (1 KB POST; GET) | %.2f ×; %s |" % (
                lat["1k"]["crmgate"]["p99_us"] / max(1, lat["1k"]["h2o"]["p99_us"]),
                "%.2f ×" % (lat["get"]["crmgate"]["p99_us"] / max(1, lat["get"]["h2o"]["p99_us"])) if "get" in lat else "-"))
        if cg and "1k" in cg and cg["1k"]["crmgate"]["parts"].get("parse"):
            c = cg["1k"]["crmgate"]
            parse = c["parts"]["parse"]["ir"]
            sha = c["parts"].get("sha256", {}).get("ir", 0)
            add("| everything but jansson's parse ≤ 10 %% of the parse (1 KB, instructions) | %.0f %%; without the "
                "audit SHA-256 %.1f %%%s |" % (
                    100 * (c["crmgate"] - parse) / parse, 100 * (c["crmgate"] - parse - sha) / parse,
                    "; the SHA-256 natively: %.1f %% of the parse's time" % (
                        100 * NATIVE["1k"]["sha_ns"] / NATIVE["1k"]["parse_ns"]) if "1k" in NATIVE else ""))
        if mem and mem["samples"]:
            first = mem["samples"][0]["rss_kb"]
            add("| flat RSS over %s requests | %s kB after the first %s, %s kB at the end |" % (
                fmt_int(mem["requests"]), fmt_int(first), fmt_int(mem["samples"][0]["requests"]),
                fmt_int(mem["samples"][-1]["rss_kb"])))
        add("")
    with open(OUT, "w") as f:
        f.write("\n".join(L))
    log("wrote " + OUT)


NATIVE = {}  # workload -> native parse and SHA-256 ns (native_costs)
SIZES_LABEL = {"200": "POST 200 B", "1k": "POST 1 KB", "16k": "POST 16 KB", "1m": "POST 1 MB"}


def main():
    global WORK, PAYLOADS, WORKLOADS, CG_WORKLOADS, LOAD_START, COMMAND
    started = time.monotonic()
    LOAD_START = open("/proc/loadavg").read().split()[:3]
    COMMAND = os.environ.get("BENCH_COMMAND") or "tests/bench/run.sh"
    WORKLOADS = [w.strip() for w in WORKLOADS_ENV.split(",") if w.strip()]
    for w in WORKLOADS:
        if w != "get" and w not in SIZES:
            raise SystemExit("bench: unknown workload %r (get, 200, 1k, 16k, 1m)" % w)
    CG_WORKLOADS = [w for w in WORKLOADS if not CALLGRIND_WORKLOADS or w in CALLGRIND_WORKLOADS.split(",")]
    phases = set((os.environ.get("PHASES") or "throughput,latency,callgrind,memory").split(","))
    if not os.access(CRMGATE, os.X_OK):
        raise SystemExit("bench: no %s: build first (tests/run.sh, or set CRMGATE_BUILD)" % CRMGATE)
    WORK = tempfile.mkdtemp(prefix="crmgate-bench-")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        log("work directory %s; workloads %s; phases %s" % (WORK, ",".join(WORKLOADS), ",".join(sorted(phases))))
        pdir = os.path.join(WORK, "payloads")
        os.makedirs(pdir)
        subprocess.run([sys.executable, os.path.join(HERE, "make_payloads.py"), pdir], check=True,
                       stdout=subprocess.DEVNULL)
        PAYLOADS = {w: os.path.join(pdir, "post-%s.json" % w) for w in SIZES}
        check_payloads()
        js_dir = os.path.join(WORK, "njs-js")
        os.makedirs(js_dir)
        subprocess.run([sys.executable, os.path.join(HERE, "gen_njs.py"), os.path.join(ROOT, "rules", "interactions.json"),
                        os.path.join(js_dir, "crmcheck.js")], check=True)

        up_port = free_port()
        with open(os.path.join(js_dir, "echo.js"), "w") as f:
            f.write(ECHO_JS)
        njs_load = "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;"
        start_nginx("upstream", upstream_http(up_port, js_dir), WRK_CPU, up_port, load=njs_load)
        ports = {"upstream": free_port(), "h2o": free_port(), "nginx": free_port(), "njs": free_port()}
        start_nginx("upstream-direct", upstream_http(ports["upstream"], js_dir), PROXY_CPU, ports["upstream"],
                    load=njs_load)
        start_h2o("h2o", ports["h2o"], up_port, PROXY_CPU)
        start_nginx("nginx-proxy", nginx_proxy_http(ports["nginx"], up_port), PROXY_CPU, ports["nginx"])
        start_nginx("nginx-njs", njs_http(ports["njs"], up_port, js_dir), PROXY_CPU, ports["njs"],
                    load=njs_load)
        gw = start_crmgate("crmgate", up_port, PROXY_CPU)
        GW.update(proc=gw, upstream_port=up_port)
        ports["crmgate"] = gw.port
        ports = {t: ports[t] for t, _, _ in TARGETS}  # table order
        sanity(ports, gw)

        tput = lat = cg = mem = None
        if "throughput" in phases or "latency" in phases:
            tput = throughput(ports)
        if "latency" in phases:
            lat = latency(ports, tput)
        for name in ("h2o", "nginx-proxy", "nginx-njs", "upstream-direct"):
            for p in list(PROCS):
                if p.bench_name == name:
                    stop(p)
        revive(ports, "end of", "the throughput phases")
        gw_status = stop(GW["proc"])
        if gw_status != 0:
            log("WARNING: crmgate exited with status %s after SIGTERM; stderr:\n%s" % (gw_status, stderr_of("crmgate")[-2000:]))
        if "callgrind" in phases:
            cg = callgrind(up_port)
            NATIVE.update(native_costs() or {})
        if "memory" in phases:
            mem = memory(up_port)
        report(machine(), tput, lat, cg, mem, started)
    finally:
        stop_all()
        if KEEP:
            log("kept " + WORK)
        else:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
