"""
End to end: /-/metrics. A strict checker of the Prometheus text format 0.0.4 (policy_helpers.check_prometheus:
every sample in a family announced by # HELP and # TYPE before it, valid names and labels, numeric values,
cumulative histograms ending with le="+Inf" equal to _count, no duplicate series) -- checked against broken
expositions first, then against the gateway's; and the counters against the requests actually sent: per route and
decision, violations per code and mode, upstream status classes and faults, the duration histograms, the audit
records; under concurrent load and across a reload.
"""
import os
import shutil
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policy_helpers as ph  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("metrics")
POST_ROUTE = ph.POST_ROUTE
PATCH_ROUTE = "PATCH /crmRestApi/resources/{version}/interactions/{InteractionId}"
NO_ROUTE = "(no route)"

FAMILIES = {
    "crmgate_requests_total": ("counter", {"route", "decision"}),
    "crmgate_violations_total": ("counter", {"code", "mode"}),
    "crmgate_upstream_responses_total": ("counter", {"class"}),
    "crmgate_upstream_faults_total": ("counter", {"kind"}),
    "crmgate_request_duration_seconds": ("histogram", set()),
    "crmgate_upstream_duration_seconds": ("histogram", set()),
    "crmgate_audit_records_total": ("counter", set()),
    "crmgate_audit_backpressure_seconds_total": ("counter", set()),
    "crmgate_audit_sink_failures_total": ("counter", set()),
    "crmgate_audit_records_dropped_total": ("counter", set()),
    "crmgate_rule_reloads_total": ("counter", {"result"}),
}

GOOD = """# HELP a_total Things.
# TYPE a_total counter
a_total{x="1",y="q\\"\\\\\\n"} 3
a_total{x="2"} 0
# HELP h_seconds Latency.
# TYPE h_seconds histogram
h_seconds_bucket{le="0.1"} 1
h_seconds_bucket{le="1"} 2
h_seconds_bucket{le="+Inf"} 3
h_seconds_sum 4.5
h_seconds_count 3
# TYPE g gauge
# HELP g Gauge, TYPE first.
g -1.5e-3
"""

