"""
End to end: the admin listener and the command line.

/-/healthz and /-/readyz on the admin port; `crmgate -t` accepts the shipped
configuration and rules and refuses broken ones saying where and why; usage
errors exit 2; a listen port already in use is a clean failure; SIGTERM lets a
request in flight finish and exits 0; `crmgate validate` prints exactly the
error document the live gateway sends.
"""
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
from harness import EXAMPLE, JSON_CT, RULES_DIR, SHIPPED_CONFIG, SOURCE_DIR, check, eq, post  # noqa: E402

suite = h.Suite("admin_and_cli")
SHIPPED_RULES = os.path.join(RULES_DIR, "interactions.json")
DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def check_ok(cp, what):
    eq(cp.returncode, 0, "%s: exit status (stderr: %s)" % (what, cp.stderr_text.strip()))
    check(re.search(r"OK; rules [0-9a-f]{64}: \d+ routes", cp.stdout_text),
          "%s: -t did not print 'OK; rules <digest>: N routes': %r" % (what, cp.stdout_text))
    return DIGEST.search(cp.stdout_text).group(0)


def shipped_rules():
    with open(SHIPPED_RULES) as f:
        return json.load(f)


def write(name, text):
    path = os.path.join(suite.workdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def free_port_holder():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


@suite.test
def admin_healthz_readyz_and_rules():
    digest = check_ok(h.run_cli(["-t", "--rules", RULES_DIR]), "crmgate -t")
    with suite.stack() as (sim, gw):
        for http2 in (False, True):
            r = h.curl(gw.admin_url("/-/healthz"), http2=http2)
            eq((r.status, r.text), (200, "ok\n"), "healthz (http2=%s)" % http2)
        r = h.curl(gw.admin_url("/-/readyz"))
        eq(r.status, 200, "readyz")
        check(digest in r.text, "readyz does not show the rule-set digest %s that -t printed: %r" % (digest, r.text))
        r = h.curl(gw.admin_url("/-/rules"))
        eq(r.status, 200, "/-/rules")
        check(digest in r.text and "interactionReference" in r.text, "/-/rules lacks the digest or the schemas")
        eq(h.curl(gw.admin_url("/-/nope")).status, 404, "unknown admin path")
        eq(sim.count(), 0, "admin requests must not reach the CRM")
        # and the gateway's start-up log names the same digest
        check(digest in gw.proc.stderr(), "the start-up log does not name the digest %s" % digest)


@suite.test
def check_mode_accepts_embedded_default_and_shipped_rules():
    # no -c: the embedded conf/crmgate.yaml, whose `rules: rules` is relative to the working directory
    check_ok(h.run_cli(["-t"], cwd=SOURCE_DIR), "crmgate -t in the source directory")
    check_ok(h.run_cli(["-t", "--rules", RULES_DIR], cwd="/"), "crmgate -t --rules <source>/rules")
    check_ok(h.run_cli(["-t", "--rules", SHIPPED_RULES], cwd="/"), "crmgate -t --rules <the rule file>")


@suite.test
def check_mode_accepts_shipped_config_file():
    # `crmgate -t -c conf/crmgate.yaml` is the documented way to check a deployment's configuration
    check_ok(h.run_cli(["-t", "-c", SHIPPED_CONFIG], cwd=SOURCE_DIR), "crmgate -t -c conf/crmgate.yaml (cwd: source)")
    check_ok(h.run_cli(["-t", "-c", SHIPPED_CONFIG], cwd="/"), "crmgate -t -c <source>/conf/crmgate.yaml (cwd: /)")


@suite.test
def broken_rule_files_are_refused_with_the_reason():
    cases = []
    # JSON syntax error: file:line:col (the stray ',' is on line 4, column 22)
    path = write("syntax.json", '{\n  "crmgate-rules": 1,\n  "schemas": {\n    "x": {"fields": {,}}\n  }\n}\n')
    cases.append(("syntax error", path, [re.escape(path) + r":4:2[12]\b"]))
    doc = shipped_rules()
    doc["schemas"]["interaction"]["fields"]["Description"]["type"] = "strng"
    path = write("type.json", json.dumps(doc, indent=2))
    cases.append(("unknown type", path, [re.escape(path), re.escape("/schemas/interaction/fields/Description/type"),
                                         "strng"]))
    doc = shipped_rules()
    doc["schemas"]["interaction"]["fields"]["Description"]["pattern"] = "ab([a-z"
    path = write("regex.json", json.dumps(doc, indent=2))
    cases.append(("bad pattern", path, [re.escape(path), re.escape("/schemas/interaction/fields/Description/pattern"),
                                        r"offset \d+"]))
    doc = shipped_rules()
    doc["schemas"]["interactionReference"]["fields"]["ObjectTypeCd"]["lookup"] = "NO_SUCH_LOOKUP"
    path = write("lookup.json", json.dumps(doc, indent=2))
    cases.append(("unknown lookup", path, [re.escape(path), re.escape("/schemas/interactionReference/fields/ObjectTypeCd/lookup"),
                                           "NO_SUCH_LOOKUP"]))
    for what, path, patterns in cases:
        cp = h.run_cli(["-t", "--rules", path])
        eq(cp.returncode, 1, "%s: exit status of -t (stderr: %s)" % (what, cp.stderr_text.strip()))
        for p in patterns:
            check(re.search(p, cp.stderr_text), "%s: the message lacks /%s/: %r" % (what, p, cp.stderr_text))
        check("OK" not in cp.stdout_text, "%s: -t printed OK: %r" % (what, cp.stdout_text))
        # and the daemon refuses to start with it, with the same message
        cp2 = h.run_cli(["--rules", path, "--listen", "127.0.0.1:0", "--admin", "off", "--upstream", "http://127.0.0.1:9"])
        eq(cp2.returncode, 1, "%s: exit status of the daemon" % what)
        eq(cp2.stderr_text.strip().splitlines()[-1:], cp.stderr_text.strip().splitlines()[-1:],
           "%s: the daemon's reason" % what)


@suite.test
def config_with_unknown_key_says_where_and_suggests():
    cases = [
        ("top level", "listen: 127.0.0.1:8080\nlimit:\n  max-body: 1k\n", 2, 1, "limits"),
        ("nested", "listen: 127.0.0.1:8080\nlimits:\n  max-bdy: 1k\n", 3, 3, "limits.max-body"),
        ("upstream", "upstream:\n  url: http://127.0.0.1:9\n  keepalive-timout: 1s\n", 3, 3, "upstream.keepalive-timeout"),
    ]
    for what, text, line, col, hint in cases:
        path = write("bad-%s.yaml" % what.replace(" ", "-"), text)
        for args in (["-t", "-c", path, "--rules", RULES_DIR], ["-c", path, "--rules", RULES_DIR, "--listen", "127.0.0.1:0"]):
            cp = h.run_cli(args)
            check(cp.returncode != 0, "%s: %s exited 0" % (what, args))
            eq(cp.returncode, 1, "%s: exit status" % what)
            check("%s:%d:%d:" % (path, line, col) in cp.stderr_text,
                  "%s: the message lacks %s:%d:%d: %r" % (what, path, line, col, cp.stderr_text))
            check('did you mean "%s"' % hint in cp.stderr_text,
                  "%s: no 'did you mean \"%s\"' in %r" % (what, hint, cp.stderr_text))


@suite.test
def version_help_and_usage_errors():
    cp = h.run_cli(["--version"])
    eq(cp.returncode, 0, "--version exit status")
    check(re.match(r"crmgate \d+\.\d+\.\d+", cp.stdout_text), "--version output: %r" % cp.stdout_text)
    cp = h.run_cli(["--help"])
    eq(cp.returncode, 0, "--help exit status")
    check("usage:" in cp.stdout_text and "--listen" in cp.stdout_text, "--help output: %r" % cp.stdout_text)
    for args in (["--no-such-flag"], ["-Z"], ["unexpected-argument"], ["--listen"]):
        cp = h.run_cli(args)
        eq(cp.returncode, 2, "%s exit status (stderr %r)" % (args, cp.stderr_text[:200]))
        check("usage:" in cp.stderr_text, "%s: no usage on stderr" % args)
    cp = h.run_cli(["validate"])
    eq(cp.returncode, 2, "validate without a file")
    cp = h.run_cli(["--listen", "not-a-hostport", "--rules", RULES_DIR])
    check(cp.returncode != 0 and "not-a-hostport" in cp.stderr_text, "a bad --listen: %r" % cp.stderr_text)


@suite.test
def listen_port_in_use_is_a_clean_failure():
    holder, port = free_port_holder()
    try:
        for flag, other in (("--listen", ["--admin", "off"]), ("--admin", ["--listen", "127.0.0.1:0"])):
            cp = h.run_cli([flag, "127.0.0.1:%d" % port, "--rules", RULES_DIR, "--upstream", "http://127.0.0.1:9"] + other,
                           seconds=20)
            check(cp.returncode not in (0, None), "%s on a busy port exited %s" % (flag, cp.returncode))
            check("127.0.0.1:%d" % port in cp.stderr_text and "in use" in cp.stderr_text,
                  "%s on a busy port: unclear message %r" % (flag, cp.stderr_text))
    finally:
        holder.close()


@suite.test
def listen_port_served_by_another_crmgate_is_a_clean_failure():
    # Each worker's listener has SO_REUSEPORT; a second crmgate started by mistake on the same port must not
    # silently take half of the first one's connections.
    sim = suite.start_sim()
    first = suite.start_gateway(sim.port)
    argv = [h.CRMGATE_BIN, "--listen", "127.0.0.1:%d" % first.port, "--admin", "off", "--rules", RULES_DIR,
            "--upstream", "http://127.0.0.1:%d" % sim.port, "--threads", "1"]
    second = h.Proc("crmgate-second", argv, suite.workdir(), env=h.sanitizer_env())
    try:
        # either it exits (correct) or it logs that it is listening (it bound the busy port)
        deadline = time.monotonic() + h.timeout(5)
        while second.alive() and "listening on" not in second.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        if second.alive():
            h.fail("a second crmgate started on 127.0.0.1:%d, which the first one serves, and kept running:\n%s"
                   % (first.port, h.tail(second.stderr(), 5)))
        check(second.popen.returncode not in (0, None), "the second crmgate exited 0")
        check("127.0.0.1:%d" % first.port in second.stderr() and "in use" in second.stderr(),
              "unclear message: %r" % second.stderr())
    finally:
        second.stop(expect_status=None)
    problems = h.log_problems(second.stderr(), allow_errors=True)
    check(not problems, "second crmgate: %s" % problems)


@suite.test
def sigterm_finishes_the_request_in_flight_and_exits_0():
    sim = suite.start_sim()
    gw = suite.start_gateway(sim.port)
    delay_ms = int(1500 * h.SLOW)
    result = {}

    def slow_request():
        result["r"] = post(gw, EXAMPLE, headers=[JSON_CT, "X-Sim-Delay-Ms: %d" % delay_ms], seconds=30)

    t = threading.Thread(target=slow_request)
    t.start()
    # the simulator records a request when it arrives, before the delay
    deadline = time.monotonic() + h.timeout(10)
    while sim.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    eq(sim.count(), 1, "the slow request reached the simulator")
    t0 = time.monotonic()
    os.kill(gw.proc.pid, signal.SIGTERM)
    # new connections are refused soon after SIGTERM, while the request is still in flight
    refused = False
    while time.monotonic() - t0 < delay_ms / 1000.0 * 0.8 and not refused:
        try:
            socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
            time.sleep(0.02)
        except OSError:
            refused = True
    t.join(h.timeout(30))
    check(not t.is_alive(), "the slow request never finished")
    r = result["r"]
    eq((r.rc, r.status), (0, 201), "the request in flight at SIGTERM: curl exit code and status")
    eq(r.json().get("ChannelTypeCd"), "ORA_SVC_WEB", "the answer of the request in flight")
    suite.stop(gw)  # exit status 0, clean log
    check(refused, "the gateway still accepted connections while draining after SIGTERM")
    # SIGINT is a clean stop too
    gw2 = suite.start_gateway(sim.port)
    os.kill(gw2.proc.pid, signal.SIGINT)
    eq(gw2.proc.popen.wait(timeout=h.timeout(15)), 0, "exit status after SIGINT")
    suite.stop(gw2)


def offline(payload_path, *args):
    return h.run_cli(["validate", "--rules", RULES_DIR] + list(args) + [payload_path])


def split_offline(cp):
    """'HTTP 400 Bad Request\\nContent-Type: T\\n\\n' + body -> (status, content type, body bytes)."""
    head, sep, body = cp.stdout.partition(b"\n\n")
    check(sep, "validate printed no blank line after its head: %r" % cp.stdout[:200])
    lines = head.decode().splitlines()
    m = re.fullmatch(r"HTTP (\d{3}) .+", lines[0])
    check(m and lines[1].startswith("Content-Type: "), "validate's head: %r" % head)
    return int(m.group(1)), lines[1][len("Content-Type: "):], body


@suite.test
def offline_validate_matches_the_live_gateway():
    valid = write("valid.json", EXAMPLE.decode())
    cp = offline(valid)
    eq(cp.returncode, 0, "validate of Oracle's example (stderr %r)" % cp.stderr_text)
    eq(cp.stdout, b"", "validate prints nothing on stdout for a valid payload")
    cp = h.run_cli(["validate", "--rules", RULES_DIR, "-"], stdin=EXAMPLE)
    eq(cp.returncode, 0, "validate - (standard input)")

    invalid_doc = {"ChannelTypeCd": "ORA_SVC_WEB_TOO_LONG_FOR_THIRTY_CHARS", "CreatedBy": "x",
                   "Description": "\u00e9\"\\<" * 300, "ChannelId": "1",
                   "interactionReferences": [{"ObjectTypeCd": "MOO_OPTYX", "ObjectId": "2", "Zz": 1}]}
    invalid = json.dumps(invalid_doc, ensure_ascii=False).encode()
    invalid_path = write("invalid.json", invalid.decode())
    not_json_path = write("not-json.json", '{"ChannelTypeCd": "ORA_SVC_WEB",, }')
    with suite.stack() as (sim, gw):
        for path, body in ((invalid_path, invalid), (not_json_path, open(not_json_path, "rb").read())):
            for version in ("4", None, "2"):
                what = "%s, version %s" % (os.path.basename(path), version)
                cp = offline(path, *(["--framework-version", version] if version else []))
                eq(cp.returncode, 1, what + ": validate exit status (stderr %r)" % cp.stderr_text)
                status, ctype, doc = split_offline(cp)
                headers = [JSON_CT] + (["REST-Framework-Version: " + version] if version else [])
                r = post(gw, body, headers=headers)
                eq(status, r.status, what + ": status offline vs live")
                eq(ctype, r.header("content-type"), what + ": Content-Type offline vs live")
                check(doc == r.body, "%s: the offline document differs from the live one:\n offline %r\n live    %r"
                      % (what, doc[:400], r.body[:400]))
                if version == "4":
                    h.oracle_violations(r)  # the shape is Oracle's
        eq(sim.count(), 0, "requests forwarded")
    # a path no rule matches is a usage error, not a pass
    cp = h.run_cli(["validate", "--rules", RULES_DIR, "--path", "/crmRestApi/resources/11.13.18.05/nothing", valid])
    eq(cp.returncode, 2, "validate with a path no rule matches")
    cp = h.run_cli(["validate", "--rules", RULES_DIR, os.path.join(suite.workdir(), "missing.json")])
    eq(cp.returncode, 2, "validate of a missing file")


suite.main()
