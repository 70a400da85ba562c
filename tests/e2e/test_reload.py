"""
End to end: hot reload and signals. SIGHUP compiles the configuration and rules again: new requests get the new
verdict, /-/readyz, /-/rules and the audit records show the new digest, crmgate_rule_reloads_total counts it; a
broken file changes nothing but a `reload failed ... file:line:col` line and the failed counter; a listen: change
is refused until a restart; 200 SIGHUPs under load lose no request and leak no memory. SIGTERM waits for a slow
request; a second SIGTERM exits at once, with status 1 when a request was cut off (0 when none was).
"""
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policy_helpers as ph  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("reload")
RULE_FILE = "interactions.json"
DESC11 = b'{"ChannelTypeCd":"ORA_SVC_WEB","Description":"eleven char"}'


def copy_rules(workdir, name="rules"):
    d = os.path.join(workdir, name)
    shutil.copytree(h.RULES_DIR, d)
    return d


def set_description_max_length(rules_dir, n):
    """The interaction schema's Description maxLength (other schemas have a Description of 1000 too)."""
    p = os.path.join(rules_dir, RULE_FILE)
    with open(p) as f:
        doc = json.load(f)
    doc["schemas"]["interaction"]["fields"]["Description"]["maxLength"] = n
    with open(p + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.rename(p + ".tmp", p)


def edit_rules(rules_dir, old, new):
    p = os.path.join(rules_dir, RULE_FILE)
    with open(p) as f:
        text = f.read()
    check(text.count(old) == 1, "%r is not in %s exactly once" % (old, p))
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(text.replace(old, new))
    os.rename(tmp, p)


def reloads(gw):
    fams = ph.scrape(gw)
    return (ph.metric_value(fams, "crmgate_rule_reloads_total", {"result": "ok"}),
            ph.metric_value(fams, "crmgate_rule_reloads_total", {"result": "failed"}))


def hup_and_wait(gw, pattern, count_before, seconds=10):
    """SIGHUP, then waits for the log line (the count of matches must grow past count_before)."""
    ph.send_signal(gw, signal.SIGHUP)
    ph.wait_until(lambda: ph.count_log(gw, pattern) > count_before, seconds, "the log line /%s/ after SIGHUP" % pattern)


def verdict_settles(gw, body, status, rid_prefix, seconds=5):
    """Every worker takes the new runtime on its own loop: polls until `status`, then requires it 10 times in a row."""
    ph.wait_until(lambda: post(gw, body).status == status, seconds, "the verdict %d after the reload" % status)
    for i in range(10):
        r = post(gw, body, headers=[JSON_CT, "X-Request-ID: %s-%d" % (rid_prefix, i)])
        eq(r.status, status, "request %d after the reload" % i)
    return r


@suite.test
def rule_change_and_sighup_change_the_verdict():
    workdir = suite.workdir()
    rules = copy_rules(workdir)
    audit = os.path.join(workdir, "audit.log")
    with suite.stack(config=ph.audit_yaml(audit), rules=rules) as (sim, gw):
        old_digest = ph.digest_of(gw.config_path, rules)
        eq(ph.readyz(gw), (200, "ready rules=%s\n" % old_digest), "/-/readyz before")
        eq(post(gw, DESC11, headers=[JSON_CT, "X-Request-ID: before"]).status, 201, "11 characters before the change")
        ok0, failed0 = reloads(gw)
        set_description_max_length(rules, 10)
        new_digest = ph.digest_of(gw.config_path, rules)
        check(new_digest != old_digest, "the digest did not change with the rules")
        hup_and_wait(gw, r"crmgate\[info\]: reloaded: rules %s \(18 routes from 1 file\(s\)\)" % new_digest, 0)
        mark = sim.mark()
        r = verdict_settles(gw, DESC11, 400, "after")
        eq([(c, p) for c, p, _ in h.text_violations(r)], [("CRMGATE-MAX-LENGTH", "/Description")], "violations")
        check("the maximum is 10." in r.text, "the detail names the new limit: %r" % r.text)
        eq(len(sim.since(mark)), 0, "rejected requests forwarded")
        eq(reloads(gw), (ok0 + 1, failed0), "crmgate_rule_reloads_total {ok, failed}")
        eq(ph.readyz(gw), (200, "ready rules=%s\n" % new_digest), "/-/readyz after")
        status, listing = ph.admin_get(gw, "/-/rules")
        check(listing.decode().startswith("rule set %s\n" % new_digest) and "maxLength 10\n" in listing.decode(),
              "/-/rules after the reload:\n%s" % listing.decode()[:500])
        records = ph.wait_for_audit(audit, 11)
        eq(ph.record_for(records, "before")["rules"], old_digest, "digest in the record before the reload")
        for i in range(10):
            eq(ph.record_for(records, "after-%d" % i)["rules"], new_digest, "digest in the record after the reload")
        # and back: the same rules give the same digest again
        set_description_max_length(rules, 1000)
        hup_and_wait(gw, r"reloaded: rules %s " % old_digest, 0)
        verdict_settles(gw, DESC11, 201, "back")
        eq(reloads(gw), (ok0 + 2, failed0), "crmgate_rule_reloads_total after the second reload")


@suite.test
def request_in_flight_finishes_on_the_rules_it_started_with():
    workdir = suite.workdir()
    rules = copy_rules(workdir)
    audit = os.path.join(workdir, "audit.log")
    with suite.stack(config=ph.audit_yaml(audit), rules=rules) as (sim, gw):
        old_digest = ph.digest_of(gw.config_path, rules)
        result = {}

        def slow():
            result["r"] = h.curl(gw.url(), method="POST", data=DESC11, headers=[
                JSON_CT, "X-Sim-Delay-Ms: 1500", "X-Request-ID: in-flight"])
        t = threading.Thread(target=slow)
        mark = sim.mark()
        t.start()
        ph.wait_until(lambda: sim.count() > mark, 5, "the slow request reaching the simulator")
        set_description_max_length(rules, 10)
        new_digest = ph.digest_of(gw.config_path, rules)
        for _ in range(3):  # the old rule set is released only when the request in flight ends
            n = ph.count_log(gw, r"reloaded: rules")
            hup_and_wait(gw, r"reloaded: rules %s" % new_digest, n)
        verdict_settles(gw, DESC11, 400, "new")
        t.join()
        eq(result["r"].status, 201, "the request in flight")
        records = ph.wait_for_audit(audit, 11)
        rec = ph.record_for(records, "in-flight")
        eq((rec["rules"], rec["decision"], rec["status"]), (old_digest, "forwarded", 201), "its record")
        eq(ph.record_for(records, "new-0")["rules"], new_digest, "the record of a new request")


@suite.test
def config_change_and_sighup_apply_modes():
    workdir = suite.workdir()
    with suite.stack(config="mode: enforce\n") as (sim, gw):
        bad = b'{"ChannelTypeCd":"ORA_SVC_WEB","CreatedBy":"x"}'
        eq(post(gw, bad).status, 400, "read-only in mode enforce")
        with open(gw.config_path, "w") as f:
            f.write("mode: report\nreport-header: on\n")
        hup_and_wait(gw, r"reloaded: rules", 0)
        r = verdict_settles(gw, bad, 201, "report")
        eq(r.header("x-crmgate-report"), "CRMGATE-READ-ONLY /CreatedBy", "X-CRMGate-Report after the reload")
        eq(ph.readyz(gw)[1], "ready rules=%s\n" % ph.digest_of(gw.config_path), "/-/readyz digest (modes count)")


@suite.test
def broken_rule_file_keeps_the_old_rules():
    workdir = suite.workdir()
    rules = copy_rules(workdir)
    with suite.stack(rules=rules, allow_errors=True) as (sim, gw):
        old_digest = ph.digest_of(None, rules)
        ok0, failed0 = reloads(gw)
        set_description_max_length(rules, 1234567)  # a unique spot to break
        edit_rules(rules, '"maxLength": 1234567', '"maxLength": 10,,')
        cp = h.run_cli(["-t", "--rules", rules])
        m = re.search(r"(\S+interactions\.json):(\d+):(\d+): ", cp.stderr_text)
        check(cp.returncode == 1 and m, "crmgate -t on the broken file:\n" + cp.stderr_text)
        where = "%s:%s:%s" % m.groups()
        hup_and_wait(gw, r"reload failed", 0)
        line = [l for l in gw.proc.stderr().splitlines() if "reload failed" in l][0]
        h.note(line)
        check("crmgate[error]: reload failed, still serving rules %s: %s: " % (old_digest, where) in line,
              "the log line does not name the old digest and %s: %r" % (where, line))
        for i in range(10):
            eq(post(gw, DESC11).status, 201, "request %d with the old rules" % i)
            eq(post(gw, b'{"CreatedBy":"x"}').status, 400, "an invalid request %d with the old rules" % i)
        eq(reloads(gw), (ok0, failed0 + 1), "crmgate_rule_reloads_total {ok, failed}")
        eq(ph.readyz(gw), (200, "ready rules=%s\n" % old_digest), "/-/readyz keeps the old digest")
        # a rule file that compiles but is wrong (unknown lookup) is refused too
        edit_rules(rules, '"maxLength": 10,,', '"maxLength": 10, "lookup": "NO_SUCH_LOOKUP"')
        hup_and_wait(gw, r"reload failed", 1)
        line = [l for l in gw.proc.stderr().splitlines() if "reload failed" in l][1]
        # (an error of meaning names the file and the JSON pointer of the rule, as crmgate -t does)
        check(re.search(r"reload failed, still serving rules %s: \S+interactions\.json: "
                        r"/schemas/interaction/fields/Description/lookup: unknown lookup \"NO_SUCH_LOOKUP\""
                        % old_digest, line), "second failure: %r" % line)
        eq(reloads(gw), (ok0, failed0 + 2), "crmgate_rule_reloads_total after two failures")
        # fixed: the next reload succeeds
        edit_rules(rules, '"maxLength": 10, "lookup": "NO_SUCH_LOOKUP"', '"maxLength": 10')
        hup_and_wait(gw, r"reloaded: rules", 0)
        verdict_settles(gw, DESC11, 400, "fixed")
        eq(reloads(gw), (ok0 + 1, failed0 + 2), "crmgate_rule_reloads_total after the fix")


@suite.test
def broken_config_file_keeps_the_old_configuration():
    yaml = "mode: enforce\n"
    with suite.stack(config=yaml, allow_errors=True) as (sim, gw):
        ok0, failed0 = reloads(gw)
        with open(gw.config_path, "w") as f:
            f.write("mode: report\nlimits:\n  max-body: lots\n")
        hup_and_wait(gw, r"reload failed", 0)
        line = [l for l in gw.proc.stderr().splitlines() if "reload failed" in l][0]
        check(re.search(r"reload failed, still serving rules [0-9a-f]{64}: %s:3:\d+: limits\.max-body"
                        % re.escape(gw.config_path), line), "the log line does not name file:line:col: %r" % line)
        eq(post(gw, b'{"CreatedBy":"x"}').status, 400, "still mode enforce")
        with open(gw.config_path, "w") as f:
            f.write("mode: [report\n")
        hup_and_wait(gw, r"reload failed", 1)
        line = [l for l in gw.proc.stderr().splitlines() if "reload failed" in l][1]
        check(re.search(r"%s:\d+:\d+: YAML syntax error" % re.escape(gw.config_path), line), "YAML error: %r" % line)
        eq(reloads(gw), (ok0, failed0 + 2), "crmgate_rule_reloads_total")
        eq(post(gw, b'{"CreatedBy":"x"}').status, 400, "still mode enforce")


@suite.test
def listen_change_needs_a_restart():
    sim = suite.start_sim()
    port, other = ph.free_port(), ph.free_port()
    config = "listen: 127.0.0.1:%d\nadmin: 127.0.0.1:0\nthreads: 2\nupstream: http://127.0.0.1:%d\nrules: %s\n" % (
        port, sim.port, json.dumps(h.RULES_DIR))
    gw = ph.RawGateway(suite, config, [])
    eq(gw.port, port, "the configured port")
    eq(post(gw, EXAMPLE).status, 201, "before the reload")
    with open(gw.config_path, "w") as f:
        f.write(config.replace(":%d\n" % port, ":%d\n" % other, 1).replace("threads: 2", "threads: 3"))
    hup_and_wait(gw, r"reload: listen changed", 0)
    text = gw.proc.stderr()
    check("crmgate[warn]: reload: listen changed in the configuration; restart crmgate to apply it (still 127.0.0.1:%d)"
          % port in text, "the warning:\n" + h.tail(text, 5))
    check("reload: threads changed" in text, "no warning for threads:\n" + h.tail(text, 5))
    for i in range(5):
        eq(post(gw, EXAMPLE).status, 201, "request %d on the old port after the reload" % i)
    s = socket.socket()
    try:
        refused = s.connect_ex(("127.0.0.1", other)) != 0
    finally:
        s.close()
    check(refused, "something listens on the new port %d" % other)
    gw.stop()
    suite.stop(sim)


@suite.test
def policy_keys_apply_on_reload_and_audit_needs_a_restart():
    workdir = suite.workdir()
    audit, other = os.path.join(workdir, "audit.log"), os.path.join(workdir, "other.log")
    with suite.stack(config=ph.audit_yaml(audit)) as (sim, gw):
        eq(h.curl(gw.url(), headers=["X-Request-ID: get-1"]).status, 200, "GET")
        eq(post(gw, b'{"CreatedBy":"x"}').header("content-type").split(";")[0], "text/plain", "error format before")
        with open(gw.config_path, "w") as f:
            f.write(ph.audit_yaml(audit, all_routes="on") + "errors: {format: problem+json}\n")
        hup_and_wait(gw, r"reloaded: rules", 0)
        ph.wait_until(lambda: post(gw, b'{"CreatedBy":"x"}').header("content-type") == "application/problem+json", 5,
                      "errors.format applied by the reload")
        eq(h.curl(gw.url(), headers=["X-Request-ID: get-2"]).status, 200, "GET")
        ph.wait_until(lambda: "get-2" in [r["request_id"] for r in ph.read_audit(audit, True)], 5,
                      "audit.all-routes applied by the reload")
        check("get-1" not in [r["request_id"] for r in ph.read_audit(audit)], "GET audited before all-routes: on")
        check("reload: audit changed" not in gw.proc.stderr(), "a restart warning for audit.all-routes")
        # a new audit path needs a restart: said, and the trail stays where it is
        with open(gw.config_path, "w") as f:
            f.write(ph.audit_yaml(other, all_routes="on"))
        hup_and_wait(gw, r"reload: audit changed", 0)
        check("crmgate[warn]: reload: audit changed in the configuration; restart crmgate to apply it (still %s)" % audit
              in gw.proc.stderr(), "the warning:\n" + h.tail(gw.proc.stderr(), 4))
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: after-path"]).status, 201, "POST")
        ph.wait_until(lambda: "after-path" in [r["request_id"] for r in ph.read_audit(audit, True)], 5,
                      "the record in the running trail")
        check(not os.path.exists(other), "the new audit path was opened without a restart")


@suite.test
def command_line_overrides_survive_a_reload():
    workdir = suite.workdir()
    audit = os.path.join(workdir, "cli.log")
    with suite.stack(config="audit: {path: \"-\"}\n", args=["--audit", audit]) as (sim, gw):
        ph.send_signal(gw, signal.SIGHUP)
        gw.proc.wait_for(r"reloaded: rules", 5)
        time.sleep(0.1)
        check("restart crmgate" not in gw.proc.stderr(), "a restart warning for unchanged settings:\n" +
              h.tail(gw.proc.stderr(), 4))
        eq(post(gw, EXAMPLE, headers=[JSON_CT, "X-Request-ID: cli"]).status, 201, "POST after the reload")
        ph.wait_until(lambda: ph.read_audit(audit, True), 5, "the record in the --audit file")
    eq(gw.proc.stdout(), "", "records on standard output")


@suite.test
def max_body_change_is_applied_or_needs_a_restart():
    # limits.max-body is not among the keys that need a restart. h2o's own body limit and the HTTP/2 body guard are
    # set from the start-up value, though: a reload that raises it must take effect on both protocols, or say that
    # it needs a restart -- not apply on one protocol and not the other, silently.
    with suite.stack(config="limits: {max-body: 1KiB}\n") as (sim, gw):
        for size in (20000, 100000):
            eq(post(gw, b'{"Payload":"' + b"x" * size + b'"}').status, 413, "%d bytes with max-body 1KiB" % size)
        with open(gw.config_path, "w") as f:
            f.write("limits: {max-body: 1MiB}\n")
        hup_and_wait(gw, r"reloaded: rules", 0)
        time.sleep(0.2)
        warned = re.search(r"reload: (limits\.)?max-body changed.*restart", gw.proc.stderr())
        results = {}
        for size in (20000, 100000):
            body = b'{"ChannelTypeCd":"ORA_SVC_WEB","Payload":"' + b"x" * size + b'"}'
            for http2 in (False, True):
                results[(size, "HTTP/2" if http2 else "HTTP/1.1")] = post(gw, body, http2=http2).status
        h.note("after raising max-body from 1KiB to 1MiB: %s; restart warning: %s" % (results, bool(warned)))
        expected = 413 if warned else 201
        check(all(v == expected for v in results.values()),
              "max-body raised by SIGHUP: expected %d everywhere (%s), got %s" %
              (expected, "a restart was asked for" if warned else "no restart warning was logged", results))


@suite.test
def http2_frame_limits_change_needs_a_restart():
    # each connection's frame guard takes the limits from the start-up configuration: a reload says so
    with suite.stack(config="limits: {http2-pings-per-second: 5}\n") as (sim, gw):
        with open(gw.config_path, "w") as f:
            f.write("limits: {http2-pings-per-second: 500}\n")
        hup_and_wait(gw, r"reloaded: rules", 0)
        gw.proc.wait_for(r"reload: limits\.http2-\*-per-second changed in the configuration; restart crmgate to "
                         r"apply it \(still resets 100, pings 5, settings 50 per second\)", 5)
        eq(post(gw, EXAMPLE, http2=True).status, 201, "HTTP/2 after the reload")


# ---- 200 SIGHUPs under load --------------------------------------------------------------------------------


@suite.test
def two_hundred_sighups_under_load_fail_no_request():
    workdir = suite.workdir()
    audit = os.path.join(workdir, "audit.log")
    minimum = 1000 if h.SANITIZE else 3000
    with suite.stack(config=ph.audit_yaml(audit, all_routes="on"), threads=2) as (sim, gw):
        pid = gw.proc.pid

        def plan(i):
            if i % 2:
                return "invalid", "POST", INTERACTIONS, b'{"CreatedBy":"x"}', {"Content-Type": "application/json"}
            return "valid", "POST", INTERACTIONS, EXAMPLE, {"Content-Type": "application/json"}

        # warm up: allocator arenas, connection pools, both workers
        warm = ph.run_load(gw.port, (400, plan), 4, "warm")
        check(all(o.error is None for o in warm), "warm-up errors: %r" % [o for o in warm if o.error][:3])
        for _ in range(20):  # reloads warm up too (the first ones grow the heap)
            ph.send_signal(gw, signal.SIGHUP)
            time.sleep(0.01)
        ph.wait_until(lambda: reloads(gw)[0] >= 1, 5, "the warm-up reloads")
        time.sleep(0.3)
        ok0, failed0 = reloads(gw)
        rss_before = ph.rss_kib(pid)
        done = threading.Event()
        sent = {"n": 0}

        def hupper():
            try:
                while sent["n"] < 200:
                    ph.send_signal(gw, signal.SIGHUP)
                    sent["n"] += 1
                    time.sleep(0.015)
            finally:
                done.set()

        t0 = time.monotonic()
        th = threading.Thread(target=hupper)
        th.start()
        # the clients send for as long as the SIGHUPs come
        outcomes = [o for o in ph.run_load(gw.port, (10 ** 6, plan), 6, "hup", until=done) if o is not None]
        load_s = time.monotonic() - t0
        th.join()
        hup_s = time.monotonic() - t0
        ph.wait_until(lambda: reloads(gw)[0] - ok0 >= 1, 10, "reloads counted")
        time.sleep(0.5)
        ok1, failed1 = reloads(gw)
        # the load again, with no reloads, then the memory figure
        ph.run_load(gw.port, (400, plan), 4, "cool")
        time.sleep(0.3)
        rss_after = ph.rss_kib(pid)
        wrong = [o for o in outcomes if o.error is not None or o.status != (201 if o.kind == "valid" else 400)]
        h.note("SIGHUP storm: %d SIGHUPs sent in %.2f s while %d requests ran in %.2f s from 6 clients" %
               (sent["n"], hup_s, len(outcomes), load_s))
        h.note("reloads counted: ok %d, failed %d (signals sent while one is pending coalesce)" %
               (ok1 - ok0, failed1 - failed0))
        h.note("failed or unexpected requests: %d" % len(wrong))
        h.note("VmRSS before: %d KiB (%.1f MiB); after: %d KiB (%.1f MiB); growth %+d KiB"
               % (rss_before, rss_before / 1024, rss_after, rss_after / 1024, rss_after - rss_before))
        check(len(outcomes) >= minimum, "only %d requests ran during the SIGHUPs" % len(outcomes))
        check(not wrong, "%d requests failed or got an unexpected answer during the reloads, e.g. %r" % (len(wrong), wrong[:5]))
        eq(sent["n"], 200, "SIGHUPs sent")
        eq(failed1 - failed0, 0, "failed reloads")
        check(ok1 - ok0 >= 100 or h.SANITIZE, "only %d of 200 SIGHUPs led to a reload" % (ok1 - ok0))
        eq(ph.count_log(gw, r"crmgate\[info\]: reloaded: rules"), ok1, "reload log lines and the ok counter")
        if not h.SANITIZE:  # ASan's quarantine keeps freed memory
            check(rss_after - rss_before < 20 * 1024, "RSS grew by %d KiB over 200 reloads" % (rss_after - rss_before))
    records = ph.read_audit(audit)
    by_id = {r["request_id"]: r for r in records}
    missing = [o.rid for o in outcomes if o.rid not in by_id]
    check(not missing, "%d requests of the storm have no audit record: %r" % (len(missing), missing[:5]))


# ---- SIGTERM ----------------------------------------------------------------------------------------------


def slow_request(gw, rid, result, delay_ms=3000):
    def run():
        result["r"] = h.curl(gw.url(), method="POST", headers=[JSON_CT, "X-Sim-Delay-Ms: %d" % delay_ms,
                                                                "X-Request-ID: " + rid], data=EXAMPLE, expect_rc=None)
    t = threading.Thread(target=run)
    t.start()
    return t


@suite.test
def sigterm_waits_for_a_slow_request_and_flushes_its_record():
    audit = os.path.join(suite.workdir(), "audit.log")
    with suite.stack(config=ph.audit_yaml(audit)) as (sim, gw):
        result = {}
        mark = sim.mark()
        t = slow_request(gw, "slow-graceful", result, 1500)
        ph.wait_until(lambda: sim.count() > mark, 5, "the slow request reaching the simulator")
        t0 = time.monotonic()
        ph.send_signal(gw, signal.SIGTERM)
        status = ph.wait_exit(gw.proc, 15)
        dt = time.monotonic() - t0
        t.join()
        eq(status, 0, "exit status after one SIGTERM")
        eq(result["r"].status, 201, "the slow request finished")
        check(dt >= 1.0, "exited %.2f s after SIGTERM, before the slow request could finish" % dt)
        check("received Terminated" in gw.proc.stderr(), "no log line for the signal")
    eq([r["request_id"] for r in ph.read_audit(audit)], ["slow-graceful"], "records flushed at exit")


@suite.test
def second_sigterm_with_a_request_in_flight_exits_at_once_with_1():
    with suite.stack() as (sim, gw):
        result = {}
        mark = sim.mark()
        t = slow_request(gw, "slow-cut", result, 3000)
        ph.wait_until(lambda: sim.count() > mark, 5, "the slow request reaching the simulator")
        ph.send_signal(gw, signal.SIGTERM)
        gw.proc.wait_for(r"received Terminated: no longer accepting", 5)
        time.sleep(0.2)
        check(gw.proc.alive(), "the gateway exited after one SIGTERM with a request in flight")
        t0 = time.monotonic()
        ph.send_signal(gw, signal.SIGTERM)
        status = ph.wait_exit(gw.proc, 5)
        dt = time.monotonic() - t0
        t.join()
        h.note("second SIGTERM: exit status %d after %.3f s; the client saw status %s, curl exit %d"
               % (status, dt, result["r"].status, result["r"].rc))
        eq(status, 1, "exit status after a second SIGTERM with a request in flight")
        check(dt < h.timeout(1), "the second SIGTERM took %.2f s" % dt)
        check(re.search(r"crmgate\[warn\]: received Terminated again: exiting now, with 1 request\(s\) in flight",
                        gw.proc.stderr()), "log:\n" + h.tail(gw.proc.stderr(), 5))
        check(result["r"].status != 201, "the cut-off request still got 201")
        suite.stop(gw, expect_status=1)


@suite.test
def second_signal_with_nothing_in_flight_exits_0():
    for first, second in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)):
        with suite.stack() as (sim, gw):
            eq(post(gw, EXAMPLE).status, 201, "a request before the signals")
            # an idle keep-alive connection is not a request in flight
            idle = socket.create_connection(("127.0.0.1", gw.port))
            try:
                ph.send_signal(gw, first)
                ph.send_signal(gw, second)
                status = ph.wait_exit(gw.proc, 5)
            finally:
                idle.close()
            eq(status, 0, "exit status after %s + %s with nothing in flight" % (first.name, second.name))
            suite.stop(gw)


if __name__ == "__main__":
    suite.main()
