"""
Helpers shared by the policy, audit, reload and metrics end-to-end tests (test_modes, test_audit,
test_reload, test_metrics). Python 3.11 standard library only; builds on harness.py, which it does not change.

- audit trail: strict reading of the JSON-lines file, waiting for records, the exact key set of a record;
- the rule-set digest `crmgate -t` prints for a configuration;
- signals and /proc figures (VmRSS) of a running gateway;
- a load generator: threads with persistent http.client connections, one unique X-Request-ID per request,
  every outcome kept (status, or the connection error) so that tests can match responses and records;
- RawGateway: a crmgate started with exactly the arguments a test gives (harness.Gateway always passes
  --listen, which a reload would re-apply over the configuration's listen:);
- a strict Prometheus text-format (0.0.4) checker.
"""
import collections
import hashlib
import http.client
import json
import math
import os
import re
import socket
import threading
import time

import harness as h
from harness import check, fail

AUDIT_KEYS = frozenset(("time", "request_id", "client", "method", "path", "route", "rules", "mode", "decision",
                        "violations", "status", "upstream_status", "upstream_ms", "total_ms", "bytes_in", "bytes_out",
                        "body_sha256"))
AUDIT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
DECISIONS = ("forwarded", "rejected", "reported", "pass-through")
POST_ROUTE = "POST /crmRestApi/resources/{version}/interactions"


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# ---- the audit trail ---------------------------------------------------------


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in an audit record: %r" % keys)
    return dict(pairs)


def parse_audit_text(text, what="audit trail", allow_partial_tail=False):
    """Every line one JSON object (no duplicate keys); the text must end with a newline (unless allowed)."""
    if not text:
        return []
    lines = text.split("\n")
    tail_part = lines.pop()  # "" when the text ends with a newline
    if tail_part and not allow_partial_tail:
        fail("%s: the last record is not terminated by a newline: %r" % (what, tail_part[-200:]))
    records = []
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except ValueError as e:
            fail("%s line %d is not JSON (%s): %r" % (what, n, e, line[:300]))
        check(isinstance(rec, dict), "%s line %d is not an object: %r" % (what, n, line[:300]))
        records.append(rec)
    return records


def read_audit(path, allow_partial_tail=False):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("%s is not UTF-8: %s" % (path, e))
    return parse_audit_text(text, path, allow_partial_tail)


def wait_for_audit(path, count, seconds=10, reader=None):
    """Polls the audit file until it holds at least `count` complete records; returns them all."""
    deadline = time.monotonic() + h.timeout(seconds)
    reader = reader or (lambda: read_audit(path, allow_partial_tail=True))
    while True:
        records = reader()
        if len(records) >= count:
            return records
        if time.monotonic() > deadline:
            fail("the audit trail %s holds %d record(s) after %.1f s, expected at least %d"
                 % (path, len(records), h.timeout(seconds), count))
        time.sleep(0.02)


def record_for(records, request_id):
    found = [r for r in records if r.get("request_id") == request_id]
    check(len(found) == 1, "expected exactly one audit record for request id %r, found %d" % (request_id, len(found)))
    return found[0]


