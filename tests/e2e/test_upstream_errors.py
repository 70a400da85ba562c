"""
End to end: what the client sees when the CRM answers an error or fails.

Upstream errors whose body is an HTML page, empty or plain text are rewritten
into the negotiated format (text/plain for REST-Framework-Version absent or
1-3, Oracle's application/vnd.oracle.adf.error+json for 4 and up,
application/problem+json when configured), keeping the status, quoting a
short escaped excerpt of the original body, carrying the request id and a
correct Content-Length, leaking no upstream header but Retry-After,
WWW-Authenticate and Allow, and keeping the connection alive (HTTP/1.1 and
HTTP/2). An Oracle JSON error passes through byte for byte.

Faults of the upstream (refused connection, reset, close before the
response, no answer within upstream.timeout.io, close in the middle of a 2xx
body) become 502 / 504 in every format over both protocols, or a closed client
connection (never a truncated body presented as complete); they are counted
on /-/metrics, and the gateway stays healthy and exits 0 afterwards.
"""
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq  # noqa: E402

suite = h.Suite("upstream_errors")
PROTOCOLS = ((False, "HTTP/1.1"), (True, "HTTP/2"))
STATUSES = (400, 404, 409, 500, 503)
REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
TEXT_CT = "text/plain; charset=utf-8"
ORACLE_CT = "application/vnd.oracle.adf.error+json"
PROBLEM_CT = "application/problem+json"
PROBLEM_CONFIG = "errors:\n  format: problem+json\n"
IO_TIMEOUT_MS = 500
# the answer to a request the CRM never answers must come after upstream.timeout.io, long before the CRM's delay;
# the timer is wall-clock time, so the bound is not scaled for sanitizer builds
TIMEOUT_CONFIG = "upstream:\n  timeout:\n    io: %dms\n" % IO_TIMEOUT_MS
SIM_DELAY_MS = 3000
TIMEOUT_BOUND = 2.5
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")

UNREACHABLE = "CRMGATE-UPSTREAM-UNREACHABLE"
TIMEOUT = "CRMGATE-UPSTREAM-TIMEOUT"
UPSTREAM_ERROR = "CRMGATE-UPSTREAM-ERROR"

M_UNREACHABLE = 'crmgate_upstream_faults_total{kind="unreachable"}'
M_TIMEOUT = 'crmgate_upstream_faults_total{kind="timeout"}'
M_MID_BODY = 'crmgate_upstream_faults_total{kind="closed-mid-body"}'
M_4XX = 'crmgate_upstream_responses_total{class="4xx"}'
M_5XX = 'crmgate_upstream_responses_total{class="5xx"}'
ALL_METRICS = (M_UNREACHABLE, M_TIMEOUT, M_MID_BODY, M_4XX, M_5XX)

# The three error formats: (name, gateway configuration, request headers that negotiate it).
FORMATS = (("text", None, []),
           ("oracle-json", None, ["REST-Framework-Version: 4", "Accept: application/json"]),
           ("problem+json", PROBLEM_CONFIG, []))


# ---- helpers -------------------------------------------------------------------


def closed_port():
    """A loopback port nobody listens on: bound, noted, closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sim_error(gw, status, body, http2=False, headers=(), method="GET", data=None, path=INTERACTIONS, **kw):
    hs = ["X-Sim-Status: %d" % status, "X-Sim-Body: " + body] + list(headers)
    if data is not None:
        hs.append(JSON_CT)
    return h.curl(gw.url(path), method=method, headers=hs, data=data, http2=http2, **kw)


def only_violation(violations, what):
    check(len(violations) == 1, "%s: expected exactly one error entry, got %r" % (what, violations))
    return violations[0]


def upstream_detail_ok(detail, status, body, what):
    """The detail of a rewritten upstream error: status, what the body was, and a short excerpt of it."""
    reason = REASONS[status]
    if body == "empty":
        eq(detail, "The CRM answered %d with an empty body." % status, what + ": detail")
        return
    kind = {"html": "an HTML page", "plain": "a plain-text message"}[body]
    prefix = 'The CRM answered %d with %s: "' % (status, kind)
    check(detail.startswith(prefix) and detail.endswith('".'),
          "%s: the detail does not read 'The CRM answered %d with %s: \"...\".': %r" % (what, status, kind, detail))
    excerpt = detail[len(prefix):-2]
    check(len(excerpt) <= 130, "%s: the excerpt is not short (%d characters): %r" % (what, len(excerpt), excerpt))
    if body == "html":
        check("<" not in excerpt and ">" not in excerpt, "%s: HTML tags were not stripped: %r" % (what, excerpt))
        for part in ("%d %s" % (status, reason), "crmsim: simulated error page"):
            check(part in excerpt, "%s: the excerpt lacks %r: %r" % (what, part, excerpt))
    else:
        check("crmsim: simulated %d %s" % (status, reason) in excerpt,
              "%s: the excerpt does not quote the plain-text body: %r" % (what, excerpt))


def no_upstream_headers(r, what, ours=TEXT_CT):
    """Only crmgate's own headers: its Content-Type, one X-Request-ID, no X-Sim-* echo, no upstream Server."""
    names = [n for n, _ in r.headers]
    eq(r.header_all("content-type"), [ours], what + ": Content-Type (crmgate's, not the CRM's)")
    eq(len(r.header_all("x-request-id")), 1, what + ": X-Request-ID headers")
    leaked = [n for n in names if n.startswith("x-sim")]
    check(not leaked, "%s: simulator headers leaked: %r" % (what, leaked))
    check("crmsim" not in (r.header("server") or ""), "%s: the CRM's Server header leaked: %r" % (what, r.header("server")))
    eq(r.header("cache-control"), "no-store", what + ": Cache-Control")