BROKEN = [
    ("no newline at the end", GOOD.rstrip("\n")),
    ("sample before any family", "x_total 1\n" + GOOD),
    ("sample of another family", GOOD + "a_total{x=\"3\"} 1\n"),
    ("TYPE without HELP", "# TYPE b_total counter\nb_total 1\n"),
    ("HELP without TYPE", "# HELP b_total B.\nb_total 1\n"),
    ("family announced twice", GOOD + "# HELP a_total again\n# TYPE a_total counter\n"),
    ("unknown type", "# HELP b B.\n# TYPE b thing\nb 1\n"),
    ("bad metric name", "# HELP 1b B.\n# TYPE 1b gauge\n1b 1\n"),
    ("bad label name", "# HELP b B.\n# TYPE b gauge\nb{1x=\"a\"} 1\n"),
    ("unquoted label value", "# HELP b B.\n# TYPE b gauge\nb{x=a} 1\n"),
    ("bad escape in a label value", "# HELP b B.\n# TYPE b gauge\nb{x=\"\\t\"} 1\n"),
    ("label twice", "# HELP b B.\n# TYPE b gauge\nb{x=\"a\",x=\"b\"} 1\n"),
    ("value not a number", "# HELP b B.\n# TYPE b gauge\nb one\n"),
    ("no value", "# HELP b B.\n# TYPE b gauge\nb\n"),
    ("two spaces", "# HELP b B.\n# TYPE b gauge\nb  1\n"),
    ("duplicate series", "# HELP b B.\n# TYPE b gauge\nb{x=\"1\"} 1\nb{x=\"1\"} 2\n"),
    ("duplicate series, labels reordered", "# HELP b B.\n# TYPE b gauge\nb{x=\"1\",y=\"2\"} 1\nb{y=\"2\",x=\"1\"} 2\n"),
    ("negative counter", "# HELP b_total B.\n# TYPE b_total counter\nb_total -1\n"),
    ("counter without _total", "# HELP b B.\n# TYPE b counter\nb 1\n"),
    ("histogram not cumulative", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
                                 "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
    ("histogram without +Inf", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n"),
    ("+Inf differs from _count", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
                                 "h_sum 1\nh_count 4\n"),
    ("histogram without _count", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\n"),
    ("buckets out of order", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                             "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
    ("bucket without le", "# HELP h H.\n# TYPE h histogram\nh_bucket 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
    ("stray suffix in a histogram", "# HELP h H.\n# TYPE h histogram\nh_total 1\n"),
    ("family split in two", "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n# HELP b B.\n# TYPE b gauge\n"
                            "b 1\na_total{x=\"2\"} 1\n"),
]


@suite.test
def checker_accepts_valid_and_rejects_broken_expositions():
    fams = ph.check_prometheus(GOOD)
    eq(list(fams), ["a_total", "h_seconds", "g"], "families of the valid example")
    eq(fams["a_total"]["samples"][0][1], {"x": "1", "y": 'q"\\\n'}, "unescaped label value")
    missed = []
    for what, text in BROKEN:
        try:
            ph.check_prometheus(text)
            missed.append(what)
        except ValueError as e:
            h.note("%-36s -> %s" % (what, str(e)[:90]))
    check(not missed, "the checker accepted broken expositions: %s" % missed)


def traffic(gw, sim):
    """A bit of everything; returns what was sent, by (route, decision) and by other dimensions."""
    item = post(gw, EXAMPLE).json()["InteractionId"]
    sent = {"forwarded": 1, "rejected": 0, "reported": 0, "pass": 0, "patch": 0,
            "2xx": 1, "4xx": 0, "5xx": 0, "unreachable": 0, "timeout": 0,
            "READ-ONLY": 0, "MAX-LENGTH": 0, "UNKNOWN-FIELD": 0}
    for http2 in (False, True):
        for _ in range(3):
            eq(post(gw, EXAMPLE, http2=http2).status, 201, "valid POST")
            sent["forwarded"] += 1
            sent["2xx"] += 1
        for _ in range(2):
            eq(post(gw, b'{"CreatedBy":"x"}', http2=http2).status, 400, "read-only")
            sent["rejected"] += 1
            sent["READ-ONLY"] += 1
        eq(post(gw, ('{"CreatedBy":"x","Description":"%s"}' % ("d" * 1001)).encode(), http2=http2).status, 400, "two")
        sent["rejected"] += 1
        sent["READ-ONLY"] += 1
        sent["MAX-LENGTH"] += 1
        eq(post(gw, b'{"ChannelTypeCd":"ORA_SVC_WEB","A_c":1,"B_c":2}', http2=http2).status, 201, "reported")
        sent["reported"] += 1
        sent["UNKNOWN-FIELD"] += 2
        sent["2xx"] += 1
        for _ in range(4):
            eq(h.curl(gw.url(), http2=http2).status, 200, "GET")
            sent["pass"] += 1
            sent["2xx"] += 1
        eq(h.curl(gw.url(), headers=["X-Sim-Status: 503", "X-Sim-Body: html"], http2=http2).status, 503, "GET 503")
        sent["pass"] += 1
        sent["5xx"] += 1
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Sim-Status: 409", "X-Sim-Body: oracle-json"], http2=http2).status, 409,
           "POST answered 409")
        sent["forwarded"] += 1
        sent["4xx"] += 1
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Sim-Fault: reset"], http2=http2).status, 502, "POST, reset")
        sent["forwarded"] += 1
        sent["unreachable"] += 1
        r = h.curl(gw.url("%s/%d" % (INTERACTIONS, item)), method="PATCH", headers=[JSON_CT], data=b'{"StatusCd":"X"}',
                   http2=http2)
        eq(r.status, 200, "PATCH")
        sent["patch"] += 1
        sent["2xx"] += 1
    eq(h.curl(gw.url(), headers=["X-Sim-Delay-Ms: 2500"]).status, 504, "GET, timeout")
    sent["pass"] += 1
    sent["timeout"] += 1
    sent["total"] = sent["forwarded"] + sent["rejected"] + sent["reported"] + sent["pass"] + sent["patch"]
    return sent


@suite.test
def exposition_passes_the_strict_checker():
    audit = os.path.join(suite.workdir(), "audit.log")
    with suite.stack(config="upstream: {timeout: {io: 1s}}\nreport-header: on\n" + ph.audit_yaml(audit)) as (sim, gw):
        ct, text = ph.metrics_text(gw)
        eq(ct, "text/plain; version=0.0.4; charset=utf-8", "Content-Type of /-/metrics")
        ph.check_prometheus(text)  # an idle gateway's exposition too
        traffic(gw, sim)
        ph.send_signal(gw, signal.SIGHUP)
        ph.wait_until(lambda: ph.count_log(gw, r"reloaded: rules"), 5, "the reload")
        ct, text = ph.metrics_text(gw)
        try:
            fams = ph.check_prometheus(text)
        except ValueError as e:
            h.fail("/-/metrics is not valid Prometheus text: %s\n%s" % (e, text))
        h.note("%d families, %d samples, %d bytes" % (len(fams), sum(len(f["samples"]) for f in fams.values()), len(text)))
        for name, (type_, labels) in FAMILIES.items():
            check(name in fams, "family %s is missing" % name)
            eq(fams[name]["type"], type_, "TYPE of " + name)
            for sample, lab, value in fams[name]["samples"]:
                got = set(lab) - {"le"}
                eq(got, labels, "labels of %s%s" % (sample, lab))
        extra = set(fams) - set(FAMILIES)
        check(not extra, "undocumented families: %s" % sorted(extra))
        for _, lab, _ in fams["crmgate_requests_total"]["samples"]:
            check(lab["decision"] in ph.DECISIONS, "decision label %r" % lab)
        for _, lab, _ in fams["crmgate_upstream_responses_total"]["samples"]:
            check(lab["class"] in ("1xx", "2xx", "3xx", "4xx", "5xx"), "class label %r" % lab)
        for _, lab, _ in fams["crmgate_upstream_faults_total"]["samples"]:
            check(lab["kind"] in ("unreachable", "timeout", "closed-mid-body"), "kind label %r" % lab)
        for _, lab, _ in fams["crmgate_violations_total"]["samples"]:
            check(lab["mode"] in ("enforce", "report") and lab["code"].startswith("CRMGATE-"), "violation labels %r" % lab)
        # counters never go down
        again = ph.scrape(gw)
        for name, fam in fams.items():
            if fam["type"] != "counter":
                continue
            for sample, lab, value in fam["samples"]:
                check(ph.metric_value(again, name, lab, sample) >= value, "%s%s went down" % (sample, lab))


@suite.test
def counters_match_the_requests_sent():
    audit = os.path.join(suite.workdir(), "audit.log")
    with suite.stack(config="upstream: {timeout: {io: 1s}}\n" + ph.audit_yaml(audit)) as (sim, gw):
        before = ph.scrape(gw)
        sent = traffic(gw, sim)
        # the histograms are observed when a request's memory is released: a moment after its response
        ph.wait_until(lambda: ph.metric_value(ph.scrape(gw), "crmgate_request_duration_seconds", {},
                                              "crmgate_request_duration_seconds_count") >= sent["total"], 5,
                      "crmgate_request_duration_seconds_count reaching %d" % sent["total"])
        audited = sent["forwarded"] + sent["rejected"] + sent["reported"] + sent["patch"]
        ph.wait_until(lambda: ph.metric_value(ph.scrape(gw), "crmgate_audit_records_total") >= audited, 5,
                      "crmgate_audit_records_total reaching %d" % audited)
        after = ph.scrape(gw)
    h.note("sent: %s" % sent)

    def delta(family, labels=None, sample=None):
        return ph.metric_value(after, family, labels, sample) - ph.metric_value(before, family, labels, sample)

    got = {
        "forwarded": delta("crmgate_requests_total", {"route": POST_ROUTE, "decision": "forwarded"}),
        "rejected": delta("crmgate_requests_total", {"route": POST_ROUTE, "decision": "rejected"}),
        "reported": delta("crmgate_requests_total", {"route": POST_ROUTE, "decision": "reported"}),
        "patch": delta("crmgate_requests_total", {"route": PATCH_ROUTE, "decision": "forwarded"}),
        "pass": delta("crmgate_requests_total", {"route": NO_ROUTE, "decision": "pass-through"}),
        "READ-ONLY": delta("crmgate_violations_total", {"code": "CRMGATE-READ-ONLY", "mode": "enforce"}),
        "MAX-LENGTH": delta("crmgate_violations_total", {"code": "CRMGATE-MAX-LENGTH", "mode": "enforce"}),
        "UNKNOWN-FIELD": delta("crmgate_violations_total", {"code": "CRMGATE-UNKNOWN-FIELD", "mode": "report"}),
        "2xx": delta("crmgate_upstream_responses_total", {"class": "2xx"}),
        "4xx": delta("crmgate_upstream_responses_total", {"class": "4xx"}),
        "5xx": delta("crmgate_upstream_responses_total", {"class": "5xx"}),
        "unreachable": delta("crmgate_upstream_faults_total", {"kind": "unreachable"}),
        "timeout": delta("crmgate_upstream_faults_total", {"kind": "timeout"}),
    }
    want = {k: sent[k] for k in got}
    eq(got, want, "counters against the requests sent")
    total_requests = sum(v for _, _, v in after["crmgate_requests_total"]["samples"])
    eq(total_requests, sent["total"], "the sum of crmgate_requests_total")
    count = delta("crmgate_request_duration_seconds", {}, "crmgate_request_duration_seconds_count")
    check(count >= sent["forwarded"] + sent["rejected"] + sent["pass"], "request duration count %d" % count)
    eq(count, sent["total"], "crmgate_request_duration_seconds_count (every request, once)")
    up = delta("crmgate_upstream_duration_seconds", {}, "crmgate_upstream_duration_seconds_count")
    eq(up, sent["2xx"] + sent["4xx"] + sent["5xx"], "crmgate_upstream_duration_seconds_count (every response head)")
    s = delta("crmgate_request_duration_seconds", {}, "crmgate_request_duration_seconds_sum")
    check(s >= 1.0, "crmgate_request_duration_seconds_sum %.3f s does not include the 1 s timeout" % s)
    eq(delta("crmgate_audit_records_total"), len(ph.read_audit(audit)), "crmgate_audit_records_total and the trail")
    eq(len(ph.read_audit(audit)), sent["forwarded"] + sent["rejected"] + sent["reported"] + sent["patch"],
       "records (validated routes only)")


@suite.test
def report_mode_violations_are_counted_as_report():
    with suite.stack(config="mode: report\nmodes: {lookup: enforce}\n") as (sim, gw):
        eq(post(gw, b'{"CreatedBy":"x","ChannelTypeCd":"' + b"c" * 31 + b'"}').status, 201, "reported")
        eq(post(gw, b'{"interactionReferences":[{"ObjectTypeCd":"NO"}]}').status, 400, "lookup enforced")
        fams = ph.scrape(gw)
        got = {(lab["code"], lab["mode"]): v for _, lab, v in fams["crmgate_violations_total"]["samples"]}
        eq(got, {("CRMGATE-READ-ONLY", "report"): 1, ("CRMGATE-MAX-LENGTH", "report"): 1,
                 ("CRMGATE-LOOKUP", "enforce"): 1}, "crmgate_violations_total")
        eq(ph.metric_value(fams, "crmgate_requests_total", {"route": POST_ROUTE, "decision": "reported"}), 1, "reported")


@suite.test
def requests_refused_before_routing_are_counted():
    # h2o refuses an HTTP/1.1 Content-Length over its limit before routing: the audit trail records it (route
    # null, decision rejected); the request counter must agree with the trail
    audit = os.path.join(suite.workdir(), "audit.log")
    with suite.stack(config="limits: {max-body: 1KiB}\n" + ph.audit_yaml(audit)) as (sim, gw):
        before = ph.scrape(gw)
        big = b'{"Description":"' + b"x" * 200000 + b'"}'
        r = post(gw, big, headers=[JSON_CT, "X-Request-ID: big-h1"])
        eq(r.status, 413, "200 KB body over HTTP/1.1")
        r = post(gw, b'{"Description":"' + b"x" * 2000 + b'"}', headers=[JSON_CT, "X-Request-ID: mid-h1"])
        eq(r.status, 413, "2 KB body over HTTP/1.1 (judged by the handler)")
        records = ph.wait_for_audit(audit, 2)
        after = ph.scrape(gw)
        rejected = sum(v for _, lab, v in after["crmgate_requests_total"]["samples"] if lab["decision"] == "rejected") - \
            sum(v for _, lab, v in before["crmgate_requests_total"]["samples"] if lab["decision"] == "rejected")
        viol = ph.metric_value(after, "crmgate_violations_total", {"code": "CRMGATE-BODY-TOO-LARGE", "mode": "enforce"})
        h.note("records: %s; rejected counted: %d; BODY-TOO-LARGE counted: %d"
               % ([(r["request_id"], r["route"], r["decision"]) for r in records], rejected, viol))
        eq(len(records), 2, "audit records of the two 413s")
        eq(rejected, 2, "crmgate_requests_total{decision=\"rejected\"} for the two 413s (as the trail has them)")
        eq(viol, 2, "crmgate_violations_total{code=\"CRMGATE-BODY-TOO-LARGE\"}")


@suite.test
def counters_are_exact_under_concurrent_load():
    total = 1500 if h.SANITIZE else 4500
    with suite.stack(threads=4) as (sim, gw):
        def plan(i):
            k = i % 3
            if k == 0:
                return "valid", "POST", INTERACTIONS, EXAMPLE, {"Content-Type": "application/json"}
            if k == 1:
                return "invalid", "POST", INTERACTIONS, b'{"CreatedBy":"x"}', {"Content-Type": "application/json"}
            return "get", "GET", INTERACTIONS, None, {}
        before = ph.scrape(gw)
        outcomes = ph.run_load(gw.port, (total, plan), 8, "m")
        check(all(o.error is None for o in outcomes), "errors: %r" % [o for o in outcomes if o.error][:3])
        ph.wait_until(lambda: ph.metric_value(ph.scrape(gw), "crmgate_request_duration_seconds", {},
                                              "crmgate_request_duration_seconds_count") >= total, 5, "durations")
        after = ph.scrape(gw)

    def delta(family, labels=None, sample=None):
        return ph.metric_value(after, family, labels, sample) - ph.metric_value(before, family, labels, sample)
    n = total // 3
    eq((delta("crmgate_requests_total", {"route": POST_ROUTE, "decision": "forwarded"}),
        delta("crmgate_requests_total", {"route": POST_ROUTE, "decision": "rejected"}),
        delta("crmgate_requests_total", {"route": NO_ROUTE, "decision": "pass-through"}),
        delta("crmgate_violations_total", {"code": "CRMGATE-READ-ONLY", "mode": "enforce"}),
        delta("crmgate_upstream_responses_total", {"class": "2xx"}),
        delta("crmgate_request_duration_seconds", {}, "crmgate_request_duration_seconds_count")),
       (n, n, n, n, 2 * n, total), "forwarded, rejected, pass-through, READ-ONLY, 2xx, durations after %d requests" % total)


@suite.test
def series_continue_across_reloads():
    rules = os.path.join(suite.workdir(), "rules")
    shutil.copytree(h.RULES_DIR, rules)
    with suite.stack(rules=rules) as (sim, gw):
        for _ in range(3):
            eq(post(gw, EXAMPLE).status, 201, "POST")
        for i in range(3):
            ph.send_signal(gw, signal.SIGHUP)
            ph.wait_until(lambda: ph.count_log(gw, r"reloaded: rules") > i, 5, "reload %d" % (i + 1))
            eq(post(gw, EXAMPLE).status, 201, "POST after reload %d" % (i + 1))
        fams = ph.scrape(gw)
        eq(ph.metric_value(fams, "crmgate_requests_total", {"route": POST_ROUTE, "decision": "forwarded"}), 6,
           "one series for the route across reloads")
        eq(ph.metric_value(fams, "crmgate_rule_reloads_total", {"result": "ok"}), 3, "reloads")


if __name__ == "__main__":
    suite.main()
