"""
End to end: hostile HTTP clients.

Request smuggling over raw HTTP/1.1 sockets (Content-Length with
Transfer-Encoding, duplicate Content-Length, broken chunk sizes, odd
Transfer-Encoding values, obs-fold, bare LF, pipelining) is refused or
normalised so that the simulator receives at most one request whose body is
exactly the body that was validated; header, URL and body limits answer 4xx (a
body over the limit 413 on HTTP/1.1 and HTTP/2) with nothing forwarded and
bounded memory; JSON shape attacks get a correct verdict in bounded time and
memory; slow clients are cut off without delaying others; 1,000 idle
connections cost little memory and do not stop the gateway serving.
"""
import os
import re
import resource
import select
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("hostile_http")
KIB = 1024
MIB = 1024 * 1024
# a body the rules refuse (CreatedBy is read-only): it must never reach the simulator
INVALID = b'{"ChannelTypeCd":"ORA_SVC_WEB","CreatedBy":"SMUGGLED"}'
SMUGGLED_MARKERS = (b"SMUGGLED", b"CreatedBy")


# ---- raw HTTP/1.1 -------------------------------------------------------------


def head(extra_lines, method="POST", path=INTERACTIONS, eol=b"\r\n"):
    """A request head: request line, Host, the given header lines (bytes or str), blank line."""
    lines = [("%s %s HTTP/1.1" % (method, path)).encode(), b"Host: 127.0.0.1"]
    for line in extra_lines:
        lines.append(line.encode() if isinstance(line, str) else line)
    return eol.join(lines) + eol + eol


