"""
End to end: body size and nesting limits.

A body of exactly limits.max-body bytes is judged like any other; one byte more
is a clean 413 on HTTP/1.1 and on HTTP/2 (a response, never a stream reset that
clients retry), as are 2 MiB and 8 MiB bodies; absurd nesting is a clean 400
and the gateway lives on; a chunked upload is judged exactly like a
Content-Length one.
"""
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("limits")
PROTOCOLS = ((False, "HTTP/1.1"), (True, "HTTP/2"))
MIB = 1024 * 1024
CHUNKED = "Transfer-Encoding: chunked"


def padded(size, extra=""):
    """A valid interactions payload of exactly `size` bytes (Payload is an unbounded string)."""
    head = '{%s"ChannelTypeCd":"ORA_SVC_WEB","Payload":"' % extra
    tail = '"}'
    n = size - len(head) - len(tail)
    check(n >= 0, "size %d too small" % size)
    body = (head + "A" * n + tail).encode()
    assert len(body) == size
    return body


def expect_413(sim, gw, body, http2, limit, what, headers=(JSON_CT,)):
    """413 answered once by crmgate: curl exit 0, one request in curl's trace, nothing upstream."""
    mark = sim.mark()
    r = post(gw, body, headers=headers, http2=http2, verbose=True, seconds=60)
    eq(r.rc, 0, what + ": curl exit code (a stream reset or a dropped connection is not a 413)")
    h.assert_error_response(r, 413, what)
    eq(r.version, "2" if http2 else "1.1", what + ": protocol")
    sent = re.findall(r"^> POST ", r.stderr, re.M)
    eq(len(sent), 1, what + ": requests curl sent (a retry means the stream was refused)")
    check("retry" not in r.stderr.lower() and "REFUSED_STREAM" not in r.stderr,
          what + ": curl retried:\n" + h.tail(r.stderr))
    sim.expect_nothing_since(mark, what)
    return r


def check_too_large_text(r, limit, what):
    v = h.text_violations(r)
    eq([(c, p) for (c, p, d) in v], [("CRMGATE-BODY-TOO-LARGE", "/")], what)
    check(str(limit) in v[0][2], "%s: the detail does not state the limit %d: %r" % (what, limit, v[0][2]))


@suite.test
def default_limit_exactly_1mib_is_judged_one_more_byte_is_413():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            body = padded(MIB)
            mark = sim.mark()
            r = post(gw, body, http2=http2)
            eq(r.status, 201, proto + ": a valid body of exactly 1 MiB")
            check(sim.expect_one_since(mark, proto).body == body, proto + ": the 1 MiB body changed on the way")
            # judged normally: an invalid body of exactly 1 MiB is a 400 with its violation, not a 413
            bad = padded(MIB, extra='"CreatedBy":"x",')
            mark = sim.mark()
            r = post(gw, bad, http2=http2)
            h.assert_error_response(r, 400, proto + " invalid 1 MiB body")
            eq([(c, p) for (c, p, d) in h.text_violations(r)], [("CRMGATE-READ-ONLY", "/CreatedBy")], proto)
            sim.expect_nothing_since(mark, proto)
            r = expect_413(sim, gw, padded(MIB + 1), http2, MIB, proto + " 1 MiB + 1")
            check_too_large_text(r, MIB, proto + " 1 MiB + 1")
            r = expect_413(sim, gw, padded(MIB + 1), http2, MIB, proto + " 1 MiB + 1, version 4",
                           headers=[JSON_CT, "REST-Framework-Version: 4"])
            eq([(c, p) for (c, p, d) in h.oracle_violations(r, 413)], [("CRMGATE-BODY-TOO-LARGE", "")],
               proto + " 413 in Oracle's format")


@suite.test
def configured_small_limit_boundary():
    limit = 4096
    with suite.stack(config="limits:\n  max-body: 4KiB\n") as (sim, gw):
        for http2, proto in PROTOCOLS:
            body = padded(limit)
            mark = sim.mark()
            eq(post(gw, body, http2=http2).status, 201, proto + ": exactly max-body bytes")
            eq(sim.expect_one_since(mark, proto).body, body, proto + ": body upstream")
            r = expect_413(sim, gw, padded(limit + 1), http2, limit, proto + " max-body + 1")
            check_too_large_text(r, limit, proto + " max-body + 1")
            # the 413 takes precedence over what the body holds: it is not parsed
            r = expect_413(sim, gw, b"{" * (limit + 1), http2, limit, proto + " max-body + 1 of garbage")
            check_too_large_text(r, limit, proto + " garbage")