def check_record_shape(rec, what="audit record"):
    """The exact key set and the type of every value."""
    keys = set(rec)
    extra, missing = keys - AUDIT_KEYS - {"fault"}, AUDIT_KEYS - keys
    check(not extra and not missing, "%s: keys differ; unexpected %s, missing %s: %r"
          % (what, sorted(extra), sorted(missing), rec))
    check(isinstance(rec["time"], str) and AUDIT_TIME.match(rec["time"]),
          "%s: time %r is not RFC 3339 UTC with microseconds" % (what, rec["time"]))
    check(isinstance(rec["request_id"], str) and rec["request_id"], "%s: request_id %r" % (what, rec["request_id"]))
    check(rec["client"] is None or (isinstance(rec["client"], str) and re.fullmatch(r"127\.0\.0\.1:\d+", rec["client"])),
          "%s: client %r is not 127.0.0.1:PORT" % (what, rec["client"]))
    check(isinstance(rec["method"], str) and isinstance(rec["path"], str), "%s: method/path %r" % (what, rec))
    check(rec["route"] is None or isinstance(rec["route"], str), "%s: route %r" % (what, rec["route"]))
    check(isinstance(rec["rules"], str) and re.fullmatch(r"[0-9a-f]{64}", rec["rules"]),
          "%s: rules %r is not a 64-hex digest" % (what, rec["rules"]))
    check(rec["mode"] in ("enforce", "report", "off"), "%s: mode %r" % (what, rec["mode"]))
    check(rec["decision"] in DECISIONS, "%s: decision %r" % (what, rec["decision"]))
    check(isinstance(rec["violations"], list), "%s: violations %r" % (what, rec["violations"]))
    for v in rec["violations"]:
        check(isinstance(v, dict) and set(v) == {"pointer", "code", "mode"},
              "%s: a violation must be exactly {pointer, code, mode}: %r" % (what, v))
        check(isinstance(v["pointer"], str) and re.fullmatch(r"CRMGATE-[A-Z0-9-]+", v["code"] or "")
              and v["mode"] in ("enforce", "report"), "%s: violation %r" % (what, v))
    check(isinstance(rec["status"], int) and 100 <= rec["status"] <= 599, "%s: status %r" % (what, rec["status"]))
    if rec["upstream_status"] is None:
        check(rec["upstream_ms"] is None, "%s: upstream_ms %r without an upstream status" % (what, rec["upstream_ms"]))
    else:
        check(isinstance(rec["upstream_status"], int) and isinstance(rec["upstream_ms"], (int, float))
              and rec["upstream_ms"] >= 0, "%s: upstream_status/upstream_ms %r/%r"
              % (what, rec["upstream_status"], rec["upstream_ms"]))
    check(isinstance(rec["total_ms"], (int, float)) and rec["total_ms"] >= 0, "%s: total_ms %r" % (what, rec["total_ms"]))
    for k in ("bytes_in", "bytes_out"):
        check(isinstance(rec[k], int) and rec[k] >= 0, "%s: %s %r" % (what, k, rec[k]))
    check(isinstance(rec["body_sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", rec["body_sha256"]),
          "%s: body_sha256 %r" % (what, rec["body_sha256"]))
    if "fault" in rec:
        check(rec["fault"] in ("unreachable", "timeout", "closed-mid-body"), "%s: fault %r" % (what, rec["fault"]))


def violation_set(rec):
    return sorted((v["code"], v["pointer"], v["mode"]) for v in rec["violations"])


def audit_yaml(path, **options):
    """An `audit:` block (flow mapping) for a configuration; options use the YAML key names with _ for -."""
    items = ["path: %s" % json.dumps(path)]
    for k, v in options.items():
        items.append("%s: %s" % (k.replace("_", "-"), v))
    return "audit: {%s}\n" % ", ".join(items)


# ---- the rule set and the process --------------------------------------------


def digest_of(config_path=None, rules=h.RULES_DIR):
    """The digest `crmgate -t` prints for this configuration and rules."""
    args = ["-t"]
    if config_path is not None:
        args += ["-c", config_path]
    if rules is not None:
        args += ["--rules", rules]
    cp = h.run_cli(args)
    m = re.search(r"rules ([0-9a-f]{64}): ", cp.stdout_text)
    check(cp.returncode == 0 and m is not None, "crmgate %s: exit %d, no digest:\n%s%s"
          % (" ".join(args), cp.returncode, cp.stdout_text, cp.stderr_text))
    return m.group(1)


def send_signal(gw, sig):
    os.kill(gw.proc.pid, sig)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS in /proc/%d/status" % pid)


def wait_until(predicate, seconds, what):
    deadline = time.monotonic() + h.timeout(seconds)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            fail("%s: not within %.1f s" % (what, h.timeout(seconds)))
        time.sleep(0.02)


def wait_exit(proc, seconds):
    """Waits for a Proc to exit on its own; returns the status (fails if it does not)."""
    try:
        return proc.popen.wait(timeout=h.timeout(seconds))
    except Exception:
        fail("%s did not exit within %.1f s; stderr:\n%s" % (proc.name, h.timeout(seconds), h.tail(proc.stderr())))


def count_log(gw, pattern):
    return len(re.findall(pattern, gw.proc.stderr()))


def admin_get(gw, path):
    return h.http_get(gw.admin_port, path)


def readyz(gw):
    status, body = admin_get(gw, "/-/readyz")
    return status, body.decode("utf-8", "replace")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RawGateway:
    """crmgate with exactly the given arguments (plus -c CONFIG); stopped by the suite like a Gateway."""

    def __init__(self, suite, config_text, args, name="crmgate", allow_errors=False, admin=True):
        workdir = suite.workdir()
        self.config_path = os.path.join(workdir, name + ".yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.allow_errors = allow_errors
        self.proc = h.Proc(name, [h.CRMGATE_BIN, "-c", self.config_path] + list(args), workdir,
                           env=h.sanitizer_env(leaks=False), cwd=h.SOURCE_DIR)
        suite.live.append(self)
        self.suite = suite
        m = self.proc.wait_for(r"crmgate\[info\]: listening on http://127\.0\.0\.1:(\d+)", 10)
        self.port = int(m.group(1))
        self.admin_port = None
        if admin:
            m = self.proc.wait_for(r"crmgate\[info\]: admin listening on http://127\.0\.0\.1:(\d+)", 10)
            self.admin_port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port

    def url(self, path=h.INTERACTIONS):
        return self.base + path

    def stop(self, expect_status=0):
        if self in self.suite.live:
            self.suite.live.remove(self)
        self.proc.stop(expect_status)
        problems = h.log_problems(self.proc.stderr(), allow_errors=self.allow_errors)
        check(not problems, "crmgate stderr: %s\n%s" % ("; ".join(problems), h.tail(self.proc.stderr())))


# ---- load ----------------------------------------------------------------------


class Outcome:
    __slots__ = ("rid", "kind", "status", "error", "report")

    def __init__(self, rid, kind, status=None, error=None, report=None):
        self.rid, self.kind, self.status, self.error, self.report = rid, kind, status, error, report

    def __repr__(self):
        return "<%s %s %s %s>" % (self.rid, self.kind, self.status, self.error)


class Client:
    """One persistent HTTP/1.1 connection; no silent retries: a failure is returned, then it reconnects."""

    def __init__(self, port, seconds=15):
        self.port = port
        self.seconds = h.timeout(seconds)
        self.conn = None
        self.connections = 0

    def request(self, method, path, body=None, headers=None):
        """(status, {lower-case header: value}, body); raises OSError/HTTPException on a connection failure."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.seconds)
            self.connections += 1
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.close()
            return resp.status, hdrs, data
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_load(port, plan, threads, prefix, stop_event=None, on_progress=None, until=None):
    """
    Sends plan(i) -> (kind, method, path, body, headers) for i in range(total) from `threads` threads, each on its
    own keep-alive connection; every request carries X-Request-ID "<prefix>-<i>". `plan` is (total, fn).
    With stop_event, a thread stops at its first connection failure once the event is set; with `until` (an
    Event), the threads send no more requests once it is set.
    Returns the list of Outcome, in request order (None for requests never sent).
    """
    total, fn = plan
    outcomes = [None] * total
    counter = iter(range(total))
    lock = threading.Lock()
    errors = []

    def worker():
        client = Client(port)
        try:
            while True:
                if until is not None and until.is_set():
                    return
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                kind, method, path, body, headers = fn(i)
                rid = "%s-%d" % (prefix, i)
                hdrs = dict(headers or {})
                hdrs["X-Request-ID"] = rid
                try:
                    status, rh, _ = client.request(method, path, body, hdrs)
                    outcomes[i] = Outcome(rid, kind, status, None, rh.get("x-crmgate-report"))
                    if rh.get("x-request-id") != rid:
                        outcomes[i].error = "response X-Request-ID %r" % rh.get("x-request-id")
                except (OSError, http.client.HTTPException) as e:
                    outcomes[i] = Outcome(rid, kind, None, "%s: %s" % (type(e).__name__, e))
                    if stop_event is not None and stop_event.is_set():
                        return
                if on_progress is not None:
                    on_progress(i)
        except BaseException as e:  # a bug in the test itself
            errors.append(repr(e))
        finally:
            client.close()

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=h.timeout(300))
        check(not t.is_alive(), "a load thread is stuck")
    check(not errors, "load threads failed: %s" % errors[:3])
    return outcomes


# ---- Prometheus text format 0.0.4 -------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _parse_labels(s, pos, line):
    """Parses {a="b",...} starting at s[pos] == '{'; returns (labels as list of pairs, position after '}')."""
    labels = []
    pos += 1
    while True:
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, pos)
        if m is None:
            raise ValueError("bad label name at column %d: %r" % (pos + 1, line))
        name = m.group(0)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ValueError("expected =\" after label %s: %r" % (name, line))
        pos += 2
        value = []
        while True:
            if pos >= len(s):
                raise ValueError("unterminated label value: %r" % line)
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1:pos + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError("bad escape \\%s in label value: %r" % (nxt, line))
                value.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ValueError("raw newline in label value: %r" % line)
            else:
                value.append(c)
                pos += 1
        if name in [n for n, _ in labels]:
            raise ValueError("label %s twice: %r" % (name, line))
        labels.append((name, "".join(value)))
        if pos < len(s) and s[pos] == ",":
            pos += 1
            continue
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        raise ValueError("expected , or } in labels: %r" % line)


def _parse_value(tok, line):
    if tok in ("+Inf", "Inf"):
        return math.inf
    if tok == "-Inf":
        return -math.inf
    if tok == "NaN":
        return math.nan
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", tok):
        raise ValueError("value %r is not a number: %r" % (tok, line))
    return float(tok)


def check_prometheus(text):
    """
    Strict checks of the Prometheus text exposition format 0.0.4. Returns {family: {"type", "help", "samples":
    [(name, labels dict, value)]}}; raises ValueError naming the first problem.
    """
    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    families = collections.OrderedDict()  # name -> {"type", "help", "samples"}, in the order announced
    current = None  # the family whose announcement or samples came last
    closed = set()  # families that another family followed: they may not come back
    series = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not METRIC_NAME.match(parts[2]):
                    raise ValueError("line %d: bad metric name in %r" % (n, line))
                name = parts[2]
                if name in closed:
                    raise ValueError("line %d: family %s announced again after other families" % (n, name))
                if current is not None and current != name:
                    closed.add(current)
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if fam["samples"]:
                    raise ValueError("line %d: # %s for %s after its samples" % (n, parts[1], name))
                current = name
                if parts[1] == "HELP":
                    if fam["help"] is not None:
                        raise ValueError("line %d: second HELP for %s" % (n, name))
                    if len(parts) < 4 or not parts[3].strip():
                        raise ValueError("line %d: empty HELP for %s" % (n, name))
                    if not re.fullmatch(r"(?:[^\\]|\\[\\n])*", parts[3]):
                        raise ValueError("line %d: bad escape in HELP %r" % (n, line))
                    fam["help"] = parts[3]
                else:
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ValueError("line %d: bad TYPE line %r" % (n, line))
                    if fam["type"] is not None:
                        raise ValueError("line %d: second TYPE for %s" % (n, name))
                    fam["type"] = parts[3]
            continue  # other comments are allowed
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if m is None:
            raise ValueError("line %d: no metric name: %r" % (n, line))
        name, pos = m.group(0), m.end()
        labels = []
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, line)
        rest = line[pos:]
        if not rest.startswith(" "):
            raise ValueError("line %d: expected a space before the value: %r" % (n, line))
        toks = rest[1:].split(" ")
        if len(toks) not in (1, 2) or toks[0] == "":
            raise ValueError("line %d: expected VALUE [TIMESTAMP]: %r" % (n, line))
        value = _parse_value(toks[0], line)
        if len(toks) == 2 and not re.fullmatch(r"-?\d+", toks[1]):
            raise ValueError("line %d: bad timestamp: %r" % (n, line))
        if current is None:
            raise ValueError("line %d: sample %s before any # HELP/# TYPE" % (n, name))
        fam = families[current]
        if fam["help"] is None or fam["type"] is None:
            raise ValueError("line %d: sample %s of family %s, which lacks a # %s line before it"
                             % (n, name, current, "HELP" if fam["help"] is None else "TYPE"))
        base = current
        if fam["type"] == "histogram":
            allowed = {base + "_bucket", base + "_sum", base + "_count"}
        elif fam["type"] == "summary":
            allowed = {base, base + "_sum", base + "_count"}
        else:
            allowed = {base}
        if name not in allowed:
            raise ValueError("line %d: sample %s does not belong to the family %s announced before it" % (n, name, base))
        if fam["type"] == "counter" and not name.endswith("_total"):
            raise ValueError("line %d: counter %s should end in _total" % (n, name))
        if fam["type"] == "counter" and not (value >= 0):
            raise ValueError("line %d: counter %s is negative or NaN: %r" % (n, name, value))
        key = (name, tuple(sorted(labels)))
        if key in series:
            raise ValueError("line %d: duplicate series %s%s" % (n, name, dict(labels)))
        series.add(key)
        if name.endswith("_bucket") and fam["type"] == "histogram" and "le" not in dict(labels):
            raise ValueError("line %d: bucket without le: %r" % (n, line))
        if fam["type"] != "histogram" and "le" in dict(labels):
            raise ValueError("line %d: le label outside a histogram: %r" % (n, line))
        fam["samples"].append((name, dict(labels), value))
    for base, fam in families.items():
        if fam["help"] is None or fam["type"] is None:
            raise ValueError("family %s lacks a # HELP or # TYPE line" % base)
    for base, fam in families.items():
        if fam["type"] != "histogram":
            continue
        groups = collections.OrderedDict()
        for name, labels, value in fam["samples"]:
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
            if name == base + "_bucket":
                le = labels["le"]
                g["buckets"].append((math.inf if le == "+Inf" else _parse_value(le, le), value, le))
            elif name == base + "_sum":
                g["sum"] = value
            else:
                g["count"] = value
        if not groups:
            raise ValueError("histogram %s has no samples" % base)
        for rest, g in groups.items():
            b = g["buckets"]
            if not b:
                raise ValueError("histogram %s%s has no buckets" % (base, dict(rest)))
            if [x[0] for x in b] != sorted(x[0] for x in b) or len({x[0] for x in b}) != len(b):
                raise ValueError("histogram %s%s: le bounds not strictly increasing: %r" % (base, dict(rest), [x[2] for x in b]))
            if b[-1][2] != "+Inf":
                raise ValueError("histogram %s%s: the last bucket is le=%r, not \"+Inf\"" % (base, dict(rest), b[-1][2]))
            for (_, v1, l1), (_, v2, l2) in zip(b, b[1:]):
                if v2 < v1:
                    raise ValueError("histogram %s%s: buckets not cumulative (le=%s: %r, le=%s: %r)"
                                     % (base, dict(rest), l1, v1, l2, v2))
            if g["count"] is None or g["sum"] is None:
                raise ValueError("histogram %s%s lacks _count or _sum" % (base, dict(rest)))
            if b[-1][1] != g["count"]:
                raise ValueError("histogram %s%s: le=\"+Inf\" is %r but _count is %r" % (base, dict(rest), b[-1][1], g["count"]))
            if not (g["sum"] >= 0) and g["count"] > 0:
                raise ValueError("histogram %s%s: negative _sum %r" % (base, dict(rest), g["sum"]))
    return families


def metrics_text(gw):
    conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=h.timeout(10))
    try:
        conn.request("GET", "/-/metrics")
        resp = conn.getresponse()
        body = resp.read()
        check(resp.status == 200, "GET /-/metrics answered %d" % resp.status)
        return resp.getheader("content-type"), body.decode("utf-8")
    finally:
        conn.close()


def metric_value(families, family, labels=None, sample=None):
    """The value of one series (0 when it is absent: counters that were never incremented may be omitted)."""
    fam = families.get(family)
    check(fam is not None, "metric family %s is missing" % family)
    want = dict(labels or {})
    sample = sample or family
    for name, lab, value in fam["samples"]:
        if name == sample and lab == want:
            return value
    return 0.0


def scrape(gw):
    ct, text = metrics_text(gw)
    try:
        return check_prometheus(text)
    except ValueError as e:
        fail("GET /-/metrics is not valid Prometheus text: %s" % e)