def plain_request(body, extra=()):
    return head([JSON_CT, "Content-Length: %d" % len(body)] + list(extra)) + body


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def parse_responses(buf):
    """Complete HTTP/1.1 responses at the start of buf: [(status, {name: value}, body)], and the bytes left."""
    out = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out, buf
        lines = buf[:end].decode("iso-8859-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            return out, buf
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(m.group(1))
        start = end + 4
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(buf) < start + n:
                return out, buf
            out.append((status, headers, buf[start:start + n]))
            buf = buf[start + n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            pos, body = start, b""
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return out, buf
                size = int(buf[pos:eol].split(b";")[0], 16)
                if size == 0:
                    fin = buf.find(b"\r\n\r\n", eol)
                    if fin < 0:
                        return out, buf
                    out.append((status, headers, body))
                    buf = buf[fin + 4:]
                    break
                if len(buf) < eol + 2 + size + 2:
                    return out, buf
                body += buf[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
        elif status in (204, 304) or 100 <= status < 200:
            out.append((status, headers, b""))
            buf = buf[start:]
        else:  # delimited by the close
            return out, buf


def exchange(port, data, want=1, seconds=3):
    """
    Sends data on a fresh connection, reads until `want` responses are complete, the server closes, or the
    deadline passes. Returns ([(status, headers, body)], closed, leftover bytes).
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=h.timeout(5))
    buf, closed = b"", False
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may have answered and closed while we were still sending
        deadline = time.monotonic() + h.timeout(seconds)
        while True:
            responses, _ = parse_responses(buf)
            if len(responses) >= want:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            try:
                chunk = s.recv(65536)
            except OSError:  # a reset: the server closed with unread data
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    finally:
        s.close()
    responses, rest = parse_responses(buf)
    return responses, closed, rest


def describe(responses, closed, rest):
    return "responses %r, connection %s, unparsed %r" % (
        [(st, b[:120]) for (st, _, b) in responses], "closed" if closed else "open", rest[:120])


def settle(sim, seconds=0.3):
    """Gives the simulator time to record anything that was forwarded late."""
    time.sleep(h.timeout(seconds))


def expect_no_smuggling(sim, mark, responses, what, validated=(EXAMPLE,)):
    """At most one request upstream, its body exactly a body that was validated and answered 2xx."""
    settle(sim)
    new = sim.since(mark)
    check(len(new) <= 1, "%s: the simulator received %d requests (smuggling): %r"
          % (what, len(new), [(r.method, r.path, r.body) for r in new]))
    for (st, _, b) in responses:
        # the CRM must never be sent a request it finds malformed (e.g. a header line with an empty name)
        check(not b.startswith(b"CRMGATE-UPSTREAM-ERROR"),
              "%s: the gateway forwarded a request the CRM refused as malformed: %d %r" % (what, st, b[:200]))
    for r in new:
        lengths = r.header_all("content-length")
        check(lengths in ([], [str(len(r.body))]), "%s: Content-Length upstream %r for a %d-byte body"
              % (what, lengths, len(r.body)))
        check(not r.header_all("transfer-encoding") or not lengths,
              "%s: both Transfer-Encoding and Content-Length upstream: %r" % (what, r.headers))
        check(all(n.strip() for (n, _) in r.headers), "%s: a header with an empty name upstream: %r"
              % (what, r.headers))
        for marker in SMUGGLED_MARKERS:
            check(marker not in r.body, "%s: unvalidated bytes reached the simulator: %r" % (what, r.body[:300]))
        check(r.body in validated, "%s: the simulator received a body that was not the validated one: %r"
              % (what, r.body[:300]))
        check(any(200 <= st < 300 for (st, _, _) in responses),
              "%s: a request reached the simulator but the client got no 2xx answer: %r" % (what, responses))
    for (st, _, _) in responses:
        check(st < 500, "%s: the gateway answered %d" % (what, st))
    return new


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def quick_post(gw, what, limit=1.0):
    t0 = time.monotonic()
    r = post(gw, EXAMPLE, seconds=10)
    dt = time.monotonic() - t0
    eq(r.status, 201, what + ": status")
    check(dt < h.timeout(limit), "%s: took %.2f s (limit %.1f s)" % (what, dt, h.timeout(limit)))
    return dt



@suite.test
def client_that_leaves_while_its_request_is_in_flight_does_not_crash_the_gateway():
    # A request whose body arrives whole makes h2o stop reading the socket while it is processed; the client then
    # closes (as wrk does at the end of a run). The gateway must neither crash on that EOF nor stop serving.
    with suite.stack() as (sim, gw):
        for size in (len(EXAMPLE), 200 * KIB):
            body = padded(size) if size > len(EXAMPLE) else EXAMPLE
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=h.timeout(5))
                s.sendall(head(["Content-Length: %d" % len(body), "Content-Type: application/json",
                                "X-Sim-Delay-Ms: 300"]) + body)
                time.sleep(0.05)  # the request is with the upstream now
                s.close()
            time.sleep(0.5)
            quick_post(gw, "a request after clients left with %d-byte requests in flight" % size, limit=3.0)
        check(gw.proc.alive(), "the gateway is still running")

# ---- 1. request smuggling ------------------------------------------------------


@suite.test
def content_length_with_transfer_encoding_does_not_smuggle():
    smuggled = plain_request(INVALID)
    with suite.stack() as (sim, gw):
        # the chunked framing ends after EXAMPLE; Content-Length covers the smuggled request as well
        body = chunked(EXAMPLE) + smuggled
        for order in (("Content-Length: %d" % len(body), "Transfer-Encoding: chunked"),
                      ("Transfer-Encoding: chunked", "Content-Length: %d" % len(body))):
            mark = sim.mark()
            resp = exchange(gw.port, head([JSON_CT] + list(order)) + body, want=2)
            h.note("CL+TE %s: %s" % (order[0].split(":")[0], describe(*resp)))
            expect_no_smuggling(sim, mark, resp[0], "CL+TE")
        # Content-Length shorter than the chunked body: TE framing would see a smuggled request after it
        body = chunked(EXAMPLE)
        mark = sim.mark()
        resp = exchange(gw.port, head([JSON_CT, "Content-Length: 4", "Transfer-Encoding: chunked"])
                        + body + smuggled, want=2)
        h.note("CL(short)+TE: %s" % describe(*resp))
        expect_no_smuggling(sim, mark, resp[0], "CL(short)+TE")
        quick_post(gw, "after CL+TE", limit=5)


@suite.test
def two_different_content_lengths_do_not_smuggle():
    with suite.stack() as (sim, gw):
        for a, b in ((len(EXAMPLE), 5), (5, len(EXAMPLE)), (len(EXAMPLE), len(EXAMPLE) + len(INVALID))):
            mark = sim.mark()
            req = head([JSON_CT, "Content-Length: %d" % a, "Content-Length: %d" % b]) + EXAMPLE + INVALID
            resp = exchange(gw.port, req, want=2, seconds=1)
            h.note("Content-Length %d and %d: %s" % (a, b, describe(*resp)))
            expect_no_smuggling(sim, mark, resp[0], "Content-Length %d, %d" % (a, b))
        mark = sim.mark()
        req = head([JSON_CT, "Content-Length: %d, %d" % (len(EXAMPLE), 5)]) + EXAMPLE
        resp = exchange(gw.port, req, want=1)
        h.note("Content-Length '%d, 5': %s" % (len(EXAMPLE), describe(*resp)))
        expect_no_smuggling(sim, mark, resp[0], "Content-Length list")


@suite.test
def invalid_chunk_size_is_refused():
    with suite.stack() as (sim, gw):
        for bad in (b"zz\r\n" + EXAMPLE + b"\r\n0\r\n\r\n",
                    b"1f\r\n" + EXAMPLE + b"\r\nzz\r\n" + INVALID + b"\r\n0\r\n\r\n",
                    b"-1\r\n" + EXAMPLE + b"\r\n0\r\n\r\n",
                    b"ffffffffffffffffff\r\n" + EXAMPLE + b"\r\n0\r\n\r\n"):
            mark = sim.mark()
            resp = exchange(gw.port, head([JSON_CT, "Transfer-Encoding: chunked"]) + bad, want=1)
            h.note("chunks %r: %s" % (bad[:12], describe(*resp)))
            responses, closed, _ = resp
            check(closed or (responses and 400 <= responses[0][0] < 500),
                  "invalid chunk size %r: expected a 4xx or a close, got %s" % (bad[:12], describe(*resp)))
            check(not any(200 <= st < 300 for (st, _, _) in responses), "invalid chunk size answered 2xx")
            settle(sim)
            sim.expect_nothing_since(mark, "invalid chunk size %r" % bad[:12])


@suite.test
def odd_transfer_encodings_do_not_smuggle():
    with suite.stack() as (sim, gw):
        smuggled = plain_request(INVALID)
        cases = []
        for te in ("chunked, identity", "identity", "identity, chunked", "Chunked", "chunked ", "xchunked"):
            cases.append((te, "chunked body", head([JSON_CT, "Transfer-Encoding: " + te])
                          + chunked(EXAMPLE) + smuggled))
            cases.append((te, "with Content-Length", head([JSON_CT, "Transfer-Encoding: " + te,
                                                           "Content-Length: %d" % len(EXAMPLE)])
                          + EXAMPLE + smuggled))
        cases.append(("chunked + identity (two headers)", "chunked body",
                      head([JSON_CT, "Transfer-Encoding: chunked", "Transfer-Encoding: identity"])
                      + chunked(EXAMPLE) + smuggled))
        for te, shape, req in cases:
            mark = sim.mark()
            resp = exchange(gw.port, req, want=2)
            h.note("TE %r, %s: %s" % (te, shape, describe(*resp)))
            expect_no_smuggling(sim, mark, resp[0], "Transfer-Encoding %r, %s" % (te, shape))


@suite.test
def obs_fold_header_does_not_smuggle():
    with suite.stack() as (sim, gw):
        smuggled = plain_request(INVALID)
        cases = (
            ("folded X-Note", head([JSON_CT, "X-Note: a", " b", "Content-Length: %d" % len(EXAMPLE)]) + EXAMPLE
             + smuggled),
            ("folded Content-Length", head([JSON_CT, "Content-Length:", " %d" % len(EXAMPLE)]) + EXAMPLE + smuggled),
            ("folded Transfer-Encoding", head([JSON_CT, "Content-Length: %d" % (len(chunked(EXAMPLE)) + len(smuggled)),
                                               "Transfer-Encoding: identity", "\tchunked"])
             + chunked(EXAMPLE) + smuggled),
            ("folded Content-Type", head(["Content-Type: text/plain", " application/json",
                                          "Content-Length: %d" % len(EXAMPLE)]) + EXAMPLE + smuggled),
        )
        for what, req in cases:
            mark = sim.mark()
            resp = exchange(gw.port, req, want=2)
            h.note("%s: %s" % (what, describe(*resp)))
            expect_no_smuggling(sim, mark, resp[0], what)


@suite.test
def bare_lf_head_does_not_smuggle():
    with suite.stack() as (sim, gw):
        cases = (
            ("bare LF head", head([JSON_CT, "Content-Length: %d" % len(EXAMPLE)], eol=b"\n") + EXAMPLE),
            ("bare LF head, invalid body", head([JSON_CT, "Content-Length: %d" % len(INVALID)], eol=b"\n") + INVALID),
            ("LF inside a header", head([JSON_CT + "\nContent-Length: 4", "Content-Length: %d" % len(EXAMPLE)])
             + EXAMPLE),
            ("bare LF head + chunked", head([JSON_CT, "Transfer-Encoding: chunked"], eol=b"\n")
             + b"1f\n" + EXAMPLE + b"\n0\n\n" + plain_request(INVALID)),
        )
        for what, req in cases:
            mark = sim.mark()
            resp = exchange(gw.port, req, want=2 if "chunked" in what else 1)
            h.note("%s: %s" % (what, describe(*resp)))
            new = expect_no_smuggling(sim, mark, resp[0], what)
            if "invalid" in what:
                eq(new, [], what + ": an invalid body was forwarded")


@suite.test
def pipelined_invalid_request_is_judged_on_its_own():
    with suite.stack() as (sim, gw):
        for first, second, expected in ((EXAMPLE, INVALID, (201, 400)), (INVALID, EXAMPLE, (400, 201)),
                                        (EXAMPLE, b'{"ChannelTypeCd":', (201, 400))):
            mark = sim.mark()
            req = plain_request(first) + plain_request(second)
            responses, closed, rest = exchange(gw.port, req, want=2, seconds=5)
            h.note("pipelined %r then %r: %s" % (first[:20], second[:20], describe(responses, closed, rest)))
            statuses = tuple(st for (st, _, _) in responses)
            eq(statuses, expected, "statuses of the two pipelined requests")
            settle(sim)
            new = sim.since(mark)
            eq([r.body for r in new], [EXAMPLE], "bodies the simulator received")
        # three in one segment, the middle one invalid JSON
        mark = sim.mark()
        req = plain_request(EXAMPLE) + plain_request(b"{]") + plain_request(EXAMPLE)
        responses, closed, rest = exchange(gw.port, req, want=3, seconds=5)
        h.note("three pipelined: %s" % describe(responses, closed, rest))
        eq(tuple(st for (st, _, _) in responses), (201, 400, 201), "three pipelined requests")
        settle(sim)
        eq([r.body for r in sim.since(mark)], [EXAMPLE, EXAMPLE], "bodies the simulator received")


# ---- 2. limits -----------------------------------------------------------------


def expect_refused(sim, gw, req, what, seconds=5):
    mark = sim.mark()
    resp = exchange(gw.port, req, want=1, seconds=seconds)
    responses, closed, _ = resp
    h.note("%s: %s" % (what, describe(*resp)))
    check((responses and 400 <= responses[0][0] < 500) or (closed and not responses),
          "%s: expected a 4xx or a closed connection, got %s" % (what, describe(*resp)))
    settle(sim)
    sim.expect_nothing_since(mark, what)
    return resp


def padded(size):
    head_ = b'{"ChannelTypeCd":"ORA_SVC_WEB","Payload":"'
    body = head_ + b"A" * (size - len(head_) - 2) + b'"}'
    assert len(body) == size
    return body


@suite.test
def header_url_and_body_limits():
    limit = 4096
    with suite.stack(config="limits:\n  max-body: 4KiB\n") as (sim, gw):
        # SECURITY.md: h2o 2.2.5 takes a request head of up to 100 fields and 417,792 bytes (H2O_MAX_REQLEN);
        # over either: 400 and the connection closed. 100 KiB is inside that documented limit, so such a head
        # may be refused or forwarded, but only with the validated body and the header or URL intact.
        for what, req, pad in (
                ("one 100 KiB header", plain_request(EXAMPLE, ["X-Pad: " + "A" * (100 * KIB)]), "A" * (100 * KIB)),
                ("100 KiB of headers in 90 lines",  # with Host, Content-Type and Content-Length: 93 fields
                 plain_request(EXAMPLE, ["X-Pad-%d: %s" % (i, "B" * 1140) for i in range(90)]), "B" * 1140),
                ("100 KiB URL", head([JSON_CT, "Content-Length: %d" % len(EXAMPLE)],
                                     path=INTERACTIONS + "?q=" + "C" * (100 * KIB)) + EXAMPLE, "C" * (100 * KIB))):
            mark = sim.mark()
            resp = exchange(gw.port, req, want=1)
            h.note("%s: %s" % (what, describe(*resp)))
            for r in expect_no_smuggling(sim, mark, resp[0], what):
                check(pad in r.path or any(v == pad for (_, v) in r.headers), "%s: the long part changed" % what)
        # over h2o's documented limits: refused, nothing forwarded
        expect_refused(sim, gw, plain_request(EXAMPLE, ["X-Pad: " + "A" * (500 * KIB)]), "one 500 KiB header")
        expect_refused(sim, gw, plain_request(EXAMPLE, ["X-Pad-%d: %s" % (i, "A" * 4000) for i in range(99)]
                                              + ["X-Pad-x: " + "A" * (30 * KIB)]),
                       "430 KiB of headers in 100 lines")
        expect_refused(sim, gw, plain_request(EXAMPLE, ["X-H%d: v" % i for i in range(200)]), "200 headers")
        expect_refused(sim, gw, plain_request(EXAMPLE, ["X-H%d: v" % i for i in range(101)]), "101 headers")
        expect_refused(sim, gw, head([JSON_CT, "Content-Length: %d" % len(EXAMPLE)],
                                     path=INTERACTIONS + "?q=" + "A" * (500 * KIB)) + EXAMPLE, "500 KiB URL")
        quick_post(gw, "after the header attacks", limit=5)

        # one byte over max-body: Content-Length, chunked, HTTP/2
        over = padded(limit + 1)
        mark = sim.mark()
        responses, closed, rest = exchange(gw.port, plain_request(over), want=1)
        eq([st for (st, _, _) in responses], [413], "Content-Length max-body + 1")
        settle(sim)
        sim.expect_nothing_since(mark, "Content-Length max-body + 1")
        mark = sim.mark()
        req = head([JSON_CT, "Transfer-Encoding: chunked"]) + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            limit, over[:limit], 1, over[limit:])
        responses, closed, rest = exchange(gw.port, req, want=1)
        eq([st for (st, _, _) in responses], [413], "chunked max-body + 1")
        settle(sim)
        sim.expect_nothing_since(mark, "chunked max-body + 1")
        mark = sim.mark()
        r = post(gw, over, http2=True, seconds=20)
        h.assert_error_response(r, 413, "HTTP/2 max-body + 1")
        eq(r.version, "2", "HTTP/2 max-body + 1: protocol")
        sim.expect_nothing_since(mark, "HTTP/2 max-body + 1")
        # exactly max-body still passes on both
        mark = sim.mark()
        eq(post(gw, padded(limit), http2=True).status, 201, "HTTP/2 exactly max-body")
        eq(sim.expect_one_since(mark, "HTTP/2 exactly max-body").body, padded(limit), "body upstream")


@suite.test
def http2_100mb_slow_upload_is_413_with_bounded_memory():
    big = os.path.join(suite.workdir(), "big.json")
    with open(big, "wb") as f:
        f.write(b'{"ChannelTypeCd":"ORA_SVC_WEB","Payload":"')
        block = b"A" * MIB
        for _ in range(100):
            f.write(block)
        f.write(b'"}')
    try:
        with suite.stack(config="limits:\n  max-body: 4KiB\n") as (sim, gw):
            eq(post(gw, EXAMPLE, http2=True).status, 201, "warm-up")
            before = rss_kib(gw.proc.pid)
            peak = [before]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    try:
                        peak[0] = max(peak[0], rss_kib(gw.proc.pid))
                    except (OSError, AttributeError):
                        return
                    time.sleep(0.05)
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            mark = sim.mark()
            t0 = time.monotonic()
            try:
                cp = h.run_curl(["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                                 "%{http_code} %{http_version} %{size_upload}", "-H", JSON_CT,
                                 "--data-binary", "@" + big, "--limit-rate", "20M", gw.url()], seconds=30)
            finally:
                stop.set()
                t.join()
            dt = time.monotonic() - t0
            after = rss_kib(gw.proc.pid)
            grew = max(peak[0], after) - before
            w = cp.stdout_text.split()
            h.note("HTTP/2 100 MB upload at 20 MB/s, max-body 4 KiB: curl exit %d, %r (status, version, bytes "
                   "uploaded), %.1f s; gateway VmRSS %d KiB before, peak %d KiB, after %d KiB: grew by %d KiB"
                   % (cp.returncode, w, dt, before, peak[0], after, grew))
            eq((cp.returncode, w[:2]), (0, ["413", "2"]), "curl exit code, status and version")
            sim.expect_nothing_since(mark, "100 MB HTTP/2 upload")
            check(grew < 20 * 1024, "the gateway's RSS grew by %d KiB for a 100 MB upload it refuses" % grew)
    finally:
        os.unlink(big)


@suite.test
def http2_client_that_keeps_uploading_100mb_gets_413_and_is_not_buffered():
    """curl stops uploading once the 413 arrives; a client that does not (python3-h2, sending all 100 MB at about
    25 MB/s whatever the answer) drives the frame guard's discard path: the gateway must keep granting flow-control
    window, answer 413 once, forward nothing and not hold the body."""
    h2 = h.import_h2()
    if h2 is None:
        raise h.Skip("python3-h2 is not installed (deploy/install-deps.sh installs it)")
    with suite.stack(config="limits:\n  max-body: 4KiB\n") as (sim, gw):
        eq(post(gw, EXAMPLE, http2=True).status, 201, "warm-up")
        before = peak = rss_kib(gw.proc.pid)
        mark = sim.mark()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=h.timeout(30))
        sock.sendall(conn.data_to_send())
        sid = conn.get_next_available_stream_id()
        total = 100 * MIB
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % gw.port),
                                (":path", INTERACTIONS), ("content-type", "application/json"),
                                ("content-length", str(total))])
        sock.sendall(conn.data_to_send())
        status, sent, chunk = None, 0, b"A" * 16384
        t0 = time.monotonic()
        deadline = t0 + h.timeout(60)
        sock.setblocking(False)

        def pump():
            nonlocal status
            while True:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    return
                if not data:
                    raise h.Failure("the gateway closed the connection after %d bytes" % sent)
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[":status"])
                    elif isinstance(event, h2.events.StreamReset):
                        raise h.Failure("the stream was reset after %d bytes (error %r)" % (sent, event.error_code))
                out = conn.data_to_send()
                if out:
                    sock.setblocking(True)
                    sock.sendall(out)
                    sock.setblocking(False)

        while sent < total and time.monotonic() < deadline:
            pump()
            n = min(len(chunk), total - sent, conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if n == 0:
                time.sleep(0.001)  # waiting for window: the gateway must give it back
                continue
            conn.send_data(sid, chunk[:n], end_stream=(sent + n == total))
            sent += n
            sock.setblocking(True)
            sock.sendall(conn.data_to_send())
            sock.setblocking(False)
            if sent % (4 * MIB) == 0:
                peak = max(peak, rss_kib(gw.proc.pid))
                ahead = sent / (25 * MIB) - (time.monotonic() - t0)  # about 25 MB/s
                if ahead > 0:
                    time.sleep(ahead)
        while status is None and time.monotonic() < deadline:
            pump()
            time.sleep(0.01)
        dt = time.monotonic() - t0
        after = rss_kib(gw.proc.pid)
        sock.close()
        grew = max(peak, after) - before
        h.note("python3-h2 kept uploading after the answer: %d of %d bytes sent in %.1f s, status %r; gateway VmRSS "
               "%d KiB before, peak %d KiB, after %d KiB: grew by %d KiB" % (sent, total, dt, status, before, peak,
                                                                             after, grew))
        eq(sent, total, "bytes the client could send (the gateway must keep giving back flow-control window)")
        eq(status, 413, "the answer")
        settle(sim)
        sim.expect_nothing_since(mark, "100 MB HTTP/2 upload")
        if not h.SANITIZE:  # ASan keeps up to 256 MB of freed buffers in quarantine: RSS says nothing there
            check(grew < 20 * 1024, "the gateway's RSS grew by %d KiB for a 100 MB upload it refuses" % grew)
        eq(post(gw, EXAMPLE, http2=True).status, 201, "the gateway serves on")


# ---- 3. JSON shape attacks -----------------------------------------------------


def shape_cases():
    base = b'{"ChannelTypeCd":"ORA_SVC_WEB",'
    keys = base + b",".join(b'"%05d":0' % i for i in range(100000)) + b"}"
    n_esc = (MIB - 100) // 6
    escapes = base + b'"Payload":"' + b"\\u0041" * n_esc + b'"}'
    digits = base + b'"Amount":' + b"1" * 500000 + b"}"
    assert len(keys) <= MIB and len(escapes) <= MIB
    return [
        # (name, body, expected statuses, forwarded?)
        ("10,000-deep nesting", b'{"Payload":' + b"[" * 10000 + b"]" * 10000 + b"}", (400,), False),
        ("10,000-deep objects", b'{"a":' * 10000 + b"1" + b"}" * 10000, (400,), False),
        # valid JSON: every key is an unknown field, and the interactions schema reports unknown fields
        # (unknown-fields: report, README "In the shipped rules only interactionReferences rejects unknown
        # fields"), so the request is forwarded unchanged, byte for byte
        ("100,000 keys", keys, (201,), True),
        # valid JSON: Payload is an unbounded string; \u0041 is "A", so the request is forwarded unchanged
        ("~1 MB of \\u0041 escapes", escapes, (201,), True),
        ("500,000-digit number", digits, (400, 413), False),
        ("unpaired surrogate \\ud800", base + b'"Payload":"\\ud800"}', (400,), False),
        ("unpaired low surrogate \\udc00", base + b'"Payload":"x\\udc00y"}', (400,), False),
        ("overlong UTF-8 \\xc0\\xaf", base + b'"Payload":"\xc0\xaf"}', (400,), False),
        ("raw NUL in a string", base + b'"Payload":"a\x00b"}', (400,), False),
        ("escaped \\u0000", base + b'"Payload":"a\\u0000b"}', (400,), False),
        ("escaped \\u0000 in a key", base + b'"a\\u0000b":1}', (400,), False),
    ]


@suite.test
def json_shape_attacks_get_a_verdict_in_bounded_time_and_memory():
    bound = 15.0 if h.SANITIZE else 5.0
    with suite.stack() as (sim, gw):
        eq(post(gw, EXAMPLE).status, 201, "warm-up")
        rss0 = rss_kib(gw.proc.pid)
        worst_t, worst_t_name, worst_rss = 0.0, "", rss0
        for name, body, statuses, forwarded in shape_cases():
            mark = sim.mark()
            t0 = time.monotonic()
            r = post(gw, body, seconds=30)
            dt = time.monotonic() - t0
            rss = rss_kib(gw.proc.pid)
            h.note("%s (%d bytes): %d in %.3f s, gateway VmRSS %d KiB" % (name, len(body), r.status, dt, rss))
            if dt > worst_t:
                worst_t, worst_t_name = dt, name
            worst_rss = max(worst_rss, rss)
            check(r.status in statuses, "%s: expected %s, got %d\n%s" % (name, statuses, r.status, r.describe()))
            check(dt < bound, "%s: answered in %.2f s (bound %.0f s)" % (name, dt, bound))
            if forwarded:
                got = sim.expect_one_since(mark, name)
                check(got.body == body, "%s: the body changed on the way (%d bytes upstream)" % (name, len(got.body)))
            else:
                h.assert_error_response(r, r.status, name)
                sim.expect_nothing_since(mark, name)
        h.note("worst shape-attack time: %.3f s (%s)" % (worst_t, worst_t_name))
        h.note("worst gateway VmRSS after a shape attack: %d KiB (%d KiB after warm-up, +%d KiB)"
               % (worst_rss, rss0, worst_rss - rss0))
        quick_post(gw, "after the shape attacks", limit=5)


# ---- 4. slow clients -----------------------------------------------------------


class Trickler(threading.Thread):
    """Sends `prefix` at once, then `data` one byte per `interval`, until the server answers or closes."""

    def __init__(self, port, prefix, data, interval=0.1, limit=13.0):
        super().__init__(daemon=True)
        self.port, self.prefix, self.data, self.interval, self.limit = port, prefix, data, interval, limit
        self.cut_after = None  # seconds until the server answered or closed
        self.sent = 0
        self.answer = b""
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError as e:
            self.error = repr(e)
            return
        t0 = time.monotonic()
        try:
            if self.prefix:
                s.sendall(self.prefix)
            i = 0
            while not self.stop.is_set() and time.monotonic() - t0 < self.limit:
                if i < len(self.data):
                    try:
                        s.send(self.data[i:i + 1])
                        self.sent += 1
                        i += 1
                    except OSError:
                        self.cut_after = time.monotonic() - t0
                        return
                r, _, _ = select.select([s], [], [], self.interval)
                if r:
                    try:
                        chunk = s.recv(65536)
                    except OSError:
                        chunk = b""
                    self.answer += chunk
                    self.cut_after = time.monotonic() - t0
                    return
        finally:
            s.close()


@suite.test
def slow_clients_are_cut_off_and_do_not_block_others():
    with suite.stack() as (sim, gw):
        # ~30 s worth of head at 10 bytes a second: h2o's request timeout (10 s) must end it first
        loris_head = head([JSON_CT, "Content-Length: %d" % len(EXAMPLE), "X-Pad: " + "A" * 300])
        loris = Trickler(gw.port, b"", loris_head, limit=12.5)
        body_client = Trickler(gw.port, head([JSON_CT, "Content-Length: 1000"]), b'{"Payload":"' + b"A" * 988,
                               limit=12.5)
        mark = sim.mark()
        loris.start()
        body_client.start()
        times = []
        try:
            for _ in range(8):
                time.sleep(1.0)
                times.append(quick_post(gw, "a normal POST while slow clients trickle", limit=1.0))
                if not loris.is_alive():
                    break
            loris.join(timeout=14)
        finally:
            body_client.stop.set()
            loris.stop.set()
            body_client.join(timeout=5)
        h.note("normal POSTs during the trickle: %s s" % ", ".join("%.3f" % t for t in times))
        h.note("slowloris: %s after %d of %d head bytes, answer %r"
               % ("cut off %.1f s" % loris.cut_after if loris.cut_after is not None else "NOT cut off",
                  loris.sent, len(loris_head), loris.answer[:60]))
        h.note("slow body: %s after %d body bytes, answer %r"
               % ("cut off %.1f s" % body_client.cut_after if body_client.cut_after is not None
                  else "still open when stopped", body_client.sent, body_client.answer[:60]))
        check(loris.error is None and body_client.error is None, "connect failed: %s %s"
              % (loris.error, body_client.error))
        check(loris.cut_after is not None and loris.cut_after <= 12.0,
              "the slowloris client was not cut off within 12 s (sent %d bytes)" % loris.sent)
        check(loris.answer == b"" or loris.answer.startswith(b"HTTP/1.1 4"),
              "the slowloris client got a non-4xx answer: %r" % loris.answer[:100])
        check(body_client.answer == b"" or body_client.answer.startswith(b"HTTP/1.1 4"),
              "the slow-body client got a non-4xx answer: %r" % body_client.answer[:100])
        settle(sim)
        eq(len(sim.since(mark)), len(times), "requests upstream: only the normal POSTs")
        quick_post(gw, "after the slow clients", limit=1.0)


# ---- 5. idle connections -------------------------------------------------------


@suite.test
def a_thousand_idle_connections_cost_little():
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        new_soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new_soft < n + 200:
            raise h.Skip("RLIMIT_NOFILE hard limit %d is too low for %d connections" % (hard, n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    try:
        with suite.stack() as (sim, gw):  # started after the change: the gateway inherits the limit
            eq(post(gw, EXAMPLE).status, 201, "warm-up")
            time.sleep(0.2)
            fds0 = len(os.listdir("/proc/%d/fd" % gw.proc.pid))
            before = rss_kib(gw.proc.pid)
            conns = []
            try:
                for _ in range(n):
                    conns.append(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
                deadline = time.monotonic() + h.timeout(3)
                while time.monotonic() < deadline:
                    fds = len(os.listdir("/proc/%d/fd" % gw.proc.pid))
                    if fds - fds0 >= n:
                        break
                    time.sleep(0.05)
                during = rss_kib(gw.proc.pid)
                h.note("%d idle connections: gateway fds %d -> %d, VmRSS %d KiB before, %d KiB with them open "
                       "(+%d KiB)" % (n, fds0, fds, before, during, during - before))
                check(fds - fds0 >= n, "the gateway accepted only %d of %d connections" % (fds - fds0, n))
                check(during - before < 50 * 1024, "%d idle connections grew the RSS by %d KiB"
                      % (n, during - before))
                t0 = time.monotonic()
                eq(post(gw, EXAMPLE, seconds=10).status, 201, "a normal request with the idle connections open")
                h.note("a normal request with them open: %.3f s" % (time.monotonic() - t0))
                # an idle connection still serves a request
                c = conns[n // 2]
                c.sendall(plain_request(EXAMPLE))
                c.settimeout(h.timeout(5))
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                check(data.startswith(b"HTTP/1.1 201"), "an idle connection's request: %r" % data[:100])
            finally:
                for c in conns:
                    c.close()
            time.sleep(0.2)
            eq(post(gw, EXAMPLE).status, 201, "after closing them")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    suite.main()
