"""
End to end: what crmgate forwards, it forwards untouched.

A valid write reaches the CRM simulator byte for byte (no re-serialisation),
with the client's headers, over HTTP/1.1 and HTTP/2; request ids are kept or
generated and travel both ways; pass-through methods, child routes and query
strings are forwarded; connections are reused on both sides of the gateway.
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("forwarding")
PROTOCOLS = ((False, "HTTP/1.1"), (True, "HTTP/2"))

# A valid payload as a person would type it: CRLF and tabs, spaces around every
# token, escapes (\u00e9, a surrogate pair, \", \\, \/, \n, \t) next to raw
# non-ASCII UTF-8 (2-, 3- and 4-byte sequences), and whitespace after the object.
PRETTY = (
    '{\r\n'
    '\t"ChannelTypeCd" :\t"ORA_SVC_WEB" ,\n'
    '   "Description" : "Caf\\u00e9 \\u2013 na\u00efve \u65e5\u672c\u8a9e \U0001F600 = \\ud83d\\ude00,'
    ' \\"quoted\\" \\\\ \\/ \\n\\t end"  ,\n'
    '\n'
    '  "DirectionCd":"ORA_SVC_INBOUND",   "TopLevelFlag" : true ,\n'
    '  "ChannelId"  :  100000012345678 ,\n'
    '  "interactionReferences" : [ { "ObjectTypeCd" : "SVC_SERVICE_REQUESTS" , "ObjectId" : 300100 } ,\n'
    '                              {"ObjectTypeCd":"MOO_OPTY"} ]\n'
    '}\n  \n'
).encode("utf-8")


def create_item(gw, http2=False):
    r = post(gw, EXAMPLE, http2=http2)
    eq(r.status, 201, "creating an interaction")
    item = r.json()
    check(isinstance(item.get("InteractionId"), int), "the created item has no InteractionId: %r" % item)
    return item["InteractionId"]


@suite.test
def documented_example_is_created_over_http1_and_http2():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            mark = sim.mark()
            r = post(gw, EXAMPLE, http2=http2)
            eq(r.status, 201, proto + " status")
            eq(r.version, "2" if http2 else "1.1", proto + " protocol curl saw")
            item = r.json()
            eq(item.get("ChannelTypeCd"), "ORA_SVC_WEB", proto + " created item")
            check(isinstance(item.get("InteractionId"), int), "no InteractionId in %r" % item)
            rec = sim.expect_one_since(mark, proto)
            eq(rec.method, "POST", proto + " method upstream")
            eq(rec.path, INTERACTIONS, proto + " path upstream")
            eq(rec.body, EXAMPLE, proto + " body upstream")


@suite.test
def pretty_printed_utf8_body_arrives_byte_for_byte():
    content_types = (JSON_CT, "Content-Type: application/vnd.oracle.adf.resourceitem+json; charset=UTF-8")
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            for ct in content_types:
                mark = sim.mark()
                r = post(gw, PRETTY, headers=[ct], http2=http2)
                eq(r.status, 201, "%s %s status" % (proto, ct))
                rec = sim.expect_one_since(mark, proto)
                check(rec.body == PRETTY, "%s, %s: the simulator received different bytes:\n sent %r\n got  %r"
                      % (proto, ct, PRETTY, rec.body))
                # the simulator parsed the same document the client wrote
                eq(r.json().get("Description"), "Caf\u00e9 \u2013 na\u00efve \u65e5\u672c\u8a9e \U0001F600 = "
                   "\U0001F600, \"quoted\" \\ / \n\t end", proto + " Description as the CRM stored it")


@suite.test
def client_headers_reach_upstream_unchanged():
    sent = [
        ("Metadata-Context", 'sandbox="TrackEmployeeFeature"'),
        ("Authorization", "Bearer x"),
        ("Upsert-Mode", "true"),
        ("REST-Framework-Version", "4"),
        ("Accept-Language", "fr-FR"),
    ]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            mark = sim.mark()
            r = post(gw, EXAMPLE, headers=[JSON_CT] + ["%s: %s" % kv for kv in sent], http2=http2)
            eq(r.status, 201, proto + " status")
            rec = sim.expect_one_since(mark, proto)
            for name, value in sent:
                eq(rec.header_all(name), [value], "%s: header %s as the simulator received it" % (proto, name))
            eq(rec.header_all("content-type"), ["application/json"], proto + " Content-Type upstream")


@suite.test
def client_request_id_travels_upstream_and_back():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            rid = "client-id-%s-0123456789" % ("h2" if http2 else "h1")
            mark = sim.mark()
            r = post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: " + rid], http2=http2)
            eq(r.status, 201, proto + " status")
            rec = sim.expect_one_since(mark, proto)
            eq(rec.header_all("x-request-id"), [rid], proto + " X-Request-ID upstream")
            eq(r.header_all("x-request-id"), [rid], proto + " X-Request-ID on the response (exactly once)")


@suite.test
def generated_request_id_is_on_response_and_upstream():
    with suite.stack() as (sim, gw):
        seen = set()
        for http2, proto in PROTOCOLS:
            for _ in range(2):
                mark = sim.mark()
                r = post(gw, EXAMPLE, http2=http2)
                eq(r.status, 201, proto + " status")
                ids = r.header_all("x-request-id")
                check(len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0]),
                      "%s: expected one generated 32-hex-digit X-Request-ID on the response, got %r" % (proto, ids))
                rec = sim.expect_one_since(mark, proto)
                eq(rec.header_all("x-request-id"), ids, proto + " generated id as the simulator recorded it")
                check(ids[0] not in seen, "request id %s was generated twice" % ids[0])
                seen.add(ids[0])


@suite.test
def unusable_request_ids_are_replaced():
    # too long, not printable ASCII, or sent twice: the gateway generates one id, the same on both sides
    variants = [["X-Request-ID: " + "a" * 129], ["X-Request-ID: has space"], ["X-Request-ID: one", "X-Request-ID: two"],
                ["X-Request-ID: caf\u00e9"]]
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            # 128 printable characters is the longest id kept
            longest = "k" * 127 + "~"
            mark = sim.mark()
            r = post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: " + longest], http2=http2)
            eq(r.header_all("x-request-id"), [longest], proto + ": a 128-character id on the response")
            eq(sim.expect_one_since(mark, proto).header_all("x-request-id"), [longest], proto + ": upstream")
            for extra in variants:
                mark = sim.mark()
                r = post(gw, EXAMPLE, headers=[JSON_CT] + extra, http2=http2)
                eq(r.status, 201, "%s %s status" % (proto, extra))
                ids = r.header_all("x-request-id")
                check(len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0]),
                      "%s %s: expected one generated id on the response, got %r" % (proto, extra, ids))
                rec = sim.expect_one_since(mark, proto)
                eq(rec.header_all("x-request-id"), ids, "%s %s: ids upstream" % (proto, extra))


@suite.test
def get_passes_through_with_query_string():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            item_id = create_item(gw, http2)
            query = "?onlyData=true&limit=5&q=ChannelTypeCd%3DORA_SVC_WEB%20and%20x%3D%27%E2%9C%93%27&fields=A,B"
            mark = sim.mark()
            r = h.curl(gw.url(INTERACTIONS + query), http2=http2)
            eq(r.status, 200, proto + " GET collection")
            check(any(it.get("InteractionId") == item_id for it in r.json().get("items", [])),
                  "%s: the collection lacks item %d" % (proto, item_id))
            rec = sim.expect_one_since(mark, proto + " GET collection")
            eq((rec.method, rec.path), ("GET", INTERACTIONS + query), proto + " GET upstream")
            ids = rec.header_all("x-request-id")
            check(len(ids) == 1, "%s: a pass-through GET arrived with X-Request-ID %r" % (proto, ids))
            eq(r.header_all("x-request-id"), ids, proto + " X-Request-ID of a pass-through GET")
            mark = sim.mark()
            r = h.curl(gw.url("%s/%d" % (INTERACTIONS, item_id)), http2=http2)
            eq(r.status, 200, proto + " GET item")
            eq(r.json().get("InteractionId"), item_id, proto + " GET item id")
            rec = sim.expect_one_since(mark, proto + " GET item")
            eq((rec.method, rec.path), ("GET", "%s/%d" % (INTERACTIONS, item_id)), proto + " GET item upstream")


@suite.test
def post_query_string_is_preserved():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            path = INTERACTIONS + "?fields=InteractionId,ChannelTypeCd&onlyData=true&x=%2F%3F%26"
            mark = sim.mark()
            r = post(gw, EXAMPLE, path=path, http2=http2)
            eq(r.status, 201, proto + " status")
            rec = sim.expect_one_since(mark, proto)
            eq(rec.path, path, proto + " path and query upstream")
            eq(rec.body, EXAMPLE, proto + " body upstream")


@suite.test
def patch_and_child_routes_forward():
    item_ct = "Content-Type: application/vnd.oracle.adf.resourceitem+json"
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            item_id = create_item(gw, http2)
            base = "%s/%d" % (INTERACTIONS, item_id)
            cases = [
                ("PATCH", base, b'{ "Description" : "updated \\u00e9 \xc3\xa9",\n "StatusCd":"ORA_SVC_CLOSED" }', 200),
                ("POST", base + "/child/interactionReferences",
                 b'{"ObjectTypeCd":"SVC_SERVICE_REQUESTS","ObjectId":300100123}', 201),
                ("PATCH", base + "/child/interactionReferences/300100900000001", b'{"ObjectId":  42}', 200),
                ("POST", base + "/child/InteractionParticipants", b'{"Email":"agent@example.com","DurationMinutes":3}', 201),
                ("POST", base + "/child/childInteractions", b'{"ChannelTypeCd":"ORA_SVC_PHONE","EndInteractionFlag":false}', 201),
                ("PATCH", base + "/child/InteractionData/77", b'{"Value":"v"}', 200),
            ]
            for method, path, body, status in cases:
                mark = sim.mark()
                r = h.curl(gw.url(path), method=method, headers=[item_ct], data=body, http2=http2)
                eq(r.status, status, "%s %s %s" % (proto, method, path))
                rec = sim.expect_one_since(mark, "%s %s %s" % (proto, method, path))
                eq((rec.method, rec.path, rec.body), (method, path, body), "%s %s %s upstream" % (proto, method, path))
            r = h.curl(gw.url(base), http2=http2)
            eq(r.json().get("Description"), "updated \u00e9 \u00e9", proto + " the PATCH took effect")


@suite.test
def delete_passes_through():
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            item_id = create_item(gw, http2)
            path = "%s/%d" % (INTERACTIONS, item_id)
            mark = sim.mark()
            r = h.curl(gw.url(path), method="DELETE", http2=http2)
            eq(r.status, 204, proto + " DELETE")
            rec = sim.expect_one_since(mark, proto + " DELETE")
            eq((rec.method, rec.path), ("DELETE", path), proto + " DELETE upstream")
            eq(h.curl(gw.url(path), http2=http2).status, 404, proto + " GET after DELETE")


@suite.test
def unknown_root_field_is_reported_and_forwarded_unchanged():
    # interaction's unknown-fields policy is "report": forwarded byte for byte
    body = b'{"ChannelTypeCd":"ORA_SVC_WEB",  "Custom_c" : {"a":[1,2.50,"x"]}}'
    with suite.stack() as (sim, gw):
        for http2, proto in PROTOCOLS:
            mark = sim.mark()
            r = post(gw, body, http2=http2)
            eq(r.status, 201, proto + " status")
            eq(sim.expect_one_since(mark, proto).body, body, proto + " body upstream")


@suite.test
def upstream_connections_are_reused():
    # crmsim has no connection counter, so a counting TCP relay sits between crmgate and crmsim
    sim = suite.start_sim()
    relay = h.TcpCounter(sim.port)
    try:
        gw = suite.start_gateway(relay.port, threads=1)
        n = 12
        for i in range(n):
            if i % 2 == 0:
                eq(post(gw, EXAMPLE).status, 201, "request %d" % i)
            else:
                eq(h.curl(gw.url()).status, 200, "request %d" % i)
        eq(sim.count(), n, "requests the simulator received")
        h.note("%d sequential requests used %d upstream connection(s)" % (n, relay.connections))
        check(relay.connections < n, "no upstream keep-alive: %d requests opened %d upstream connections"
              % (n, relay.connections))
        check(relay.connections <= 2, "upstream keep-alive is weak: %d requests opened %d connections with 1 worker"
              % (n, relay.connections))
        suite.stop(gw)
    finally:
        relay.close()


def curl_three_on_one_connection(gw):
    """201, then 400, then 201 on one HTTP/1.1 connection (curl --next)."""
    one = ["-sv", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}\\n", "-X", "POST", "-H", JSON_CT]
    return h.run_curl(one + ["--data-binary", EXAMPLE.decode(), gw.url(), "--next"] +
                      one + ["--data-binary", '{"CreatedBy":"someone"}', gw.url(), "--next"] +
                      one + ["--data-binary", EXAMPLE.decode(), gw.url()])


@suite.test
def client_connection_is_reused_across_201_and_400_http1():
    with suite.stack() as (sim, gw):
        mark = sim.mark()
        cp = curl_three_on_one_connection(gw)
        eq(cp.returncode, 0, "curl exit code")
        eq(cp.stdout_text.split(), ["201", "400", "201"], "statuses")
        err = cp.stderr_text
        check(err.count("Connected to") == 1 and err.count("Re-using existing connection") == 2,
              "the requests after the first did not reuse the connection:\n%s" % h.tail(err, 60))
        eq(err.count("left intact"), 3, '"left intact" in the curl trace')
        eq(len(sim.since(mark)), 2, "requests forwarded (the 400 must not be)")


@suite.test
def client_connection_is_reused_across_201_and_400_http2():
    # curl 7.88.1 never sends a second request on a reused h2c prior-knowledge connection (it exits 16
    # against crmsim alone too), so h2load drives one HTTP/2 connection: 201, 400, 201 in turn.
    if shutil.which("h2load") is None:
        raise h.Skip("h2load (nghttp2-client) is not installed")
    with suite.stack() as (sim, gw):
        body = os.path.join(suite.workdir(), "example.json")
        with open(body, "wb") as f:
            f.write(EXAMPLE)
        # the same body is invalid on the interactionReferences child route (unknown field ChannelTypeCd)
        urls = [gw.url(), gw.url(INTERACTIONS + "/5/child/interactionReferences"), gw.url()]
        mark = sim.mark()
        cp = subprocess.run(["h2load", "-n", "3", "-c", "1", "-m", "1", "-d", body, "-H", "content-type: application/json"]
                            + urls, capture_output=True, text=True, timeout=h.timeout(30))
        out = cp.stdout + cp.stderr
        eq(cp.returncode, 0, "h2load exit code")
        check("Application protocol: h2c" in out, "h2load did not speak HTTP/2:\n" + out)
        check("requests: 3 total, 3 started, 3 done, 2 succeeded, 1 failed, 0 errored, 0 timeout" in out,
              "one HTTP/2 connection did not carry 201, 400, 201:\n" + out)
        check("status codes: 2 2xx, 0 3xx, 1 4xx, 0 5xx" in out, "statuses over HTTP/2:\n" + out)
        new = sim.since(mark)
        eq([r.path for r in new], [INTERACTIONS, INTERACTIONS], "requests forwarded (the 400 must not be)")


@suite.test
def report_mode_forwards_violations_unchanged():
    # a rule set in report mode: violations are recorded, the request goes upstream byte for byte;
    # structural failures (invalid JSON) still reject
    with open(os.path.join(h.RULES_DIR, "interactions.json")) as f:
        rules = json.load(f)
    rules["mode"] = "report"
    path = os.path.join(suite.workdir(), "report-rules.json")
    with open(path, "w") as f:
        json.dump(rules, f, indent=1)
    bad = b'{"ChannelTypeCd":"ORA_SVC_WEB","CreatedBy":"me","interactionReferences":[{"ObjectTypeCd":"NOPE"}]}'
    with suite.stack(rules=path) as (sim, gw):
        for http2, proto in PROTOCOLS:
            mark = sim.mark()
            r = post(gw, bad, http2=http2)
            eq(r.status, 201, proto + ": violations in report mode")
            eq(sim.expect_one_since(mark, proto).body, bad, proto + ": body upstream")
            mark = sim.mark()
            r = post(gw, b'{"ChannelTypeCd":', http2=http2)
            h.assert_error_response(r, 400, proto + ": invalid JSON in report mode")
            sim.expect_nothing_since(mark, proto + ": invalid JSON in report mode")


@suite.test
def concurrent_clients_on_both_protocols():
    # 8 connections x 4 streams, valid and invalid requests interleaved, on 2 worker threads
    if shutil.which("h2load") is None:
        raise h.Skip("h2load (nghttp2-client) is not installed")
    body = os.path.join(suite.workdir(), "example.json")
    with open(body, "wb") as f:
        f.write(EXAMPLE)
    with suite.stack() as (sim, gw):
        urls = [gw.url(), gw.url(INTERACTIONS + "/5/child/interactionReferences")]  # 201, then 400 (unknown field)
        for flags, proto in (([], "HTTP/2"), (["--h1"], "HTTP/1.1")):
            mark = sim.mark()
            cp = subprocess.run(["h2load", "-n", "400", "-c", "8", "-m", "4", "-d", body,
                                 "-H", "content-type: application/json"] + flags + urls,
                                capture_output=True, text=True, timeout=h.timeout(60))
            out = cp.stdout + cp.stderr
            eq(cp.returncode, 0, proto + ": h2load exit code")
            check("requests: 400 total, 400 started, 400 done, 200 succeeded, 200 failed, 0 errored, 0 timeout" in out,
                  "%s: not every request was answered:\n%s" % (proto, out))
            check("status codes: 200 2xx, 0 3xx, 200 4xx, 0 5xx" in out, "%s: statuses:\n%s" % (proto, out))
            new = sim.since(mark)
            eq(len(new), 200, proto + ": requests forwarded")
            check(all(r.path == INTERACTIONS and r.body == EXAMPLE for r in new), proto + ": a forwarded request changed")
            check(len({r.header("x-request-id") for r in new}) == 200, proto + ": request ids are not unique")


suite.main()
