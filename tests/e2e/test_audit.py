"""
End to end: the audit trail. One JSON line per request on a validated route (every request with
audit.all-routes), with exactly the documented keys and no field value ever; untrusted strings escaped and capped;
one record per request under load from many clients, across a log rotation (rename + SIGUSR1) and across SIGTERM;
a failing sink (fail-closed: 503 and not ready; fail-open: forwarded); an unopenable path refused at start-up;
`--audit -` (standard output) and `--audit off`.
"""
import datetime
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policy_helpers as ph  # noqa: E402
from harness import API, EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("audit")
MARKER = "SECRET-VALUE-12345"
INVALID = b'{"ChannelTypeCd":"ORA_SVC_WEB","CreatedBy":"someone"}'


def audit_config(workdir, extra="", name="audit.log", **options):
    path = os.path.join(workdir, name)
    return ph.audit_yaml(path, **options) + extra, path


def wait_record(path, rid, seconds=10):
    found = ph.wait_until(lambda: [r for r in ph.read_audit(path, True) if r["request_id"] == rid], seconds,
                          "the audit record of request %s" % rid)
    check(len(found) == 1, "%d audit records for request %s" % (len(found), rid))
    return found[0]


def raw_request(port, head, body=b"", seconds=10):
    """Sends bytes as they are (paths curl would re-encode); returns (status, headers dict, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=h.timeout(seconds))
    try:
        s.sendall(head + body)
        resp = http.client.HTTPResponse(s, method=head.split(b" ", 1)[0].decode("latin-1"))
        resp.begin()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        s.close()


# ---- the record ----------------------------------------------------------------------------------------


@suite.test
def every_record_has_exactly_the_documented_keys():
    workdir = suite.workdir()
    yaml, path = audit_config(workdir, "upstream: {timeout: {io: 1s}}\n", all_routes="on")
    with suite.stack(config=yaml) as (sim, gw):
        digest = ph.digest_of(gw.config_path)
        item = post(gw, EXAMPLE).json()["InteractionId"]
        item_path = "%s/%d" % (INTERACTIONS, item)
        reported = b'{"ChannelTypeCd":"ORA_SVC_WEB","Custom_c":1}'
        # (id, method, path, body, headers, http2, curl exit, status, decision, route, upstream status, fault)
        cases = [
            ("fmt-valid-h1", "POST", INTERACTIONS, EXAMPLE, [JSON_CT], False, 0, 201, "forwarded", ph.POST_ROUTE, 201, None),
            ("fmt-valid-h2", "POST", INTERACTIONS, EXAMPLE, [JSON_CT], True, 0, 201, "forwarded", ph.POST_ROUTE, 201, None),
            ("fmt-invalid", "POST", INTERACTIONS, INVALID, [JSON_CT], False, 0, 400, "rejected", ph.POST_ROUTE, None, None),
            ("fmt-invalid-h2", "POST", INTERACTIONS, INVALID, [JSON_CT], True, 0, 400, "rejected", ph.POST_ROUTE, None,
             None),
            ("fmt-reported", "POST", INTERACTIONS, reported, [JSON_CT], False, 0, 201, "reported", ph.POST_ROUTE, 201, None),
            ("fmt-get", "GET", INTERACTIONS + "?limit=1", None, [], False, 0, 200, "pass-through", None, 200, None),
            ("fmt-patch", "PATCH", item_path, b'{"StatusCd":"ORA_SVC_CLOSED"}', [JSON_CT], False, 0, 200, "forwarded",
             "PATCH /crmRestApi/resources/{version}/interactions/{InteractionId}", 200, None),
            ("fmt-delete", "DELETE", item_path, None, [], False, 0, 204, "pass-through", None, 204, None),
            ("fmt-upstream-500", "POST", INTERACTIONS, EXAMPLE, [JSON_CT, "X-Sim-Status: 500", "X-Sim-Body: html"],
             False, 0, 500, "forwarded", ph.POST_ROUTE, 500, None),
            ("fmt-reset", "POST", INTERACTIONS, EXAMPLE, [JSON_CT, "X-Sim-Fault: reset"], False, 0, 502, "forwarded",
             ph.POST_ROUTE, None, "unreachable"),
            ("fmt-timeout", "GET", INTERACTIONS, None, ["X-Sim-Delay-Ms: 3000"], False, 0, 504, "pass-through", None,
             None, "timeout"),
            ("fmt-mid-body", "GET", INTERACTIONS, None, ["X-Sim-Fault: close-mid-body"], False, None, 200,
             "pass-through", None, 200, "closed-mid-body"),
        ]
        before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        sent = {}
        for rid, method, path_, body, headers, http2, rc, status, decision, route, up, fault in cases:
            r = h.curl(gw.url(path_), method=method, headers=headers + ["X-Request-ID: " + rid], data=body,
                       http2=http2, expect_rc=rc)
            eq(r.status, status, rid + ": status\n" + r.describe())
            sent[rid] = r
        after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        for rid, method, path_, body, headers, http2, rc, status, decision, route, up, fault in cases:
            rec = wait_record(path, rid)
            ph.check_record_shape(rec, rid)
            eq((rec["method"], rec["path"], rec["route"]), (method, path_, route), rid + ": method, path, route")
            eq((rec["decision"], rec["status"], rec["upstream_status"], rec.get("fault")), (decision, status, up, fault),
               rid + ": decision, status, upstream_status, fault")
            eq(rec["rules"], digest, rid + ": rules (the digest crmgate -t prints)")
            eq(rec["mode"], "enforce" if decision != "reported" else "report", rid + ": mode")
            eq(rec["body_sha256"], ph.sha256_hex(body or b""), rid + ": body_sha256")
            eq(rec["bytes_in"], len(body or b""), rid + ": bytes_in")
            if fault is None and method != "HEAD":
                eq(rec["bytes_out"], len(sent[rid].body), rid + ": bytes_out (the body the client received)")
            stamp = datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
            check(before <= stamp <= after, "%s: time %s is not now" % (rid, rec["time"]))
            if up is not None:
                check(rec["upstream_ms"] <= rec["total_ms"] + 0.001, "%s: upstream_ms %r > total_ms %r"
                      % (rid, rec["upstream_ms"], rec["total_ms"]))
            if decision == "rejected":
                eq(ph.violation_set(rec), [("CRMGATE-READ-ONLY", "/CreatedBy", "enforce")], rid + ": violations")
            elif decision == "reported":
                eq(ph.violation_set(rec), [("CRMGATE-UNKNOWN-FIELD", "/Custom_c", "report")], rid + ": violations")
            else:
                eq(rec["violations"], [], rid + ": violations")
        records = ph.read_audit(path)
        eq(len(records), len(cases) + 1, "records (the cases and the first POST)")
        for rec in records:
            ph.check_record_shape(rec)


@suite.test
def only_validated_routes_are_audited_by_default():
    yaml, path = audit_config(suite.workdir())
    with suite.stack(config=yaml) as (sim, gw):
        eq(h.curl(gw.url(), headers=["X-Request-ID: dflt-get"]).status, 200, "GET")
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: dflt-post"]).status, 201, "POST")
        eq(post(gw, EXAMPLE, path=API + "/accounts", headers=[JSON_CT, "X-Request-ID: dflt-other"]).status, 404,
           "POST to a resource without rules")
        wait_record(path, "dflt-post")
        time.sleep(0.3)
        eq([r["request_id"] for r in ph.read_audit(path)], ["dflt-post"], "audited requests with all-routes off")


@suite.test
def no_field_value_ever_appears_in_a_record():
    m = MARKER
    bodies = [
        # valid values
        '{"ChannelTypeCd":"ORA_SVC_WEB","Description":"%s","OriginalSystemReference":"%s-2"}' % (m, m),
        # invalid values: too long, read-only, lookup, type, datetime, an unknown field's value (reported)
        '{"ChannelTypeCd":"%s%s","CreatedBy":"%s"}' % (m, "x" * 30, m),
        '{"interactionReferences":[{"ObjectTypeCd":"%s","ObjectId":"%s"}],"StartTime":"%s"}' % (m, m, m),
        '{"ChannelTypeCd":"ORA_SVC_WEB","Custom_c":"%s","Other_c":{"k":["%s"]}}' % (m, m),
        # broken JSON around a value, a duplicate key, invalid UTF-8 next to it
        '{"Description":"%s", "Description":"%s"}' % (m, m),
        '{"Description":"%s' % m,
        '{"Description":"%s\xff"}' % m,
        '{"Description":"%s"} "%s"' % (m, m),
    ]
    for mode in ("enforce", "report", "off"):
        yaml, path = audit_config(suite.workdir(), "mode: %s\nreport-header: on\n" % mode, "audit-%s.log" % mode,
                                  all_routes="on")
        with suite.stack(config=yaml) as (sim, gw):
            n = 0
            for i, body in enumerate(bodies):
                for http2 in (False, True):
                    post(gw, body.encode("latin-1") if "\xff" in body else body.encode(), http2=http2,
                         headers=[JSON_CT, "X-Request-ID: nv-%s-%d-%d" % (mode, i, http2)])
                    n += 1
            # header values and a pass-through body
            post(gw, EXAMPLE, headers=[JSON_CT, "Upsert-Mode: " + m, "REST-Framework-Version: " + m,
                                       "X-Request-ID: nv-%s-headers" % mode])
            post(gw, ('{"Name":"%s"}' % m).encode(), path=API + "/accounts", headers=[JSON_CT, "X-Request-ID: nv-acc"])
            n += 2
            records = ph.wait_for_audit(path, n)
        with open(path, "rb") as f:
            raw = f.read()
        eq(len(ph.parse_audit_text(raw.decode())), n, "mode %s: records" % mode)
        check(m.encode() not in raw and b"SECRET" not in raw,
              "mode %s: a field value reached the audit trail:\n%s" % (mode, "\n".join(
                  l for l in raw.decode("utf-8", "replace").splitlines() if "SECRET" in l)[:3000]))
        decisions = sorted({r["decision"] for r in records})
        h.note("mode %s: %d records, decisions %s, no value in any" % (mode, len(records), decisions))


@suite.test
def untrusted_strings_are_escaped_and_capped():
    yaml, path = audit_config(suite.workdir(), all_routes="on")
    with suite.stack(config=yaml) as (sim, gw):
        long_query = INTERACTIONS + "?q=" + "a" * 5000
        quoted = INTERACTIONS + '?q="quoted"\\back\\slash&nl=%0A%0D%00&t=%09'
        cases = [
            # (id, request line target as bytes, method, expected path in the record)
            ("esc-quotes", quoted.encode(), "GET", quoted),
            ("esc-route-quotes", quoted.encode(), "POST", quoted),
            ("esc-high-bytes", INTERACTIONS.encode() + b"/\xff\xfe?x=\xc3\xa9&y=\xe2\x82", "GET",
             INTERACTIONS + "/\ufffd\ufffd?x=\u00e9&y=\ufffd\ufffd"),
            ("esc-long", long_query.encode(), "GET", long_query[:1024] + "..."),
            ("esc-long-route", long_query.encode(), "POST", long_query[:1024] + "..."),
        ]
        for rid, target, method, expected in cases:
            body = EXAMPLE if method == "POST" else b""
            head = (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + rid.encode() +
                    b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            status, hdrs, _ = raw_request(gw.port, head, body)
            check(status in (200, 201, 404), "%s: status %d" % (rid, status))
            rec = wait_record(path, rid)
            ph.check_record_shape(rec, rid)
            eq(rec["path"], expected, rid + ": path in the record")
            if method == "POST":
                eq(rec["route"], ph.POST_ROUTE, rid + ": route")
        # violation pointers quote the client's keys: escaped, and capped
        key = 'K"\\\u00e9\n' + "k" * 2000
        body = ('{"ChannelTypeCd":"ORA_SVC_WEB",%s:1}' % json.dumps(key)).encode()
        eq(post(gw, body, headers=[JSON_CT, "X-Request-ID: esc-key"]).status, 201, "an unknown field with a long key")
        pointer = wait_record(path, "esc-key")["violations"][0]["pointer"]
        check(pointer.startswith('/K"\\\u00e9\n') and pointer.endswith("...") and len(pointer.encode()) <= 520,
              "the pointer of a 2000-character key in the record: %r...%r (%d bytes)"
              % (pointer[:20], pointer[-10:], len(pointer.encode())))
        # a method with a quote, longer than the cap of 32 bytes
        method = 'M"' + "E" * 40
        head = (method.encode() + b" " + INTERACTIONS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Request-ID: esc-method\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        raw_request(gw.port, head)
        eq(wait_record(path, "esc-method")["method"], method[:32] + "...", "method in the record")
        # a request id with a quote and a backslash is kept (printable), and escaped
        rid = 'id"with\\quote'
        r = h.curl(gw.url(), headers=["X-Request-ID: " + rid])
        eq(r.header("x-request-id"), rid, "X-Request-ID with a quote")
        wait_record(path, rid)
        # a 200-character id is replaced by a generated one, the same in the record, the response and upstream
        long_id = "L" * 200
        mark = sim.mark()
        r = post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: " + long_id])
        eq(r.status, 201, "POST with a 200-character X-Request-ID")
        gen = r.header("x-request-id")
        check(gen is not None and re.fullmatch(r"[0-9a-f]{32}", gen), "generated id %r" % gen)
        eq(sim.expect_one_since(mark, "long id").header_all("x-request-id"), [gen], "X-Request-ID upstream")
        rec = wait_record(path, gen)
        eq(rec["status"], 201, "the record under the generated id")
        records = ph.read_audit(path)
        check(all(long_id not in r["request_id"] for r in records), "the 200-character id reached the trail")
        with open(path, "rb") as f:
            raw = f.read()
        check(all(len(line) < 4096 for line in raw.split(b"\n")), "a record is longer than 4 KiB")
        for line in raw.decode("utf-8").splitlines():
            check(not re.search(r"[\x00-\x1f]", line), "a control character in a record: %r" % line[:200])


# ---- under load --------------------------------------------------------------------------------------------


def mixed_plan(total):
    def fn(i):
        k = i % 3
        if k == 0:
            return "valid", "POST", INTERACTIONS, EXAMPLE, {"Content-Type": "application/json"}
        if k == 1:
            return "invalid", "POST", INTERACTIONS, INVALID, {"Content-Type": "application/json"}
        return "get", "GET", INTERACTIONS + "?limit=1", None, {}
    return total, fn


EXPECTED = {"valid": (201, "forwarded"), "invalid": (400, "rejected"), "get": (200, "pass-through")}


def check_one_to_one(outcomes, records, what):
    by_id = {}
    dups = []
    for r in records:
        if r["request_id"] in by_id:
            dups.append(r["request_id"])
        by_id[r["request_id"]] = r
    check(not dups, "%s: %d request id(s) recorded twice, e.g. %s" % (what, len(dups), dups[:5]))
    sent = {o.rid: o for o in outcomes if o is not None}
    missing = [rid for rid, o in sent.items() if o.status is not None and rid not in by_id]
    unknown = [rid for rid in by_id if rid not in sent]
    check(not missing, "%s: %d answered request(s) have no record, e.g. %s" % (what, len(missing), missing[:5]))
    check(not unknown, "%s: %d record(s) of requests never sent, e.g. %s" % (what, len(unknown), unknown[:5]))
    wrong = [(rid, o.status, by_id[rid]["status"]) for rid, o in sent.items()
             if o.status is not None and by_id[rid]["status"] != o.status]
    check(not wrong, "%s: %d record(s) with another status than the response, e.g. %s" % (what, len(wrong), wrong[:5]))
    return by_id


@suite.test
def audit_under_load_one_record_per_request():
    total = 3000 if h.SANITIZE else 10000
    yaml, path = audit_config(suite.workdir(), all_routes="on")
    with suite.stack(config=yaml, threads=2) as (sim, gw):
        t0 = time.monotonic()
        outcomes = ph.run_load(gw.port, mixed_plan(total), 8, "load")
        dt = time.monotonic() - t0
        failed = [o for o in outcomes if o.error is not None or o.status != EXPECTED[o.kind][0]]
        h.note("%d requests from 8 clients in %.2f s (%.0f/s); %d unexpected" % (total, dt, total / dt, len(failed)))
        check(not failed, "unexpected outcomes: %r" % failed[:5])
        ph.wait_until(lambda: ph.metric_value(ph.scrape(gw), "crmgate_audit_records_total") >= total, 20,
                      "crmgate_audit_records_total reaching %d" % total)
    records = ph.read_audit(path)
    h.note("%d records after SIGTERM" % len(records))
    eq(len(records), total, "records in the trail")
    by_id = check_one_to_one(outcomes, records, "load")
    for o in outcomes:
        rec = by_id[o.rid]
        eq(rec["decision"], EXPECTED[o.kind][1], o.rid + ": decision")
    for rec in records[:50] + records[-50:]:
        ph.check_record_shape(rec)


@suite.test
def log_rotation_loses_and_duplicates_nothing():
    total = 2000 if h.SANITIZE else 4000
    yaml, path = audit_config(suite.workdir(), all_routes="on")
    rotated = path + ".1"
    with suite.stack(config=yaml) as (sim, gw):
        progress = {"n": 0, "rotated_at": None}
        lock = threading.Lock()

        def on_progress(i):
            with lock:
                progress["n"] += 1
                if progress["n"] == total // 3:
                    os.rename(path, rotated)  # as logrotate does, then tells the gateway
                    ph.send_signal(gw, signal.SIGUSR1)
                    progress["rotated_at"] = progress["n"]

        outcomes = ph.run_load(gw.port, mixed_plan(total), 4, "rot", on_progress=on_progress)
        failed = [o for o in outcomes if o.error is not None or o.status != EXPECTED[o.kind][0]]
        check(not failed, "unexpected outcomes: %r" % failed[:5])
        gw.proc.wait_for(r"audit sink .* reopened", 5)
    old, new = ph.read_audit(rotated), ph.read_audit(path)
    h.note("rotated after %s responses: old file %d records, new file %d, total %d for %d requests"
           % (progress["rotated_at"], len(old), len(new), len(old) + len(new), total))
    check(len(old) >= progress["rotated_at"] * 0.5, "the old file holds only %d records" % len(old))
    check(len(new) > 0, "the new file received no records")
    eq(len(old) + len(new), total, "records in both files")
    check_one_to_one(outcomes, old + new, "rotation")


@suite.test
def sigterm_during_load_keeps_every_answered_record():
    yaml, path = audit_config(suite.workdir(), all_routes="on")
    with suite.stack(config=yaml) as (sim, gw):
        stop = threading.Event()
        answered = {"n": 0}

        def on_progress(i):
            answered["n"] += 1

        def plan(i):
            kind, method, path_, body, headers = mixed_plan(1)[1](i)
            if i % 50 == 7:  # some slow ones, in flight when the signal comes
                headers = dict(headers, **{"X-Sim-Delay-Ms": "400"})
            return kind, method, path_, body, headers

        result = {}
        t = threading.Thread(target=lambda: result.setdefault("o", ph.run_load(gw.port, (1000000, plan), 6, "term",
                                                                                  stop_event=stop, on_progress=on_progress)))
        t.start()
        ph.wait_until(lambda: answered["n"] >= (300 if h.SANITIZE else 1000), 30, "1000 answered requests")
        stop.set()
        t_sig = time.monotonic()
        ph.send_signal(gw, signal.SIGTERM)
        status = ph.wait_exit(gw.proc, 30)
        exit_s = time.monotonic() - t_sig
        t.join(timeout=h.timeout(60))
        check(not t.is_alive(), "the load threads did not stop")
        suite.stop(gw)  # exit status 0 and a clean log
        eq(status, 0, "exit status after SIGTERM during load")
    outcomes = [o for o in result["o"] if o is not None]
    got = [o for o in outcomes if o.status is not None]
    unexpected = [o for o in got if o.status != EXPECTED[o.kind][0] or o.error is not None]
    check(not unexpected, "answers other than the expected ones: %r" % unexpected[:5])
    records = ph.read_audit(path)
    h.note("SIGTERM after %d answers; exited %.2f s later; %d answered, %d without an answer, %d records"
           % (answered["n"], exit_s, len(got), len(outcomes) - len(got), len(records)))
    check_one_to_one(outcomes, records, "SIGTERM during load")


@suite.test
def sigterm_under_keepalive_load_drains_promptly():
    # SIGTERM means: finish what is in flight and stop. Clients on keep-alive connections that keep sending must be
    # told to go (h2o_context_request_shutdown: "Connection: close" / GOAWAY), not served for the whole grace period
    # of 10 s, at the end of which the requests then in flight are cut off without an answer.
    yaml, path = audit_config(suite.workdir(), all_routes="on")
    with suite.stack(config=yaml) as (sim, gw):
        stop = threading.Event()
        answered = {"n": 0, "at_signal": None}

        def on_progress(i):
            answered["n"] += 1

        def plan(i):
            kind, method, path_, body, headers = mixed_plan(1)[1](i)
            if i % 50 == 7:  # a few slow ones (400 ms): the longest a request in flight may take
                headers = dict(headers, **{"X-Sim-Delay-Ms": "400"})
            return kind, method, path_, body, headers

        result = {}
        t = threading.Thread(target=lambda: result.setdefault("o", ph.run_load(
            gw.port, (1000000, plan), 6, "drain", stop_event=stop, on_progress=on_progress)))
        t.start()
        ph.wait_until(lambda: answered["n"] >= 300, 30, "300 answered requests")
        stop.set()
        answered["at_signal"] = answered["n"]
        t_sig = time.monotonic()
        ph.send_signal(gw, signal.SIGTERM)
        status = ph.wait_exit(gw.proc, 30)
        exit_s = time.monotonic() - t_sig
        t.join(timeout=h.timeout(60))
        suite.stop(gw)
        eq(status, 0, "exit status")
    outcomes = [o for o in result["o"] if o is not None]
    after = answered["n"] - answered["at_signal"]
    cut = [o for o in outcomes if o.status is None]
    h.note("SIGTERM under keep-alive load: exited after %.2f s; %d requests answered after the signal; "
           "%d request(s) got no answer" % (exit_s, after, len(cut)))
    check_one_to_one(outcomes, ph.read_audit(path), "drain")
    check(exit_s < h.timeout(2), "the gateway took %.2f s to stop under keep-alive load (it kept serving: %d requests "
          "answered after SIGTERM) -- see the log:\n%s" % (exit_s, after, h.tail(gw.proc.stderr(), 6)))


# ---- the sink fails --------------------------------------------------------------------------------------


def until_refused(gw, seconds=10):
    """POSTs until the gateway answers 503; returns the statuses seen (the last one is the 503)."""
    seen = []
    deadline = time.monotonic() + h.timeout(seconds)
    while time.monotonic() < deadline:
        r = post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: probe-%d" % len(seen)])
        seen.append(r.status)
        if r.status == 503:
            return seen, r
        time.sleep(0.05)
    h.fail("no 503 within %.1f s; statuses %r" % (h.timeout(seconds), seen))


@suite.test
def failing_sink_fail_closed_refuses_validated_routes():
    with suite.stack(config=ph.audit_yaml("/dev/full"), allow_errors=True) as (sim, gw):
        seen, r = until_refused(gw)
        h.note("statuses until the failure was detected: %r" % seen)
        check(seen.count(201) <= 2 and all(s in (201, 503) for s in seen), "statuses before the 503: %r" % seen)
        h.assert_error_response(r, 503, "fail-closed")
        eq(h.text_violations(r)[0][0], "CRMGATE-AUDIT-UNAVAILABLE", "code of the 503")
        eq(r.header("retry-after"), "1", "Retry-After")
        mark = sim.mark()
        for i in range(5):
            for http2 in (False, True):
                r = post(gw, EXAMPLE, http2=http2)
                h.assert_error_response(r, 503, "request %d after the failure" % i)
                r = post(gw, INVALID, http2=http2)
                eq(r.status, 503, "an invalid request is not even judged")
        sim.expect_nothing_since(mark, "validated requests while the audit sink fails")
        # pass-through routes are not audited (all-routes off): they still pass
        eq(h.curl(gw.url()).status, 200, "GET (not audited) while the sink fails")
        status, body = ph.readyz(gw)
        eq(status, 503, "/-/readyz while the sink fails: %r" % body)
        fams = ph.scrape(gw)
        failures = ph.metric_value(fams, "crmgate_audit_sink_failures_total")
        check(failures > 0, "crmgate_audit_sink_failures_total is %r" % failures)
        eq(ph.metric_value(fams, "crmgate_audit_records_total"), 0, "crmgate_audit_records_total")
        check(re.search(r"crmgate\[error\]: AUDIT SINK FAILED: /dev/full: No space left on device", gw.proc.stderr()),
              "the failure is not logged:\n" + h.tail(gw.proc.stderr()))
        status, _ = ph.admin_get(gw, "/-/healthz")
        eq(status, 200, "/-/healthz (alive, just not ready)")


@suite.test
def failing_sink_with_all_routes_refuses_everything():
    with suite.stack(config=ph.audit_yaml("/dev/full", all_routes="on"), allow_errors=True) as (sim, gw):
        until_refused(gw)
        mark = sim.mark()
        r = h.curl(gw.url(), headers=["X-Request-ID: all-get"])
        h.assert_error_response(r, 503, "GET with all-routes on")
        sim.expect_nothing_since(mark, "GET while the sink fails (all-routes on)")


@suite.test
def failing_sink_fail_open_forwards():
    with suite.stack(config=ph.audit_yaml("/dev/full", on_failure="fail-open"), allow_errors=True) as (sim, gw):
        mark = sim.mark()
        for i in range(10):
            r = post(gw, EXAMPLE, http2=bool(i % 2))
            eq(r.status, 201, "request %d with fail-open" % i)
        eq(len(sim.since(mark)), 10, "requests forwarded")
        r = post(gw, INVALID)
        eq(r.status, 400, "an invalid request is still judged")
        ph.wait_until(lambda: ph.metric_value(ph.scrape(gw), "crmgate_audit_sink_failures_total") > 0, 5,
                      "crmgate_audit_sink_failures_total > 0")
        status, body = ph.readyz(gw)
        eq(status, 503, "/-/readyz while the sink fails (fail-open too): %r" % body)
    # with a small queue, records that no longer fit are dropped, and counted
    with suite.stack(config=ph.audit_yaml("/dev/full", on_failure="fail-open", queue="4096"),
                     allow_errors=True) as (sim, gw):
        for i in range(40):
            eq(post(gw, EXAMPLE).status, 201, "request %d with fail-open and a full queue" % i)
        fams = ph.scrape(gw)
        dropped = ph.metric_value(fams, "crmgate_audit_records_dropped_total")
        h.note("fail-open, queue 4096: %d of 40 records dropped" % dropped)
        check(dropped > 0, "crmgate_audit_records_dropped_total is %r after 40 requests" % dropped)


@suite.test
def failing_sink_recovers_and_writes_the_kept_records():
    workdir = suite.workdir()
    d = os.path.join(workdir, "trail")
    os.makedirs(d)
    path = os.path.join(d, "audit.log")
    with suite.stack(config=ph.audit_yaml(path), allow_errors=True) as (sim, gw):
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: before"]).status, 201, "before the failure")
        wait_record(path, "before")
        os.remove(path)
        os.rmdir(d)  # the sink cannot be opened again
        seen = []
        deadline = time.monotonic() + h.timeout(10)
        while not seen or seen[-1] != 503:
            check(time.monotonic() < deadline, "no 503 after the audit directory was removed: %r" % seen)
            seen.append(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: failing-%d" % len(seen)]).status)
        eq(ph.readyz(gw)[0], 503, "/-/readyz while the directory is missing")
        os.makedirs(d)
        ph.wait_until(lambda: ph.readyz(gw)[0] == 200, 5, "/-/readyz back to 200 once the directory is back")
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: after"]).status, 201, "after the recovery")
        records = ph.wait_until(lambda: (lambda rs: rs if "after" in [r["request_id"] for r in rs] else None)(
            ph.read_audit(path, True)), 5, "the record of the request after the recovery")
        h.note("statuses while failing: %r; records in the new file: %s" % (seen, [r["request_id"] for r in records]))
        ids = [r["request_id"] for r in records]
        for i, st in enumerate(seen):
            check("failing-%d" % i in ids, "the record of failing-%d (answered %d) was not kept for the retry: %r"
                  % (i, st, ids))
        refused = [r for r in records if r["status"] == 503]
        check(refused and all(r["decision"] == "rejected" and [v["code"] for v in r["violations"]] ==
                              ["CRMGATE-AUDIT-UNAVAILABLE"] for r in refused), "records of the 503s: %r" % refused)
        check(re.search(r"crmgate\[info\]: audit sink .*: writing again", gw.proc.stderr()), "no recovery line in the log")


@suite.test
def small_queue_and_fsync_always_lose_nothing():
    total = 1200 if h.SANITIZE else 3000
    yaml, path = audit_config(suite.workdir(), all_routes="on", queue="4096", fsync="always")
    with suite.stack(config=yaml) as (sim, gw):
        t0 = time.monotonic()
        outcomes = ph.run_load(gw.port, mixed_plan(total), 8, "q")
        dt = time.monotonic() - t0
        failed = [o for o in outcomes if o.error is not None or o.status != EXPECTED[o.kind][0]]
        check(not failed, "unexpected outcomes: %r" % failed[:5])
        wait = ph.metric_value(ph.scrape(gw), "crmgate_audit_backpressure_seconds_total")
        h.note("%d requests with queue 4096 and fsync always in %.2f s; backpressure %.3f s" % (total, dt, wait))
    records = ph.read_audit(path)
    eq(len(records), total, "records")
    check_one_to_one(outcomes, records, "small queue")


@suite.test
def unopenable_audit_path_refuses_to_start():
    missing = os.path.join(suite.workdir(), "no-such-dir", "audit.log")
    cfg = os.path.join(suite.workdir(), "bad-audit.yaml")
    with open(cfg, "w") as f:
        f.write(ph.audit_yaml(missing))
    for args in (["-c", cfg], ["--audit", missing]):
        t0 = time.monotonic()
        cp = h.run_cli(args + ["--listen", "127.0.0.1:0", "--admin", "off", "--rules", h.RULES_DIR,
                               "--upstream", "http://127.0.0.1:9"])
        eq(cp.returncode, 1, "exit status with audit path %s (%s)" % (missing, args[0]))
        check(missing in cp.stderr_text and "No such file or directory" in cp.stderr_text and
              "audit" in cp.stderr_text, "the message does not name the file and the reason:\n" + cp.stderr_text)
        check("listening on" not in cp.stderr_text or time.monotonic() - t0 < h.timeout(5),
              "it served before failing:\n" + cp.stderr_text)
        h.note("%s -> %s" % (args[0], cp.stderr_text.strip().splitlines()[-1]))


# ---- where records go ----------------------------------------------------------------------------------------


@suite.test
def audit_dash_writes_to_stdout_and_off_writes_nothing():
    workdir = suite.workdir()
    file_yaml, path = audit_config(workdir)
    # --audit - overrides a configured file
    with suite.stack(config=file_yaml, args=["--audit", "-"]) as (sim, gw):
        post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: to-stdout"])
        ph.wait_until(lambda: "to-stdout" in gw.proc.stdout(), 5, "the record on standard output")
    records = ph.parse_audit_text(gw.proc.stdout(), "standard output")
    eq([r["request_id"] for r in records], ["to-stdout"], "records on standard output")
    check(not os.path.exists(path), "--audit - still wrote %s" % path)
    # no audit configuration at all: standard output is the default
    with suite.stack() as (sim, gw):
        post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: default-stdout"])
        ph.wait_until(lambda: "default-stdout" in gw.proc.stdout(), 5, "the record on standard output by default")
    eq([r["request_id"] for r in ph.parse_audit_text(gw.proc.stdout())], ["default-stdout"], "default sink")
    # --audit off: nothing anywhere, and the sink cannot fail
    with suite.stack(config=file_yaml, args=["--audit", "off"]) as (sim, gw):
        ph.send_signal(gw, signal.SIGUSR1)  # nothing to reopen: harmless
        for i in range(5):
            eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: off-%d" % i]).status, 201, "POST with --audit off")
            eq(post(gw, INVALID).status, 400, "invalid POST with --audit off")
        time.sleep(0.3)
        eq(ph.metric_value(ph.scrape(gw), "crmgate_audit_records_total"), 0, "crmgate_audit_records_total")
        eq(ph.readyz(gw)[0], 200, "/-/readyz with --audit off")
    eq(gw.proc.stdout(), "", "standard output with --audit off")
    check(not os.path.exists(path), "--audit off still wrote %s" % path)
    # --audit FILE overrides the configuration's stdout
    other = os.path.join(workdir, "cli.log")
    with suite.stack(config="audit: {path: \"-\"}\n", args=["--audit", other]) as (sim, gw):
        post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: to-file"])
        wait_record(other, "to-file")
    eq(gw.proc.stdout(), "", "standard output with --audit FILE")


if __name__ == "__main__":
    suite.main()