def error_of(r, fmt, status, what):
    """(code, pointer, detail) of an error crmgate made, in format fmt; checks the shape of each format."""
    if fmt == "text":
        eq(r.header("content-type"), TEXT_CT, what + ": Content-Type")
        return only_violation(h.text_violations(r), what)
    if fmt == "oracle-json":
        code, path, detail = only_violation(h.oracle_violations(r, status), what)
        eq(r.json()["title"], REASONS[status], what + ": title")
        return code, path, detail
    code, pointer, detail, _ = only_violation(h.problem_violations(r, status), what)
    doc = r.json()
    eq(doc.get("type"), "urn:crmgate:problem:upstream-error", what + ": type")
    eq(doc.get("title"), REASONS[status], what + ": title")
    eq(doc.get("detail"), detail, what + ": the top-level detail")
    return code, pointer, detail


def fault_request(gw, fmt_headers, http2, rid, fault=None, delay=None):
    hs = ["X-Request-ID: " + rid] + list(fmt_headers)
    if fault is not None:
        hs.append("X-Sim-Fault: " + fault)
    if delay is not None:
        hs.append("X-Sim-Delay-Ms: %d" % delay)
    t0 = time.monotonic()
    r = h.curl(gw.url(), method="POST", headers=[JSON_CT] + hs, data=EXAMPLE, http2=http2)
    return r, time.monotonic() - t0


def check_fault_answer(r, fmt, status, code, rid, what):
    h.assert_error_response(r, status, what)
    eq(r.header("x-request-id"), rid, what + ": X-Request-ID")
    got_code, _, detail = error_of(r, fmt, status, what)
    eq(got_code, code, what + ": error code")
    check(detail.startswith("The CRM"), "%s: the detail does not say what the CRM did: %r" % (what, detail))
    if fmt == "problem+json":
        eq(r.json().get("instance"), rid, what + ": instance")
    no_upstream_headers(r, what, {"text": TEXT_CT, "oracle-json": ORACLE_CT, "problem+json": PROBLEM_CT}[fmt])
    return detail


# ---- rewriting -----------------------------------------------------------------


