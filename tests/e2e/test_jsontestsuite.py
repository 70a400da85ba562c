"""
End to end: JSONTestSuite (and the Big List of Naughty Strings) through the
gateway's validated route.

Every n_*.json (must not parse) is a 400 and never reaches the CRM; every
y_*.json and i_*.json gets some HTTP answer (no crash, no hang); afterwards the
gateway answers /-/healthz and exits 0 on SIGTERM. Naughty strings as a
Description arrive byte for byte unless a rule refuses them. The whole file is
skipped (exit 77) when $CRMGATE_TESTDATA/JSONTestSuite is absent.
"""
import glob
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import INTERACTIONS, check, eq  # noqa: E402

suite = h.Suite("jsontestsuite")
SUITE_DIR = os.path.join(h.TESTDATA, "JSONTestSuite")
BLNS = os.path.join(h.TESTDATA, "naughty-strings", "blns.json")
HEADERS = {"Content-Type": "application/json"}
STRUCTURAL = {"CRMGATE-INVALID-JSON", "CRMGATE-INVALID-UTF8", "CRMGATE-INVALID-UNICODE-ESCAPE",
              "CRMGATE-NUL-CHARACTER", "CRMGATE-DUPLICATE-KEY", "CRMGATE-NUMBER-OVERFLOW", "CRMGATE-NOT-AN-OBJECT",
              "CRMGATE-EMPTY-BODY", "CRMGATE-TOO-DEEP"}


def cases(prefix):
    files = glob.glob(os.path.join(SUITE_DIR, "**", prefix + "_*.json"), recursive=True)
    return sorted(files, key=os.path.basename)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tagged_names(sim):
    return [r.header("x-test-file") for r in sim.records()]


if not os.path.isdir(SUITE_DIR):
    print("# %s is absent: nothing to test (set CRMGATE_TESTDATA)" % SUITE_DIR)
    suite.skip_all("%s is absent" % SUITE_DIR)
elif not cases("n"):
    suite.skip_all("no n_*.json files in %s" % SUITE_DIR)


@suite.test
def all_files_over_one_http1_connection():
    n_files, y_files, i_files = cases("n"), cases("y"), cases("i")
    h.note("%d n_, %d y_, %d i_ files" % (len(n_files), len(y_files), len(i_files)))
    with suite.stack() as (sim, gw):
        conn = h.Http1(gw.port)
        not_400, by_code = [], {}
        for path in n_files:
            name = os.path.basename(path)
            status, headers, body = conn.request("POST", INTERACTIONS, read(path), dict(HEADERS, **{"X-Test-File": name}))
            if status != 400:
                not_400.append("%s: %d %r" % (name, status, body[:200]))
                continue
            code = body.split(b" ", 1)[0].decode("ascii", "replace")
            by_code[code] = by_code.get(code, 0) + 1
            check(code in STRUCTURAL, "%s: 400 with an unexpected first code %r: %r" % (name, code, body[:300]))
        h.note("n_ files by code: %s" % ", ".join("%s %d" % kv for kv in sorted(by_code.items())))
        check(not not_400, "n_ files not answered 400:\n" + "\n".join(not_400))
        forwarded = [n for n in tagged_names(sim) if n is not None and n.startswith("n_")]
        check(not forwarded, "n_ files that reached the simulator: %s" % forwarded)
        eq(sim.count(), 0, "requests the simulator received for n_ files")

        answers = {}
        for path in y_files + i_files:
            name = os.path.basename(path)
            status, headers, body = conn.request("POST", INTERACTIONS, read(path), dict(HEADERS, **{"X-Test-File": name}))
            check(100 <= status <= 599, "%s: no proper HTTP answer (%r)" % (name, status))
            check(status < 500, "%s: a server error %d: %r" % (name, status, body[:300]))
            answers[status] = answers.get(status, 0) + 1
        h.note("y_/i_ answers by status: %s" % ", ".join("%d: %d" % kv for kv in sorted(answers.items())))
        h.note("client reconnections: %d" % conn.reconnects)
        conn.close()
        # what was forwarded arrived byte for byte
        paths = {os.path.basename(p): p for p in y_files + i_files}
        for rec in sim.records():
            name = rec.header("x-test-file")
            check(name in paths, "unexpected forwarded request %r (X-Test-File %r)" % (rec, name))
            check(rec.body == read(paths[name]), name + ": the body changed on the way upstream")
        status, body = h.http_get(gw.admin_port, "/-/healthz")
        eq(status, 200, "healthz after the suite")
        check(gw.proc.alive(), "the gateway died")
        suite.stop(gw)  # SIGTERM: exit status 0, no sanitizer report


@suite.test
def n_files_over_http2_are_400_and_never_forwarded():
    with suite.stack() as (sim, gw):
        bad = []
        for path in cases("n"):
            name = os.path.basename(path)
            r = h.curl(gw.url(), method="POST", headers=["Content-Type: application/json", "X-Test-File: " + name],
                       data_file=path, http2=True, seconds=15)
            if r.status != 400 or r.version != "2":
                bad.append("%s: HTTP/%s %d %r" % (name, r.version, r.status, r.body[:200]))
        check(not bad, "n_ files not answered 400 over HTTP/2:\n" + "\n".join(bad))
        eq(tagged_names(sim), [], "n_ files that reached the simulator over HTTP/2")
        eq(h.http_get(gw.admin_port, "/-/healthz")[0], 200, "healthz afterwards")


@suite.test
def naughty_strings_as_description():
    if not os.path.exists(BLNS):
        raise h.Skip("%s is absent" % BLNS)
    strings = json.loads(read(BLNS))
    with suite.stack() as (sim, gw):
        conn = h.Http1(gw.port)
        problems, forwarded, refused = [], 0, 0
        for i, s in enumerate(strings):
            for ascii_only in (False, True):
                try:
                    body = json.dumps({"ChannelTypeCd": "ORA_SVC_WEB", "Description": s},
                                      ensure_ascii=ascii_only).encode("utf-8")
                except UnicodeEncodeError:
                    continue  # a lone surrogate has no UTF-8 form; the escaped variant covers it
                must_refuse = len(s) > 1000 or "\x00" in s or any(0xD800 <= ord(c) <= 0xDFFF for c in s)
                mark = sim.mark()
                status, headers, answer = conn.request("POST", INTERACTIONS, body, dict(HEADERS))
                new = sim.since(mark)
                if must_refuse:
                    refused += 1
                    if status != 400 or new:
                        problems.append("#%d %r: expected a 400 and nothing forwarded, got %d, %d forwarded"
                                        % (i, s[:60], status, len(new)))
                else:
                    forwarded += 1
                    if status != 201 or len(new) != 1 or new[0].body != body:
                        problems.append("#%d %r (ascii %s): expected 201 and the same bytes upstream, got %d %r"
                                        % (i, s[:60], ascii_only, status, answer[:200]))
        conn.close()
        h.note("%d naughty bodies forwarded, %d refused" % (forwarded, refused))
        check(not problems, "%d problem(s):\n%s" % (len(problems), "\n".join(problems[:30])))


suite.main()