@suite.test
def bodies_of_2_and_8_mib_are_413_on_both_protocols():
    with suite.stack() as (sim, gw):
        for size in (2 * MIB, 8 * MIB):
            body = padded(size)
            for http2, proto in PROTOCOLS:
                r = expect_413(sim, gw, body, http2, MIB, "%s %d MiB" % (proto, size // MIB))
                check_too_large_text(r, MIB, "%s %d MiB" % (proto, size // MIB))
        eq(h.http_get(gw.admin_port, "/-/healthz")[0], 200, "healthz after the large bodies")


@suite.test
def over_limit_body_is_not_buffered_whole():
    # design: "body buffered whole up to the limit"; memory "bounded per connection". A 128 MiB upload
    # against a 64 KiB limit must not make the gateway hold 128 MiB. One fresh gateway per protocol,
    # as the peak RSS (VmHWM) only ever rises.
    if not os.path.exists("/proc/%d/status" % os.getpid()):
        raise h.Skip("no /proc to read the gateway's peak RSS from")
    big = os.path.join(suite.workdir(), "big.json")
    with open(big, "wb") as f:
        f.write(b'{"Payload":"')
        for _ in range(128):
            f.write(b"A" * MIB)
        f.write(b'"}')
    growth = []
    try:
        measure_peak_growth(big, growth)
    finally:
        os.unlink(big)  # 128 MiB: not kept with the logs of a failed run
    for proto, grew in growth:
        check(grew < 32 * 1024, "%s: the gateway's peak RSS grew by %d MiB for a body it rejects at 64 KiB: "
              "it buffered the whole upload" % (proto, grew // 1024))


def measure_peak_growth(big, growth):
    for http2, proto in PROTOCOLS:
        with suite.stack(config="limits:\n  max-body: 64KiB\n") as (sim, gw):
            def peak_kib():
                with open("/proc/%d/status" % gw.proc.pid) as f:
                    return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))
            eq(post(gw, EXAMPLE, http2=http2).status, 201, proto + ": warm-up request")
            before = peak_kib()
            mark = sim.mark()
            r = h.curl(gw.url(), method="POST", headers=[JSON_CT], data_file=big, http2=http2, seconds=60,
                       expect_rc=None)
            grew = peak_kib() - before
            h.note("%s: 128 MiB upload, 64 KiB limit: status %s, curl exit %d, gateway peak RSS grew by %d KiB"
                   % (proto, r.status, r.rc, grew))
            eq((r.rc, r.status), (0, 413), proto + ": curl exit code and status")
            sim.expect_nothing_since(mark, proto)
            growth.append((proto, grew))


@suite.test
def ten_thousand_nested_arrays_are_a_clean_400():
    n = 10000
    bodies = [
        ("top-level arrays", b"[" * n + b"]" * n),
        ("arrays under a known field", b'{"InteractionData":' + b"[" * n + b"]" * n + b"}"),
        ("arrays under an unknown field", b'{"Custom_c":' + b"[" * n + b"]" * n + b"}"),
        ("objects", b'{"a":' * n + b"1" + b"}" * n),
        ("unterminated", b'{"a":' + b"[" * n),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for name, body in bodies:
                what = "%s, %d nested %s" % (proto, n, name)
                mark = sim.mark()
                r = post(gw, body, http2=http2)
                h.assert_error_response(r, 400, what)
                v = h.text_violations(r)
                eq([c for (c, p, d) in v], ["CRMGATE-TOO-DEEP"], what + ": violations")
                check(len(r.body) < 16 * 1024, "%s: a %d-byte error document for a nesting error" % (what, len(r.body)))
                sim.expect_nothing_since(mark, what)
                eq(h.http_get(gw.admin_port, "/-/healthz")[0], 200, what + ": healthz afterwards")
        # still forwarding after all that
        eq(post(gw, EXAMPLE).status, 201, "a valid request afterwards")


@suite.test
def max_depth_boundary():
    # limits.max-depth 32: the top-level object is level 1, so 31 nested arrays in a field reach level 32
    def nested(k):
        return b'{"Custom_c":' + b"[" * k + b"]" * k + b"}"
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            mark = sim.mark()
            eq(post(gw, nested(31), http2=http2).status, 201, proto + ": depth 32")
            sim.expect_one_since(mark, proto)
            mark = sim.mark()
            r = post(gw, nested(32), http2=http2)
            h.assert_error_response(r, 400, proto + ": depth 33")
            eq([c for (c, p, d) in h.text_violations(r)], ["CRMGATE-TOO-DEEP"], proto + ": depth 33")
            sim.expect_nothing_since(mark, proto)
    with suite.stack(config="limits:\n  max-depth: 3\n") as (sim, gw):
        eq(post(gw, b'{"InteractionData":[{"Value":"v"}]}').status, 201, "depth 3 with max-depth 3")
        eq(post(gw, b'{"Custom_c":[[1]]}').status, 201, "depth 3 (scalars are not levels) with max-depth 3")
        r = post(gw, b'{"Custom_c":[[[]]]}')
        h.assert_error_response(r, 400, "depth 4 with max-depth 3")
        eq([c for (c, p, d) in h.text_violations(r)], ["CRMGATE-TOO-DEEP"], "depth 4 with max-depth 3")


@suite.test
def chunked_upload_is_judged_like_content_length():
    valid = (b'{\n  "ChannelTypeCd" : "ORA_SVC_WEB",\n  "Description" : "chunked \\u00e9 \xe2\x9c\x93"\n}\n')
    invalid = json.dumps({"CreatedBy": "x", "Description": "d" * 1001,
                          "interactionReferences": [{"ObjectTypeCd": "NOPE"}]}).encode()
    with suite.stack() as (sim, gw):
        # valid: forwarded byte for byte, like its Content-Length twin
        for headers in ([JSON_CT], [JSON_CT, CHUNKED]):
            mark = sim.mark()
            r = post(gw, valid, headers=headers, verbose=True)
            eq(r.status, 201, "valid body with %s" % headers)
            eq(sim.expect_one_since(mark, str(headers)).body, valid, "body upstream with %s" % headers)
        check(re.search(r"^> Transfer-Encoding: chunked", r.stderr, re.M | re.I) and
              not re.search(r"^> Content-Length", r.stderr, re.M | re.I),
              "curl did not send a chunked request:\n" + h.tail(r.stderr))
        # invalid: the same error document, in both formats
        for extra in ([], ["REST-Framework-Version: 4"]):
            answers = []
            for headers in ([JSON_CT], [JSON_CT, CHUNKED]):
                mark = sim.mark()
                r = post(gw, invalid, headers=headers + extra)
                h.assert_error_response(r, 400, "invalid body with %s" % (headers + extra))
                sim.expect_nothing_since(mark, str(headers + extra))
                answers.append((r.status, r.header("content-type"), r.body))
            eq(answers[1], answers[0], "chunked vs Content-Length answer %s" % extra)
        # over the limit: 413 either way
        for headers in ([JSON_CT], [JSON_CT, CHUNKED]):
            r = expect_413(sim, gw, padded(MIB + 1), False, MIB, "1 MiB + 1 with %s" % headers, headers=headers)
            check_too_large_text(r, MIB, str(headers))


@suite.test
def http2_body_without_content_length_is_judged_the_same():
    # over HTTP/2, curl drops Transfer-Encoding and sends the body in DATA frames without a content-length
    invalid = json.dumps({"CreatedBy": "x", "interactionReferences": [{"ObjectTypeCd": "NOPE"}]}).encode()
    with suite.stack() as (sim, gw):
        mark = sim.mark()
        r = post(gw, EXAMPLE, headers=[JSON_CT, CHUNKED], http2=True, verbose=True)
        check(not re.search(r"^> content-length", r.stderr, re.M | re.I),
              "curl sent a content-length over HTTP/2:\n" + h.tail(r.stderr))
        eq(r.status, 201, "valid body without content-length")
        eq(sim.expect_one_since(mark, "HTTP/2 without content-length").body, EXAMPLE, "body upstream")
        answers = []
        for headers in ([JSON_CT], [JSON_CT, CHUNKED]):
            mark = sim.mark()
            r = post(gw, invalid, headers=headers, http2=True)
            h.assert_error_response(r, 400, "HTTP/2 invalid body with %s" % headers)
            sim.expect_nothing_since(mark, str(headers))
            answers.append((r.status, r.header("content-type"), r.body))
        eq(answers[1], answers[0], "HTTP/2 answer with and without content-length")
        r = expect_413(sim, gw, padded(MIB + 1), True, MIB, "HTTP/2 1 MiB + 1 without content-length",
                       headers=[JSON_CT, CHUNKED])
        check_too_large_text(r, MIB, "HTTP/2 without content-length")


suite.main()
