"""
End to end: what crmgate rejects never reaches the CRM, and the client is told
why in the format it negotiated.

Invalid payloads get 400 over HTTP/1.1 and HTTP/2 with every violation listed:
text/plain (one "CODE POINTER: detail" line each) for REST-Framework-Version
absent or 1-3, Oracle's application/vnd.oracle.adf.error+json for 4 and up,
application/problem+json when the configuration says so. Bad headers get
400/415. Every error response has an X-Request-ID and a correct Content-Length,
and after every rejection the simulator has recorded nothing.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("rejection")
PROTOCOLS = ((False, "HTTP/1.1"), (True, "HTTP/2"))


def dumps(doc):
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


# One payload per kind of violation the brief names, each with the (code, pointer) it must produce.
SINGLE = [
    ("too long Description",
     {"ChannelTypeCd": "ORA_SVC_WEB", "Description": "x" * 1001},
     ("CRMGATE-MAX-LENGTH", "/Description")),
    ("read-only CreatedBy",
     {"ChannelTypeCd": "ORA_SVC_WEB", "CreatedBy": "SOMEONE"},
     ("CRMGATE-READ-ONLY", "/CreatedBy")),
    ("bad ObjectTypeCd in interactionReferences[1]",
     {"ChannelTypeCd": "ORA_SVC_WEB",
      "interactionReferences": [{"ObjectTypeCd": "MOO_OPTY"}, {"ObjectTypeCd": "NOT_A_CODE", "ObjectId": 1}]},
     ("CRMGATE-LOOKUP", "/interactionReferences/1/ObjectTypeCd")),
    ("unknown field in interactionReferences[0]",
     {"interactionReferences": [{"ObjectTypeCd": "MOO_OPTY", "Bogus": 1}]},
     ("CRMGATE-UNKNOWN-FIELD", "/interactionReferences/0/Bogus")),
    ("wrong type",
     {"ChannelTypeCd": "ORA_SVC_WEB", "ChannelId": "12345"},
     ("CRMGATE-TYPE", "/ChannelId")),
]

# All of them at once, plus a few more: every one must be listed.
ALL_IN_ONE = dumps({
    "ChannelTypeCd": "ORA_SVC_WEB",
    "CreatedBy": "SOMEONE",
    "Description": "\u00e9" * 1001,
    "ChannelId": "12345",
    "TopLevelFlag": "yes",
    "LastUpdateDate": "2017-03-03T04:01:13-08:00",
    "interactionReferences": [
        {"ObjectTypeCd": "MOO_OPTY", "Bogus": 1},
        {"ObjectTypeCd": "NOT_A_CODE", "ObjectId": 1},
    ],
})
ALL_EXPECTED = sorted([
    ("CRMGATE-READ-ONLY", "/CreatedBy"),
    ("CRMGATE-MAX-LENGTH", "/Description"),
    ("CRMGATE-TYPE", "/ChannelId"),
    ("CRMGATE-TYPE", "/TopLevelFlag"),
    ("CRMGATE-READ-ONLY", "/LastUpdateDate"),
    ("CRMGATE-UNKNOWN-FIELD", "/interactionReferences/0/Bogus"),
    ("CRMGATE-LOOKUP", "/interactionReferences/1/ObjectTypeCd"),
])


def reject(sim, gw, body, status=400, path=INTERACTIONS, headers=(JSON_CT,), what="", method="POST", **kw):
    """Sends a request that must be refused; checks the common parts and that nothing reached the simulator."""
    mark = sim.mark()
    r = h.curl(gw.url(path), method=method, headers=list(headers), data=body, **kw)
    h.assert_error_response(r, status, what)
    sim.expect_nothing_since(mark, what)
    return r


def codes(violations):
    return sorted((v[0], v[1]) for v in violations)


def check_details_name_fields(violations, what):
    for v in violations:
        code, pointer, detail = v[0], v[1], v[2]
        field = pointer.rsplit("/", 1)[-1]
        check(field in detail, "%s: the detail for %s does not name %r: %r" % (what, pointer, field, detail))


@suite.test
def each_violation_kind_is_rejected_and_never_forwarded():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for name, doc, expected in SINGLE:
                what = "%s, %s" % (proto, name)
                r = reject(sim, gw, dumps(doc), http2=http2, what=what)
                v = h.text_violations(r)
                eq(codes(v), [expected], what + ": violations")
                check_details_name_fields(v, what)


@suite.test
def text_errors_for_framework_versions_absent_1_2_3():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            bodies = set()
            for version in (None, "1", "2", "3"):
                what = "%s, REST-Framework-Version %s" % (proto, version)
                headers = [JSON_CT] + ([] if version is None else ["REST-Framework-Version: " + version])
                r = reject(sim, gw, ALL_IN_ONE, headers=headers, http2=http2, what=what)
                eq(r.header("content-type"), "text/plain; charset=utf-8", what + ": Content-Type")
                v = h.text_violations(r)
                eq(codes(v), ALL_EXPECTED, what + ": one line per violation")
                check_details_name_fields(v, what)
                bodies.add(r.body)
            eq(len(bodies), 1, proto + ": the text error differs between versions 1-3")


@suite.test
def oracle_json_errors_for_framework_version_4_and_up():
    with suite.stack() as (sim, gw):
        by_protocol = {}
        for http2, proto in PROTOCOLS:
            for version in ("4", "5", "9"):
                what = "%s, REST-Framework-Version %s" % (proto, version)
                headers = [JSON_CT, "REST-Framework-Version: " + version, "Accept: application/json"]
                r = reject(sim, gw, ALL_IN_ONE, headers=headers, http2=http2, what=what)
                v = h.oracle_violations(r, 400)
                eq(r.json()["title"], "Bad Request", what + ": title")
                eq(codes(v), ALL_EXPECTED, what + ": o:errorDetails")
                check_details_name_fields(v, what)
                by_protocol.setdefault(version, set()).add(r.body)
        for version, bodies in by_protocol.items():
            eq(len(bodies), 1, "version %s: the error document differs between HTTP/1.1 and HTTP/2" % version)


@suite.test
def version_4_client_that_does_not_accept_json_gets_text():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            what = proto + ", version 4 with Accept: text/html"
            r = reject(sim, gw, ALL_IN_ONE, headers=[JSON_CT, "REST-Framework-Version: 4", "Accept: text/html"],
                       http2=http2, what=what)
            eq(codes(h.text_violations(r)), ALL_EXPECTED, what)


@suite.test
def problem_json_when_configured():
    config = "errors:\n  format: problem+json\n"
    with suite.stack(config=config) as (sim, gw):
        for http2, proto in PROTOCOLS:
            for version in (None, "4"):
                what = "%s, problem+json, version %s" % (proto, version)
                headers = [JSON_CT] + ([] if version is None else ["REST-Framework-Version: " + version])
                r = reject(sim, gw, ALL_IN_ONE, headers=headers, http2=http2, what=what)
                v = h.problem_violations(r, 400)
                eq(codes(v), ALL_EXPECTED, what + ": errors[]")
                check_details_name_fields(v, what)
                limits = {(c, p): limit for (c, p, d, limit) in v}
                eq(limits[("CRMGATE-MAX-LENGTH", "/Description")], 1000, what + ": limit of /Description")
            # a client-chosen request id is the instance
            r = reject(sim, gw, ALL_IN_ONE, headers=[JSON_CT, "X-Request-ID: trace-42"], http2=http2,
                       what=proto + " with X-Request-ID")
            eq(r.json().get("instance"), "trace-42", proto + ": instance")
            eq(r.header_all("x-request-id"), ["trace-42"], proto + ": X-Request-ID")
            # statuses other than 400 use the same format
            r = reject(sim, gw, EXAMPLE, status=415, headers=["Content-Type: text/plain"], http2=http2,
                       what=proto + " 415 as problem+json")
            eq(codes(h.problem_violations(r, 415)), [("CRMGATE-MEDIA-TYPE", "Content-Type")], proto + " 415")


@suite.test
def length_is_counted_in_characters_not_bytes():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            # 1000 two-byte characters (2000 bytes) are within maxLength 1000; 1001 are not
            mark = sim.mark()
            ok = dumps({"Description": "\u00e9" * 1000})
            r = post(gw, ok, http2=http2)
            eq(r.status, 201, proto + ": Description of 1000 characters")
            eq(sim.expect_one_since(mark, proto).body, ok, proto + ": body upstream")
            r = reject(sim, gw, dumps({"Description": "\U0001F600" * 1001}), http2=http2, what=proto + " 1001 emoji")
            eq(codes(h.text_violations(r)), [("CRMGATE-MAX-LENGTH", "/Description")], proto)


@suite.test
def content_type_must_be_json():
    variants = [
        (["Content-Type: text/plain"], "text/plain"),
        (["Content-Type:"], "missing"),
        (["Content-Type: application/x-www-form-urlencoded"], "form"),
        (["Content-Type: application/json; charset=ISO-8859-1"], "latin-1 charset"),
        (["Content-Type: application/json", "Content-Type: application/json"], "sent twice"),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for headers, name in variants:
                what = "%s, Content-Type %s" % (proto, name)
                r = reject(sim, gw, EXAMPLE, status=415, headers=headers, http2=http2, what=what)
                eq(codes(h.text_violations(r)), [("CRMGATE-MEDIA-TYPE", "Content-Type")], what)
            r = reject(sim, gw, EXAMPLE, status=415, headers=["Content-Type: text/plain", "REST-Framework-Version: 4"],
                       http2=http2, what=proto + " 415 version 4")
            eq(codes(h.oracle_violations(r, 415)), [("CRMGATE-MEDIA-TYPE", "Content-Type")], proto + " 415 version 4")
            # the JSON media types Oracle uses are accepted
            for ct in ("application/json; charset=utf-8", "application/vnd.oracle.adf.resourceitem+json"):
                mark = sim.mark()
                eq(post(gw, EXAMPLE, headers=["Content-Type: " + ct], http2=http2).status, 201, proto + " " + ct)
                sim.expect_one_since(mark, proto + " " + ct)


@suite.test
def bad_upsert_mode_and_framework_version_headers():
    cases = [
        (["Upsert-Mode: yes"], [("CRMGATE-UPSERT-MODE", "Upsert-Mode")]),
        (["Upsert-Mode: true", "Upsert-Mode: false"], [("CRMGATE-UPSERT-MODE", "Upsert-Mode")]),
        (["REST-Framework-Version: 10"], [("CRMGATE-FRAMEWORK-VERSION", "REST-Framework-Version")]),
        (["REST-Framework-Version: 0"], [("CRMGATE-FRAMEWORK-VERSION", "REST-Framework-Version")]),
        (["REST-Framework-Version: four"], [("CRMGATE-FRAMEWORK-VERSION", "REST-Framework-Version")]),
        (["Upsert-Mode: yes", "REST-Framework-Version: 10"],
         [("CRMGATE-FRAMEWORK-VERSION", "REST-Framework-Version"), ("CRMGATE-UPSERT-MODE", "Upsert-Mode")]),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for headers, expected in cases:
                what = "%s, %s" % (proto, headers)
                r = reject(sim, gw, EXAMPLE, headers=[JSON_CT] + headers, http2=http2, what=what)
                eq(codes(h.text_violations(r)), sorted(expected), what)
            # header and body violations are listed together, in Oracle's format for a valid version 4
            r = reject(sim, gw, dumps({"CreatedBy": "x"}), headers=[JSON_CT, "Upsert-Mode: yes", "REST-Framework-Version: 4"],
                       http2=http2, what=proto + " header and body")
            eq(codes(h.oracle_violations(r)), [("CRMGATE-READ-ONLY", "/CreatedBy"), ("CRMGATE-UPSERT-MODE", "Upsert-Mode")],
               proto + " header and body violations")
            for value in ("true", "false"):
                mark = sim.mark()
                eq(post(gw, EXAMPLE, headers=[JSON_CT, "Upsert-Mode: " + value], http2=http2).status, 201,
                   proto + " Upsert-Mode " + value)
                sim.expect_one_since(mark, proto)


@suite.test
def structurally_invalid_bodies():
    cases = [
        (b'{"ChannelTypeCd":', "CRMGATE-INVALID-JSON"),
        (b"", "CRMGATE-EMPTY-BODY"),
        (b"[" + EXAMPLE + b"]", "CRMGATE-NOT-AN-OBJECT"),
        (b'"ORA_SVC_WEB"', "CRMGATE-NOT-AN-OBJECT"),
        (b'{"ChannelTypeCd":"A","ChannelTypeCd":"B"}', "CRMGATE-DUPLICATE-KEY"),
        (b'{"Description":"caf\xe9"}', "CRMGATE-INVALID-UTF8"),
        (b'{"Description":"\\ud800"}', "CRMGATE-INVALID-UNICODE-ESCAPE"),
        (b'{"Description":"a\\u0000b"}', "CRMGATE-NUL-CHARACTER"),
        (b'{"ChannelId":123456789012345678901234567890}', "CRMGATE-NUMBER-OVERFLOW"),
        (b'{"ChannelTypeCd":"ORA_SVC_WEB"} {}', "CRMGATE-INVALID-JSON"),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for body, code in cases:
                what = "%s, %r" % (proto, body)
                r = reject(sim, gw, body, http2=http2, what=what)
                v = h.text_violations(r)
                eq([c for (c, p, d) in v], [code], what)


@suite.test
def child_routes_and_updates_are_validated():
    item_ct = "Content-Type: application/vnd.oracle.adf.resourceitem+json"
    base = INTERACTIONS + "/300100000000001"
    cases = [
        ("POST", base + "/child/interactionReferences", {"ObjectTypeCd": "BAD"}, ("CRMGATE-LOOKUP", "/ObjectTypeCd")),
        ("POST", base + "/child/interactionReferences", {"ChannelTypeCd": "x"}, ("CRMGATE-UNKNOWN-FIELD", "/ChannelTypeCd")),
        ("PATCH", base + "/child/interactionReferences/7", {"InteractionNumber": "N1"},
         ("CRMGATE-CREATE-ONLY", "/InteractionNumber")),
        ("PATCH", base, {"LastUpdateDate": "2017-03-03T04:01:13-08:00"}, ("CRMGATE-READ-ONLY", "/LastUpdateDate")),
        ("POST", base + "/child/InteractionParticipants", {"Email": "e" * 129}, ("CRMGATE-MAX-LENGTH", "/Email")),
        ("POST", base + "/child/childInteractions", {"EndInteractionFlag": "Y"}, ("CRMGATE-TYPE", "/EndInteractionFlag")),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for method, path, doc, expected in cases:
                what = "%s, %s %s" % (proto, method, path)
                r = reject(sim, gw, dumps(doc), method=method, path=path, headers=[item_ct], http2=http2, what=what)
                eq(codes(h.text_violations(r)), [expected], what)
            # the CRM acts on X-HTTP-Method-Override, so the route is chosen by it
            r = reject(sim, gw, dumps({"CreatedBy": "x"}), path=base, headers=[JSON_CT, "X-HTTP-Method-Override: PATCH"],
                       http2=http2, what=proto + " POST with X-HTTP-Method-Override: PATCH")
            eq(codes(h.text_violations(r)), [("CRMGATE-READ-ONLY", "/CreatedBy")], proto + " method override")


@suite.test
def equivalent_paths_cannot_bypass_validation():
    paths = [
        INTERACTIONS + "/",
        INTERACTIONS + "?onlyData=true",
        INTERACTIONS + ";jsessionid=abc",
        "/crmRestApi/resources/latest/interactions",
        "/crmRestApi/resources/11.13.18.05/%69nteractions",
        "/crmRestApi//resources/11.13.18.05/interactions",
        "//crmRestApi/resources/11.13.18.05/interactions",
        "/crmRestApi/./resources/11.13.18.05/interactions",
        "/crmRestApi/resources/11.13.18.05/x/../interactions",
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for path in paths:
                what = "%s, POST %s" % (proto, path)
                r = reject(sim, gw, dumps({"CreatedBy": "x"}), path=path, http2=http2, extra=["--path-as-is"], what=what)
                eq(codes(h.text_violations(r)), [("CRMGATE-READ-ONLY", "/CreatedBy")], what)


@suite.test
def error_responses_keep_the_client_request_id():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for status, headers, body in ((400, [JSON_CT], ALL_IN_ONE), (415, ["Content-Type: text/plain"], EXAMPLE)):
                r = reject(sim, gw, body, status=status, headers=headers + ["X-Request-ID: rid-%d-%s" % (status, proto)],
                           http2=http2, what="%s %d" % (proto, status))
                eq(r.header_all("x-request-id"), ["rid-%d-%s" % (status, proto)], "%s %d X-Request-ID" % (proto, status))
                eq(r.header("cache-control"), "no-store", "%s %d Cache-Control" % (proto, status))


@suite.test
def type_error_details_read_correctly():
    # "must be an object" / "must be an array", as for "an int64"
    cases = [
        ({"interactionReferences": {}}, "/interactionReferences", "array"),
        ({"InteractionData": [1]}, "/InteractionData/0", "object"),
    ]
    with suite.stack() as (sim, gw):
        for doc, pointer, expected in cases:
            r = reject(sim, gw, dumps(doc), what=str(doc))
            v = h.text_violations(r)
            eq([(c, p) for (c, p, d) in v], [("CRMGATE-TYPE", pointer)], str(doc))
            check(" must be an %s" % expected in v[0][2], "%s: the detail reads %r (expected 'must be an %s')"
                  % (doc, v[0][2], expected))


@suite.test
def all_violations_are_collected_up_to_the_cap():
    refs = [{"ObjectTypeCd": "BAD_%d" % i} for i in range(60)]
    body = dumps({"ChannelTypeCd": "ORA_SVC_WEB", "interactionReferences": refs})
    expected = [("CRMGATE-LOOKUP", "/interactionReferences/%d/ObjectTypeCd" % i) for i in range(60)]
    with suite.stack() as (sim, gw):
        # default limits.max-violations 50: 50 listed, then one line counting the other 10
        r = reject(sim, gw, body, what="60 violations, default cap")
        v = h.text_violations(r)
        eq(len(v), 51, "lines for 60 violations with the default cap of 50")
        eq(sorted((c, p) for (c, p, d) in v[:50]), sorted(expected[:50]), "the first 50 violations")
        eq(v[50][0], "CRMGATE-MORE", "the last line counts the rest")
        check("10 more" in v[50][2], "the CRMGATE-MORE line does not say 10 more: %r" % v[50][2])
        r = reject(sim, gw, body, headers=[JSON_CT, "REST-Framework-Version: 4"], what="60 violations, version 4")
        v = h.oracle_violations(r)
        eq(len(v), 51, "o:errorDetails for 60 violations")
        eq(v[50][0], "CRMGATE-MORE", "the last o:errorDetails item")
    with suite.stack(config="limits:\n  max-violations: 100\n") as (sim, gw):
        r = reject(sim, gw, body, what="60 violations, cap 100")
        eq(sorted(codes(h.text_violations(r))), sorted(expected), "all 60 violations with a cap of 100")


@suite.test
def keep_alive_survives_every_error():
    # README: every error response keeps the HTTP/1.1 connection open
    big = b'{"Payload":"' + b"A" * (1024 * 1024) + b'"}'
    sequence = [
        (ALL_IN_ONE, {"Content-Type": "application/json"}, 400),
        (EXAMPLE, {"Content-Type": "text/plain"}, 415),
        (big, {"Content-Type": "application/json"}, 413),
        (EXAMPLE, {"Content-Type": "application/json", "Upsert-Mode": "maybe"}, 400),
        (EXAMPLE, {"Content-Type": "application/json"}, 201),
    ]
    with suite.stack() as (sim, gw):
        conn = h.Http1(gw.port)
        for body, headers, status in sequence:
            got, response_headers, answer = conn.request("POST", INTERACTIONS, body, headers)
            eq(got, status, "status for %s" % headers)
        eq(conn.reconnects, 0, "reconnections over the sequence 400, 415, 413, 400, 201")
        conn.close()
        eq(sim.count(), 1, "requests forwarded")


suite.main()