@suite.test
def html_empty_and_plain_errors_become_text_for_versions_absent_1_2_3():
    with suite.stack() as (sim, gw):
        before = h.metrics(gw)
        counts = {4: 0, 5: 0}
        for http2, proto in PROTOCOLS:
            for status in STATUSES:
                for body in ("html", "empty", "plain"):
                    what = "%s, upstream %d %s" % (proto, status, body)
                    rid = "text-%d-%s-%d" % (status, body, int(http2))
                    mark = sim.mark()
                    r = sim_error(gw, status, body, http2=http2, headers=["X-Request-ID: " + rid])
                    counts[status // 100] += 1
                    h.assert_error_response(r, status, what)
                    eq(r.header("x-request-id"), rid, what + ": the client's X-Request-ID")
                    code, pointer, detail = only_violation(h.text_violations(r), what)
                    eq((code, pointer), (UPSTREAM_ERROR, "/"), what + ": code and path")
                    upstream_detail_ok(detail, status, body, what)
                    no_upstream_headers(r, what)
                    rec = sim.expect_one_since(mark, what)
                    eq(rec.header("x-request-id"), rid, what + ": X-Request-ID sent upstream")
            # versions 1-3 negotiate the same text as no version at all; so does a validated POST that was forwarded
            bodies = set()
            for version in (None, "1", "2", "3"):
                what = "%s, REST-Framework-Version %s" % (proto, version)
                hs = ["X-Request-ID: same"] + ([] if version is None else ["REST-Framework-Version: " + version])
                r = sim_error(gw, 503, "html", http2=http2, headers=hs, method="POST", data=EXAMPLE)
                counts[5] += 1
                h.assert_error_response(r, 503, what)
                eq(only_violation(h.text_violations(r), what)[0], UPSTREAM_ERROR, what + ": code")
                bodies.add(r.body)
            eq(len(bodies), 1, proto + ": the text differs between REST-Framework-Version absent, 1, 2 and 3")
        d = h.metric_deltas(before, h.metrics(gw), ALL_METRICS)
        eq(d[M_5XX], counts[5], "crmgate_upstream_responses_total{class=\"5xx\"} delta")
        eq(d[M_4XX], counts[4], "crmgate_upstream_responses_total{class=\"4xx\"} delta")
        eq((d[M_UNREACHABLE], d[M_TIMEOUT]), (0, 0), "fault counters moved for answered requests")


@suite.test
def html_empty_and_plain_errors_become_oracle_json_for_version_4_and_up():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for version in ("4", "5", "9"):
                for status in STATUSES:
                    for body in ("html", "empty", "plain"):
                        what = "%s, version %s, upstream %d %s" % (proto, version, status, body)
                        r = sim_error(gw, status, body, http2=http2,
                                      headers=["REST-Framework-Version: " + version, "Accept: application/json"])
                        h.assert_error_response(r, status, what)
                        check(REQUEST_ID.match(r.header("x-request-id")),
                              "%s: generated X-Request-ID is not 32 hex digits: %r" % (what, r.header("x-request-id")))
                        code, path, detail = error_of(r, "oracle-json", status, what)
                        eq((code, path), (UPSTREAM_ERROR, ""), what + ": o:errorCode and o:errorPath")
                        upstream_detail_ok(detail, status, body, what)
                        no_upstream_headers(r, what, ORACLE_CT)
            # a version 4 client that does not accept JSON gets text, like a rejection
            what = proto + ", version 4 with Accept: text/html"
            r = sim_error(gw, 500, "html", http2=http2, headers=["REST-Framework-Version: 4", "Accept: text/html"])
            h.assert_error_response(r, 500, what)
            eq(only_violation(h.text_violations(r), what)[0], UPSTREAM_ERROR, what)


@suite.test
def html_empty_and_plain_errors_become_problem_json_when_configured():
    with suite.stack(config=PROBLEM_CONFIG) as (sim, gw):
        for http2, proto in PROTOCOLS:
            for version in (None, "4"):
                for status in STATUSES:
                    for body in ("html", "empty", "plain"):
                        what = "%s, version %s, upstream %d %s" % (proto, version, status, body)
                        mark = sim.mark()
                        r = sim_error(gw, status, body, http2=http2,
                                      headers=[] if version is None else ["REST-Framework-Version: " + version])
                        h.assert_error_response(r, status, what)
                        rid = r.header("x-request-id")
                        check(REQUEST_ID.match(rid), "%s: generated X-Request-ID is not 32 hex digits: %r" % (what, rid))
                        # problem_violations checks that instance is the request id
                        code, pointer, detail = error_of(r, "problem+json", status, what)
                        eq(code, UPSTREAM_ERROR, what + ": code")
                        check(pointer in ("", "/"), "%s: pointer %r" % (what, pointer))
                        upstream_detail_ok(detail, status, body, what)
                        no_upstream_headers(r, what, PROBLEM_CT)
                        rec = sim.expect_one_since(mark, what)
                        eq(rec.header("x-request-id"), rid, what + ": the generated id is the one sent upstream")


@suite.test
def oracle_json_errors_pass_through_byte_for_byte():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for version in (None, "4"):
                for status in STATUSES:
                    what = "%s, version %s, upstream %d oracle-json" % (proto, version, status)
                    hs = ["X-Request-ID: oj-%d" % status] + ([] if version is None else ["REST-Framework-Version: " + version])
                    direct = h.curl(sim.url + INTERACTIONS, headers=["X-Sim-Status: %d" % status, "X-Sim-Body: oracle-json"] + hs)
                    eq(direct.status, status, what + ": the simulator asked directly")
                    r = sim_error(gw, status, "oracle-json", http2=http2, headers=hs)
                    eq(r.status, status, what + ": status")
                    eq(r.body, direct.body, what + ": body (must be the CRM's own bytes)")
                    eq(r.header("content-type"), ORACLE_CT, what + ": Content-Type")
                    eq(r.header_all("x-request-id"), ["oj-%d" % status], what + ": X-Request-ID")
                    lengths = r.header_all("content-length")
                    check(lengths == [str(len(r.body))], "%s: Content-Length %r for %d bytes" % (what, lengths, len(r.body)))


@suite.test
def head_gets_the_rewritten_status_and_headers_without_a_body():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for status in (404, 500, 503):
                for body in ("html", "plain"):
                    what = "%s, HEAD, upstream %d %s" % (proto, status, body)
                    # curl -I writes the head to the output file too; over HTTP/2 a DATA frame on a HEAD stream
                    # would be a stream error (curl exit 92), over HTTP/1.1 see below
                    r = sim_error(gw, status, body, http2=http2, headers=["X-Request-ID: head-1"], extra=["-I"])
                    eq(r.rc, 0, what + ": curl exit status (%s)" % h.tail(r.stderr, 3))
                    eq(r.status, status, what + ": status")
                    eq(r.header("x-request-id"), "head-1", what + ": X-Request-ID")
                    no_upstream_headers(r, what)
        # HTTP/1.1: body bytes after a HEAD answer would be read as the next response's status line;
        # HEAD and GET alternate on one connection
        conn = h.Http1(gw.port)
        for i, status in enumerate((500, 404, 503, 409)):
            hs = {"X-Sim-Status": str(status), "X-Sim-Body": "html", "X-Request-ID": "head-%d" % i}
            got, headers, data = conn.request("HEAD", INTERACTIONS, headers=hs)
            eq((got, data), (status, b""), "HTTP/1.1 HEAD %d: status and body" % i)
            check(("X-Request-ID", "head-%d" % i) in headers or ("x-request-id", "head-%d" % i) in headers,
                  "HTTP/1.1 HEAD %d: X-Request-ID missing: %r" % (i, headers))
            got, _, data = conn.request("GET", INTERACTIONS, headers=hs)
            eq(got, status, "HTTP/1.1 GET after HEAD %d: status" % i)
            check(data.startswith(b"CRMGATE-UPSTREAM-ERROR /: "), "HTTP/1.1 GET after HEAD %d: body %r" % (i, data[:100]))
        eq(conn.reconnects, 0, "HTTP/1.1: reconnections with HEAD and GET alternating")
        conn.close()


class FakeCrm:
    """A tiny HTTP/1.1 upstream for what crmsim cannot send: arbitrary headers and long bodies."""

    def __init__(self, responses):
        self.responses = responses  # path -> (status, [(name, value)], body bytes)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, with_body):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = outer.responses.get(self.path.split("?")[0], (404, [], b""))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if isinstance(body, list):  # chunks: sent with Transfer-Encoding: chunked, a little apart
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if with_body:
                        for chunk in body:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                            time.sleep(0.02)
                        self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(True)

            def do_POST(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


LONG_PAGE = (b'<html><head><title>Down</title><style>h1 {color: red}</style></head><body>'
             b'<h1>Service "down" \\ now\x07</h1><script>var token="s3cr3t-token";</script><p>' + b"z" * 5000 +
             b"</p></body></html>\n")
UPSTREAM_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Retry-After", "120"),
    ("WWW-Authenticate", 'Basic realm="crm"'),
    ("Allow", "GET, POST"),
    ("Location", "http://internal.example/secret"),
    ("Set-Cookie", "JSESSIONID=s3cr3t; Path=/"),
    ("X-Powered-By", "Servlet/3.0 JSP/2.2"),
    ("X-ORACLE-DMS-ECID", "005abcdef"),
    ("Link", "<http://internal.example/>; rel=help"),
    ("X-Custom-Leak", "do-not-forward"),
]
KEPT = {"retry-after": "120", "www-authenticate": 'Basic realm="crm"', "allow": "GET, POST"}
DROPPED = ("location", "set-cookie", "x-powered-by", "x-oracle-dms-ecid", "link", "x-custom-leak")


@suite.test
def only_retry_after_www_authenticate_and_allow_survive_from_the_upstream_headers():
    crm = FakeCrm({INTERACTIONS: (503, UPSTREAM_HEADERS, LONG_PAGE),
                   INTERACTIONS + "/401": (401, UPSTREAM_HEADERS, b"<html><body>Login required</body></html>"),
                   INTERACTIONS + "/405": (405, UPSTREAM_HEADERS, b"method not allowed here\n")})
    try:
        gw = suite.start_gateway("http://127.0.0.1:%d" % crm.port)
        for http2, proto in PROTOCOLS:
            for path, status in ((INTERACTIONS, 503), (INTERACTIONS + "/401", 401), (INTERACTIONS + "/405", 405)):
                for fmt, _, fmt_headers in FORMATS[:2]:
                    what = "%s, %s, upstream %d with many headers" % (proto, fmt, status)
                    r = h.curl(gw.url(path), headers=["X-Request-ID: hdr-1"] + fmt_headers, http2=http2)
                    h.assert_error_response(r, status, what)
                    error_of(r, fmt, status, what)
                    for name, value in KEPT.items():
                        eq(r.header_all(name), [value], what + ": " + name + " (allow-listed: must be kept)")
                    for name in DROPPED:
                        check(r.header(name) is None, "%s: the upstream's %s header leaked: %r" % (what, name, r.header(name)))
                    no_upstream_headers(r, what, TEXT_CT if fmt == "text" else ORACLE_CT)
        suite.stop(gw)
    finally:
        crm.close()


@suite.test
def the_excerpt_of_an_html_page_is_its_text_escaped_and_cut_short():
    # a long page: the text of the tags only (script and style content dropped, the tags themselves too),
    # quotes, backslashes and control bytes escaped, at most 120 characters quoted
    crm = FakeCrm({INTERACTIONS: (503, UPSTREAM_HEADERS, LONG_PAGE)})
    try:
        gw = suite.start_gateway("http://127.0.0.1:%d" % crm.port)
        for http2, proto in PROTOCOLS:
            what = proto + ", a long HTML page"
            r = h.curl(gw.url(), http2=http2)
            h.assert_error_response(r, 503, what)
            _, _, detail = only_violation(h.text_violations(r), what)
            prefix = 'The CRM answered 503 with an HTML page: "'
            check(detail.startswith(prefix), "%s: detail %r" % (what, detail))
            excerpt = detail[len(prefix):]
            check("s3cr3t" not in detail and "color" not in detail,
                  "%s: script or style content is quoted: %r" % (what, detail))
            check(len(excerpt) <= 140 and "..." in excerpt,
                  "%s: the excerpt of a 5 KB page is not cut short (%d characters): %r" % (what, len(excerpt), excerpt))
            check("<" not in excerpt and ">" not in excerpt and "/script" not in excerpt and "/style" not in excerpt,
                  "%s: HTML tags were not all stripped from the excerpt: %r" % (what, excerpt[:80]))
            check(excerpt.startswith('Down Service \\"down\\" \\\\ now\\x07 zzz'),
                  "%s: the excerpt is not the page's text, escaped: %r" % (what, excerpt[:80]))
            # the Oracle JSON format carries the same detail
            r = h.curl(gw.url(), http2=http2, headers=["REST-Framework-Version: 4"])
            eq(error_of(r, "oracle-json", 503, what + ", version 4")[2], detail, what + ": the Oracle JSON detail")
        suite.stop(gw)
    finally:
        crm.close()


@suite.test
def chunked_large_and_json_upstream_errors_get_a_content_length_and_a_short_excerpt():
    big = b"<html><body>" + b"<p>boom</p>" * 100000 + b"</body></html>"  # 1.1 MB, over any capture buffer
    crm = FakeCrm({INTERACTIONS + "/chunked": (502, [("Content-Type", "text/plain")], [b"upstream ", b"proxy ", b"failed\n"]),
                   INTERACTIONS + "/big": (500, [("Content-Type", "text/html")], big),
                   INTERACTIONS + "/json": (500, [("Content-Type", "application/json")], b'{"error":"nope","code":42}'),
                   INTERACTIONS + "/binary": (503, [], b"\x00\x01binary\xff")})
    expected = {"chunked": (502, 'The CRM answered 502 with a plain-text message: "upstream proxy failed".'),
                "json": (500, 'The CRM answered 500 with a JSON document that is not an Oracle error: '
                              '"{\\"error\\":\\"nope\\",\\"code\\":42}".'),
                "binary": (503, 'The CRM answered 503 with a body of another type: "\\x00\\x01binary\\xff".')}
    try:
        gw = suite.start_gateway("http://127.0.0.1:%d" % crm.port)
        conn = h.Http1(gw.port)
        for http2, proto in PROTOCOLS:
            for name, (status, detail) in expected.items():
                what = "%s, upstream %d %s" % (proto, status, name)
                r = h.curl(gw.url(INTERACTIONS + "/" + name), http2=http2)
                h.assert_error_response(r, status, what)  # one Content-Length, equal to the body's length
                eq(only_violation(h.text_violations(r), what), (UPSTREAM_ERROR, "/", detail), what)
            what = proto + ", upstream 500 with a 1.1 MB HTML page"
            r = h.curl(gw.url(INTERACTIONS + "/big"), http2=http2)
            h.assert_error_response(r, 500, what)
            _, _, detail = only_violation(h.text_violations(r), what)
            check(detail.startswith('The CRM answered 500 with an HTML page: "boom boom') and len(detail) < 250,
                  "%s: detail %r" % (what, detail[:300]))
        # the same on one HTTP/1.1 connection: the upstream body is read to its end, the client connection kept
        for name in ("chunked", "big", "json", "binary", "big"):
            status, headers, body = conn.request("GET", INTERACTIONS + "/" + name)
            check(status in (500, 502, 503) and body.startswith(b"CRMGATE-UPSTREAM-ERROR"), "keep-alive, %s: %d %r"
                  % (name, status, body[:100]))
        eq(conn.reconnects, 0, "HTTP/1.1 reconnections")
        conn.close()
        suite.stop(gw)
    finally:
        crm.close()


@suite.test
def keep_alive_survives_rewritten_errors_on_http1_and_http2():
    with suite.stack() as (sim, gw):
        # HTTP/1.1: one http.client connection for errors and normal answers alike
        conn = h.Http1(gw.port)
        for i in range(12):
            hs = {"X-Sim-Status": str(STATUSES[i % len(STATUSES)]), "X-Sim-Body": ("html", "empty", "plain")[i % 3]}
            if i % 4 == 3:
                hs = {}
            status, headers, body = conn.request("GET", INTERACTIONS, headers=hs)
            eq(status, int(hs.get("X-Sim-Status", 200)), "HTTP/1.1 request %d: status" % i)
            length = [v for n, v in headers if n.lower() == "content-length"]
            eq(length, [str(len(body))], "HTTP/1.1 request %d: Content-Length" % i)
        eq(conn.reconnects, 0, "HTTP/1.1: reconnections after rewritten errors")
        conn.close()
        # curl: two URLs, the second on the first one's connection. (Not over h2c: curl 7.88.1 never sends a
        # second request on a reused prior-knowledge connection, see test_forwarding; test_tls does it over h2.)
        cp = h.run_curl(["-sv", "--http1.1", "-H", "X-Sim-Status: 500", "-H", "X-Sim-Body: html", "-o", "/dev/null",
                         "-o", "/dev/null", "-w", "%{http_code}\n", gw.url(), gw.url()])
        eq(cp.returncode, 0, "HTTP/1.1: curl exit status")
        eq(cp.stdout_text.split(), ["500", "500"], "HTTP/1.1: statuses")
        check(cp.stderr_text.count("Connected to") == 1 and "Re-using existing connection" in cp.stderr_text,
              "HTTP/1.1: curl did not reuse the connection after a rewritten error:\n" + h.tail(cp.stderr_text, 30))
        # HTTP/2: ten rewritten errors in a row on one connection (h2load, one client, one stream at a time)
        h2load = shutil.which("h2load")
        if h2load is None:
            raise h.Skip("h2load (nghttp2-client) is not installed: HTTP/1.1 passed, HTTP/2 not tested")
        one = sim_error(gw, 503, "html", http2=True)
        h.assert_error_response(one, 503, "HTTP/2 single")
        try:
            cp = subprocess.run([h2load, "-n", "10", "-c", "1", "-m", "1", "-H", "X-Sim-Status: 503", "-H", "X-Sim-Body: html",
                                 gw.url()], capture_output=True, timeout=h.timeout(30))
        except subprocess.TimeoutExpired:
            h.fail("h2load did not finish")
        out = cp.stdout.decode("utf-8", "replace")
        check("Application protocol: h2c" in out, "h2load did not speak HTTP/2:\n" + out)
        h.note("\n".join(line for line in out.splitlines() if line.startswith(("requests:", "status codes:", "traffic:"))))
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        check(m is not None, "h2load output not understood:\n" + out)
        eq((m.group(3), m.group(6)), ("10", "0"), "h2load: requests done and errored (stream or connection errors)")
        check(re.search(r"status codes: 0 2xx, 0 3xx, 0 4xx, 10 5xx", out), "h2load: expected ten 5xx:\n" + out)
        m = re.search(r"\((\d+)\) data", out)
        check(m is not None and int(m.group(1)) == 10 * len(one.body),
              "h2load: expected %d body bytes (10 x %d), got:\n%s" % (10 * len(one.body), len(one.body), out))


# ---- faults --------------------------------------------------------------------


@suite.test
def refused_connection_is_502_unreachable_in_every_format():
    port = closed_port()
    gws = {None: suite.start_gateway(port), PROBLEM_CONFIG: suite.start_gateway(port, config=PROBLEM_CONFIG)}
    before = {k: h.metrics(g) for k, g in gws.items()}
    for fmt, config, fmt_headers in FORMATS:
        for http2, proto in PROTOCOLS:
            what = "refused connection, %s, %s" % (fmt, proto)
            rid = "refused-%s-%d" % (fmt, int(http2))
            r, _ = fault_request(gws[config], fmt_headers, http2, rid)
            check_fault_answer(r, fmt, 502, UNREACHABLE, rid, what)
    for config, gw in gws.items():
        d = h.metric_deltas(before[config], h.metrics(gw), ALL_METRICS)
        expected = 4 if config is None else 2  # text + oracle-json on the first gateway, both protocols
        eq(d[M_UNREACHABLE], expected, "refused connection: unreachable counter delta")
        eq((d[M_TIMEOUT], d[M_5XX]), (0, 0), "refused connection: timeout and upstream-5xx counter deltas")
        check(h.http_get(gw.admin_port, "/-/healthz")[0] == 200, "healthz after refused connections")
        suite.stop(gw)


def fault_stacks(config_extra=""):
    sim = suite.start_sim()
    gws = {None: suite.start_gateway(sim.port, config=config_extra or None),
           PROBLEM_CONFIG: suite.start_gateway(sim.port, config=PROBLEM_CONFIG + config_extra)}
    return sim, gws


@suite.test
def reset_and_close_before_response_are_502_in_every_format():
    sim, gws = fault_stacks()
    before = {k: h.metrics(g) for k, g in gws.items()}
    for fault in ("reset", "close-before-response"):
        for fmt, config, fmt_headers in FORMATS:
            for http2, proto in PROTOCOLS:
                what = "%s, %s, %s" % (fault, fmt, proto)
                rid = "%s-%s-%d" % (fault, fmt, int(http2))
                mark = sim.mark()
                r, _ = fault_request(gws[config], fmt_headers, http2, rid, fault=fault)
                check_fault_answer(r, fmt, 502, UNREACHABLE, rid, what)
                rec = sim.expect_one_since(mark, what)
                eq(rec.header("x-request-id"), rid, what + ": the request reached the simulator with its id")
    for config, gw in gws.items():
        d = h.metric_deltas(before[config], h.metrics(gw), ALL_METRICS)
        eq(d[M_UNREACHABLE], 8 if config is None else 4, "reset/close: unreachable counter delta")
        eq((d[M_TIMEOUT], d[M_5XX]), (0, 0), "reset/close: timeout and upstream-5xx counter deltas")
        suite.stop(gw)
    suite.stop(sim)


@suite.test
def no_answer_within_io_timeout_is_504_in_every_format():
    sim, gws = fault_stacks(TIMEOUT_CONFIG)
    before = {k: h.metrics(g) for k, g in gws.items()}
    for fault, delay in (("hang", None), (None, SIM_DELAY_MS)):
        for fmt, config, fmt_headers in FORMATS:
            for http2, proto in PROTOCOLS:
                what = "%s, %s, %s" % ("hang" if fault else "X-Sim-Delay-Ms: %d" % delay, fmt, proto)
                rid = "timeout-%s-%s-%d" % (fault or "delay", fmt, int(http2))
                r, elapsed = fault_request(gws[config], fmt_headers, http2, rid, fault=fault, delay=delay)
                detail = check_fault_answer(r, fmt, 504, TIMEOUT, rid, what)
                check("%d ms" % IO_TIMEOUT_MS in detail, "%s: the detail does not give the timeout: %r" % (what, detail))
                check(IO_TIMEOUT_MS / 1000.0 * 0.9 <= elapsed < TIMEOUT_BOUND,
                      "%s: answered after %.2f s; expected about %.1f s (upstream.timeout.io), well before the "
                      "CRM's %d ms" % (what, elapsed, IO_TIMEOUT_MS / 1000.0, SIM_DELAY_MS))
                if fmt == "problem+json":
                    eq(r.json()["errors"][0].get("limit"), IO_TIMEOUT_MS, what + ": limit")
    for config, gw in gws.items():
        d = h.metric_deltas(before[config], h.metrics(gw), ALL_METRICS)
        eq(d[M_TIMEOUT], 8 if config is None else 4, "timeout counter delta")
        eq((d[M_UNREACHABLE], d[M_5XX]), (0, 0), "timeouts: unreachable and upstream-5xx counter deltas")
        suite.stop(gw)
    suite.stop(sim)


@suite.test
def an_upstream_that_always_fails_gives_502_every_time_then_recovers():
    # crmsim --fault MODE applies to every request without an X-Sim-Fault header of its own
    for mode, status in (("reset", 502), ("close-before-response", 502)):
        sim = suite.start_sim(args=["--fault", mode])
        gw = suite.start_gateway(sim.port)
        before = h.metrics(gw)
        conn = h.Http1(gw.port)
        for i in range(6):
            got, _, body = conn.request("POST", INTERACTIONS, body=EXAMPLE, headers={"Content-Type": "application/json"})
            eq(got, status, "--fault %s, request %d over one HTTP/1.1 connection" % (mode, i))
            check(body.startswith(UNREACHABLE.encode()), "--fault %s, request %d: %r" % (mode, i, body[:100]))
        eq(conn.reconnects, 0, "--fault %s: client reconnections" % mode)
        for http2, proto in PROTOCOLS:
            r = h.post(gw, EXAMPLE, http2=http2)
            h.assert_error_response(r, status, "--fault %s, %s" % (mode, proto))
        eq(h.metric_deltas(before, h.metrics(gw), [M_UNREACHABLE])[M_UNREACHABLE], 8, "--fault %s: unreachable delta" % mode)
        # the same gateway gets through as soon as the CRM answers again (X-Sim-Fault: none)
        mark = sim.mark()
        r = h.post(gw, EXAMPLE, headers=(JSON_CT, "X-Sim-Fault: none"))
        eq(r.status, 201, "--fault %s: a request the CRM answers" % mode)
        eq(sim.since(mark)[-1].body, EXAMPLE, "--fault %s: forwarded body" % mode)
        conn.close()
        suite.stop(gw)
        suite.stop(sim)


def mid_body_requests(gw):
    """close-mid-body on GET and POST over both protocols; returns how many were made."""
    n = 0
    for http2, proto in PROTOCOLS:
        for method, data in (("GET", None), ("POST", EXAMPLE)):
            what = "close-mid-body, %s %s" % (proto, method)
            rid = "midbody-%s-%d" % (method, int(http2))
            hs = ["X-Sim-Fault: close-mid-body", "X-Request-ID: " + rid] + ([JSON_CT] if data else [])
            r = h.curl(gw.url(), method=method, headers=hs, data=data, http2=http2, expect_rc=None)
            n += 1
            if http2:
                # the stream must end with an error (RST_STREAM: curl 92, or the connection: 16/56), never cleanly
                check(r.rc != 0, "%s: curl exit 0 with %d of 1000 body bytes: a truncated body presented as complete"
                      % (what, len(r.body)))
            else:
                check(r.rc in (18, 52, 56),
                      "%s: curl exit %d (expected 18 'partial file', or 52/56: the connection closed) with %d body bytes"
                      % (what, r.rc, len(r.body)))
            check(len(r.body) < 1000, "%s: %d body bytes arrived, the simulator sent only 100" % (what, len(r.body)))
            if r.headers:
                eq(r.header("x-request-id"), rid, what + ": X-Request-ID on the response head")
    return n


@suite.test
def close_mid_body_closes_the_client_connection():
    with suite.stack() as (sim, gw):
        mid_body_requests(gw)
        # the gateway goes on serving, on fresh connections
        r = h.post(gw, EXAMPLE)
        eq(r.status, 201, "POST after close-mid-body")


@suite.test
def close_mid_body_is_counted_as_a_fault():
    with suite.stack() as (sim, gw):
        before = h.metrics(gw)
        check(M_MID_BODY in before, "the metrics have no %s series:\n%s" % (M_MID_BODY, sorted(before)))
        n = mid_body_requests(gw)
        d = h.metric_deltas(before, h.metrics(gw), ALL_METRICS)
        eq(d[M_MID_BODY], n, "%s delta after %d responses cut in the middle of the body" % (M_MID_BODY, n))


@suite.test
def gateway_stays_healthy_after_every_fault_and_exits_0():
    port = closed_port()
    sim = suite.start_sim()
    gw = suite.start_gateway(sim.port, config=TIMEOUT_CONFIG)
    dead = suite.start_gateway(port)
    for http2, proto in PROTOCOLS:
        for fault, status in (("reset", 502), ("close-before-response", 502), ("hang", 504)):
            r, _ = fault_request(gw, [], http2, "all-%s-%d" % (fault, int(http2)), fault=fault)
            eq(r.status, status, "%s, %s: status" % (fault, proto))
        mid_body_requests(gw)
        r, _ = fault_request(dead, [], http2, "dead-%d" % int(http2))
        eq(r.status, 502, proto + ": refused connection")
        r = sim_error(gw, 500, "html", http2=http2)
        eq(r.status, 500, proto + ": rewritten upstream error")
    # several faults at once, on parallel connections
    threads, results = [], []
    for i in range(8):
        fault = ("reset", "close-before-response", "hang", "close-mid-body")[i % 4]

        def run(fault=fault, i=i):
            rr = h.curl(gw.url(), headers=["X-Sim-Fault: " + fault], http2=bool(i % 2), expect_rc=None)
            results.append((fault, rr.rc, rr.status))
        threads.append(threading.Thread(target=run))
    for t in threads:
        t.start()
    for t in threads:
        t.join(h.timeout(30))
    eq(len(results), 8, "parallel faults finished")
    for g in (gw, dead):
        eq(h.http_get(g.admin_port, "/-/healthz"), (200, b"ok\n"), "/-/healthz after the faults")
    for http2, proto in PROTOCOLS:
        mark = sim.mark()
        r = h.post(gw, EXAMPLE, http2=http2)
        eq(r.status, 201, proto + ": a normal POST after the faults")
        eq(sim.expect_one_since(mark, proto + " POST").body, EXAMPLE, proto + ": forwarded body")
    suite.stop(dead)
    suite.stop(gw)  # SIGTERM: exit 0, no sanitizer report, no crmgate[error] line
    suite.stop(sim)


if __name__ == "__main__":
    suite.main()
