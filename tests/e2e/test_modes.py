"""
End to end: staging policy. The same violating payload under `mode: enforce`, `report` and `off`; a mode per
rule kind (`modes:`), per field pointer (`field-modes:`), and per file, schema and field in a rule file, with the
most specific one winning (field pointer in config > field in rule file > kind in config > schema > file >
config); structural failures that are refused whatever the mode; `crmgate rules show -c` listing the effective
modes; and the X-CRMGate-Report header of forwarded requests with report-mode violations (at most 1 KiB).
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policy_helpers as ph  # noqa: E402
from harness import API, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("modes")

# A payload with two violations, typed the way a person would (spaces, a tab, a newline): a Description over its
# maxLength of 1000 and the read-only CreatedBy.
LONG = "d" * 1001
BAD = ('{ "ChannelTypeCd" : "ORA_SVC_WEB",\n "Description": "%s",\t"CreatedBy" : "someone" }' % LONG).encode()
BOTH = [("CRMGATE-MAX-LENGTH", "/Description"), ("CRMGATE-READ-ONLY", "/CreatedBy")]
REFERENCES = API + "/interactions/300100000000001/child/interactionReferences"


def config(workdir, text="", name="audit.log"):
    """YAML with the audit trail in the test's directory; returns (yaml, audit path)."""
    path = os.path.join(workdir, name)
    return ph.audit_yaml(path) + text, path


def send(gw, body, rid, path=INTERACTIONS, http2=False, headers=(JSON_CT,)):
    return post(gw, body, path=path, headers=list(headers) + ["X-Request-ID: " + rid], http2=http2)


def codes(resp):
    """[(code, pointer)] of a text/plain rejection."""
    return sorted((c, p) for c, p, _ in h.text_violations(resp))


def report_entries(resp):
    value = resp.header("x-crmgate-report")
    check(value is not None, "no X-CRMGate-Report header\n%s" % resp.describe())
    return sorted(tuple(e.split(" ", 1)) for e in value.split(", "))


def audit(path, rid):
    """The one audit record of request `rid` (waiting for it: records are written when a request ends)."""
    found = ph.wait_until(lambda: [r for r in ph.read_audit(path, True) if r["request_id"] == rid], 10,
                          "the audit record of request %s in %s" % (rid, path))
    check(len(found) == 1, "expected one audit record for %s, found %d" % (rid, len(found)))
    ph.check_record_shape(found[0], "record of " + rid)
    return found[0]


def expect_forwarded(sim, gw, body, rid, mark, http2=False, path=INTERACTIONS):
    r = send(gw, body, rid, path=path, http2=http2)
    eq(r.status, 201, "%s: status\n%s" % (rid, r.describe()))
    rec = sim.expect_one_since(mark, rid)
    check(rec.body == body, "%s: the simulator received other bytes than curl sent:\n sent %r\n got  %r"
          % (rid, body[:200], rec.body[:200]))
    eq(rec.header_all("x-request-id"), [rid], rid + ": X-Request-ID upstream")
    return r


# ---- the whole configuration: enforce, report, off ------------------------------------------------


@suite.test
def mode_enforce_rejects_and_forwards_nothing():
    yaml, path = config(suite.workdir(), "mode: enforce\nreport-header: on\n")
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            rid = "enforce-h%d" % (2 if http2 else 1)
            mark = sim.mark()
            r = send(gw, BAD, rid, http2=http2)
            h.assert_error_response(r, 400, rid)
            eq(codes(r), sorted(BOTH), rid + ": violations in the rejection")
            eq(r.header("x-crmgate-report"), None, rid + ": X-CRMGate-Report on a rejection")
            sim.expect_nothing_since(mark, rid)
            rec = audit(path, rid)
            eq((rec["decision"], rec["mode"], rec["status"], rec["upstream_status"]), ("rejected", "enforce", 400, None),
               rid + ": decision, mode, status, upstream_status in the audit record")
            eq(ph.violation_set(rec), sorted((c, p, "enforce") for c, p in BOTH), rid + ": audited violations")


@suite.test
def mode_report_forwards_byte_exact_and_audits_the_violations():
    yaml, path = config(suite.workdir(), "mode: report\n")
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            rid = "report-h%d" % (2 if http2 else 1)
            r = expect_forwarded(sim, gw, BAD, rid, sim.mark(), http2=http2)
            eq(r.header("x-crmgate-report"), None, rid + ": X-CRMGate-Report without report-header: on")
            rec = audit(path, rid)
            eq((rec["decision"], rec["mode"], rec["status"], rec["upstream_status"]), ("reported", "report", 201, 201),
               rid + ": decision, mode, status, upstream_status in the audit record")
            eq(ph.violation_set(rec), sorted((c, p, "report") for c, p in BOTH), rid + ": audited violations")
            eq(rec["body_sha256"], ph.sha256_hex(BAD), rid + ": body_sha256")


@suite.test
def report_header_names_every_reported_violation():
    yaml, path = config(suite.workdir(), "mode: report\nreport-header: on\n")
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            rid = "report-header-h%d" % (2 if http2 else 1)
            r = expect_forwarded(sim, gw, BAD, rid, sim.mark(), http2=http2)
            eq(r.header_all("x-crmgate-report"), ["CRMGATE-MAX-LENGTH /Description, CRMGATE-READ-ONLY /CreatedBy"],
               rid + ": X-CRMGate-Report")
            eq(r.json().get("InteractionId") is not None, True, rid + ": the CRM's answer is relayed")
            # a valid request carries no report header
            r = expect_forwarded(sim, gw, h.EXAMPLE, rid + "-valid", sim.mark(), http2=http2)
            eq(r.header("x-crmgate-report"), None, rid + ": X-CRMGate-Report on a request without violations")
            eq(audit(path, rid + "-valid")["decision"], "forwarded", rid + ": decision of a valid request")


@suite.test
def report_header_rides_on_upstream_errors_and_faults_too():
    yaml, path = config(suite.workdir(), "mode: report\nreport-header: on\n")
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            for i, (extra, status) in enumerate(((["X-Sim-Status: 500", "X-Sim-Body: html"], 500),
                                                 (["X-Sim-Status: 409", "X-Sim-Body: oracle-json"], 409),
                                                 (["X-Sim-Fault: reset"], 502))):
                rid = "rh-err-%d-%d" % (http2, i)
                r = post(gw, b'{"CreatedBy":"x"}', http2=http2, headers=[JSON_CT, "X-Request-ID: " + rid] + extra)
                eq(r.status, status, rid + ": status")
                eq(r.header_all("x-crmgate-report"), ["CRMGATE-READ-ONLY /CreatedBy"], rid + ": X-CRMGate-Report")
                rec = audit(path, rid)
                eq((rec["decision"], rec["status"]), ("reported", status), rid + ": audit record")


@suite.test
def mode_off_forwards_and_audits_no_violations():
    yaml, path = config(suite.workdir(), "mode: off\nreport-header: on\n")
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            rid = "off-h%d" % (2 if http2 else 1)
            r = expect_forwarded(sim, gw, BAD, rid, sim.mark(), http2=http2)
            eq(r.header("x-crmgate-report"), None, rid + ": X-CRMGate-Report in mode off")
            rec = audit(path, rid)
            eq(rec["violations"], [], rid + ": violations in the audit record")
            eq((rec["decision"], rec["mode"], rec["status"]), ("forwarded", "off", 201), rid + ": decision, mode, status")
            eq(rec["route"], ph.POST_ROUTE, rid + ": route")


@suite.test
def structural_failures_are_rejected_even_in_mode_off():
    cases = [
        ("invalid JSON", b'{"Description": "x",}', [JSON_CT], 400, "CRMGATE-INVALID-JSON"),
        ("trailing data", b'{"Description": "x"} {}', [JSON_CT], 400, "CRMGATE-INVALID-JSON"),
        ("duplicate key", b'{"Description": "x", "Description": "y"}', [JSON_CT], 400, "CRMGATE-DUPLICATE-KEY"),
        ("not an object", b'["ChannelTypeCd"]', [JSON_CT], 400, "CRMGATE-NOT-AN-OBJECT"),
        ("empty body", b"", [JSON_CT], 400, "CRMGATE-EMPTY-BODY"),
        ("invalid UTF-8", b'{"Description": "\xff\xfe"}', [JSON_CT], 400, "CRMGATE-INVALID-UTF8"),
        ("too deep", b'{"Custom_c":' + b'[' * 40 + b']' * 40 + b'}', [JSON_CT], 400, "CRMGATE-TOO-DEEP"),
        ("body over limits.max-body", ('{"Description": "%s"}' % ("b" * 2000)).encode(), [JSON_CT], 413,
         "CRMGATE-BODY-TOO-LARGE"),
        ("wrong Content-Type", h.EXAMPLE, ["Content-Type: text/plain"], 415, "CRMGATE-MEDIA-TYPE"),
        ("no Content-Type", h.EXAMPLE, ["Content-Type:"], 415, "CRMGATE-MEDIA-TYPE"),
    ]
    for mode in ("off", "report"):
        yaml, path = config(suite.workdir(), "mode: %s\nlimits: {max-body: 1KiB}\nreport-header: on\n" % mode,
                            "audit-%s.log" % mode)
        with suite.stack(config=yaml) as (sim, gw):
            for http2 in (False, True):
                for i, (what, body, headers, status, code) in enumerate(cases):
                    rid = "structural-%s-h%d-%d" % (mode, 2 if http2 else 1, i)
                    mark = sim.mark()
                    r = send(gw, body, rid, http2=http2, headers=headers)
                    h.assert_error_response(r, status, "mode %s, %s, %s" % (mode, what, rid))
                    got = [c for c, _ in codes(r)]
                    check(code in got, "mode %s, %s: expected %s in the rejection, got %r" % (mode, what, code, got))
                    sim.expect_nothing_since(mark, "mode %s, %s" % (mode, what))
                    rec = audit(path, rid)
                    eq((rec["decision"], rec["mode"], rec["status"]), ("rejected", "enforce", status),
                       "mode %s, %s: the audit record" % (mode, what))
                    # (interaction reports unknown fields: the too-deep one is also listed, in mode report)
                    check((code, "enforce") in [(v["code"], v["mode"]) for v in rec["violations"]],
                          "mode %s, %s: audited violations %r" % (mode, what, rec["violations"]))


# ---- per rule kind and per pointer ------------------------------------------------------------------


@suite.test
def kind_mode_reports_max_length_while_read_only_still_rejects():
    yaml, path = config(suite.workdir(), "modes: {maxLength: report}\nreport-header: on\n")
    with suite.stack(config=yaml) as (sim, gw):
        mark = sim.mark()
        r = send(gw, BAD, "kind-both")
        h.assert_error_response(r, 400, "both violations")
        eq(codes(r), [("CRMGATE-READ-ONLY", "/CreatedBy")], "the rejection lists only the enforced violation")
        sim.expect_nothing_since(mark, "read-only under modes {maxLength: report}")
        rec = audit(path, "kind-both")
        eq(ph.violation_set(rec), [("CRMGATE-MAX-LENGTH", "/Description", "report"),
                                   ("CRMGATE-READ-ONLY", "/CreatedBy", "enforce")], "audited violations")
        eq(rec["decision"], "rejected", "decision")
        body = ('{"ChannelTypeCd":"ORA_SVC_WEB","Description":"%s"}' % LONG).encode()
        r = expect_forwarded(sim, gw, body, "kind-length-only", sim.mark())
        eq(r.header("x-crmgate-report"), "CRMGATE-MAX-LENGTH /Description", "X-CRMGate-Report")
        rec = audit(path, "kind-length-only")
        eq((rec["decision"], rec["mode"]), ("reported", "report"), "decision and mode of the reported request")
        eq(ph.violation_set(rec), [("CRMGATE-MAX-LENGTH", "/Description", "report")], "audited violations")


@suite.test
def kind_mode_enforce_inside_report_mode():
    # the kind is more specific than the whole configuration, in both directions
    yaml, path = config(suite.workdir(), "mode: report\nmodes: {readOnly: enforce, lookup: off}\n")
    with suite.stack(config=yaml) as (sim, gw):
        mark = sim.mark()
        r = send(gw, BAD, "kind-ro")
        h.assert_error_response(r, 400, "read-only enforced")
        eq(codes(r), [("CRMGATE-READ-ONLY", "/CreatedBy")], "violations in the rejection")
        sim.expect_nothing_since(mark, "read-only enforced in report mode")
        body = (b'{"ChannelTypeCd":"ORA_SVC_WEB","DirectionCd":"' + b"x" * 31 +
                b'","interactionReferences":[{"ObjectTypeCd":"NOT_A_CODE"}]}')
        expect_forwarded(sim, gw, body, "kind-lookup-off", sim.mark())
        eq(ph.violation_set(audit(path, "kind-lookup-off")), [("CRMGATE-MAX-LENGTH", "/DirectionCd", "report")],
           "lookup off, maxLength reported")


@suite.test
def field_pointer_mode_turns_off_one_field_only():
    yaml, path = config(suite.workdir(), 'field-modes: {"/interactionReferences/*/ObjectTypeCd": off}\nreport-header: on\n')
    with suite.stack(config=yaml) as (sim, gw):
        refs = b'"interactionReferences":[{"ObjectTypeCd":"MOO_OPTY"},{"ObjectTypeCd":"NOT_A_CODE"},' \
               b'{"ObjectTypeCd":"' + b"Z" * 40 + b'"}]'
        body = b'{"ChannelTypeCd":"ORA_SVC_WEB",' + refs + b'}'
        r = expect_forwarded(sim, gw, body, "pointer-off", sim.mark())
        eq(r.header("x-crmgate-report"), None, "X-CRMGate-Report for fields that are off")
        rec = audit(path, "pointer-off")
        eq((rec["decision"], rec["violations"]), ("forwarded", []), "a bad code (and length) at an 'off' pointer")
        # another violation still counts, and the one that is off is not listed
        for rid, extra, expected in (
                ("pointer-readonly", b'"CreatedBy":"x",', [("CRMGATE-READ-ONLY", "/CreatedBy")]),
                ("pointer-type", b'"interactionReferences":[{"ObjectTypeCd":"NOT_A_CODE","ObjectId":"12"}],',
                 [("CRMGATE-TYPE", "/interactionReferences/0/ObjectId")])):
            payload = b'{' + extra + (b'"ChannelTypeCd":"ORA_SVC_WEB"}' if b"interactionReferences" in extra else
                                      refs + b',"ChannelTypeCd":"ORA_SVC_WEB"}')
            mark = sim.mark()
            r = send(gw, payload, rid)
            h.assert_error_response(r, 400, rid)
            eq(codes(r), expected, rid + ": violations in the rejection")
            sim.expect_nothing_since(mark, rid)
            eq([(c, p) for c, p, _ in ph.violation_set(audit(path, rid))], expected, rid + ": audited violations")
        # the same code on the child route: pointer /ObjectTypeCd does not match the pattern, so it still counts
        mark = sim.mark()
        r = send(gw, b'{"ObjectTypeCd":"NOT_A_CODE"}', "pointer-child", path=REFERENCES)
        h.assert_error_response(r, 400, "child route")
        eq(codes(r), [("CRMGATE-LOOKUP", "/ObjectTypeCd")], "child route violations")
        sim.expect_nothing_since(mark, "child route")


@suite.test
def field_pointer_mode_beats_kind_mode():
    yaml, path = config(suite.workdir(), 'modes: {maxLength: off}\nfield-modes: {"/Description": enforce, '
                                         '"/DirectionCd": report}\nreport-header: on\n')
    with suite.stack(config=yaml) as (sim, gw):
        mark = sim.mark()
        r = send(gw, ('{"ChannelTypeCd":"ORA_SVC_WEB","Description":"%s"}' % LONG).encode(), "ptr-enforce")
        h.assert_error_response(r, 400, "Description enforced by pointer")
        eq(codes(r), [("CRMGATE-MAX-LENGTH", "/Description")], "violations")
        sim.expect_nothing_since(mark, "Description enforced by pointer")
        body = ('{"ChannelTypeCd":"%s","DirectionCd":"%s"}' % ("c" * 31, "x" * 31)).encode()
        r = expect_forwarded(sim, gw, body, "ptr-report", sim.mark())
        eq(r.header("x-crmgate-report"), "CRMGATE-MAX-LENGTH /DirectionCd", "only the pointer's violation is reported")
        eq(ph.violation_set(audit(path, "ptr-report")), [("CRMGATE-MAX-LENGTH", "/DirectionCd", "report")],
           "audited violations (ChannelTypeCd's maxLength is off)")


@suite.test
def field_pointer_enforce_beats_off_for_every_kind():
    # the pointer is the most specific setting: it turns a check back on that the configuration's mode, or its
    # kind mode, turned off -- maxLength and read-only, and the lookup and pattern checks as well
    rules = write_rules(suite.workdir())
    cases = [
        ("mode: off", INTERACTIONS, h.RULES_DIR, '{"interactionReferences":[{"ObjectTypeCd":"NOT_A_CODE"}]}',
         '"/interactionReferences/*/ObjectTypeCd": enforce', ("CRMGATE-LOOKUP", "/interactionReferences/0/ObjectTypeCd")),
        ("modes: {lookup: off}", INTERACTIONS, h.RULES_DIR, '{"interactionReferences":[{"ObjectTypeCd":"NOT_A_CODE"}]}',
         '"/interactionReferences/*/ObjectTypeCd": enforce', ("CRMGATE-LOOKUP", "/interactionReferences/0/ObjectTypeCd")),
        ("mode: off", INTERACTIONS, h.RULES_DIR, '{"Description":"%s"}' % LONG, '"/Description": enforce',
         ("CRMGATE-MAX-LENGTH", "/Description")),
        ("mode: off", INTERACTIONS, h.RULES_DIR, '{"CreatedBy":"x"}', '"/CreatedBy": enforce',
         ("CRMGATE-READ-ONLY", "/CreatedBy")),
        ("modes: {pattern: off}", INTERACTIONS, rules, '{"Code":"lower"}', '"/Code": enforce',
         ("CRMGATE-PATTERN", "/Code")),
        ("mode: off", INTERACTIONS, rules, '{"Code":"lower"}', '"/Code": enforce', ("CRMGATE-PATTERN", "/Code")),
    ]
    wrong = []
    for i, (setting, path_, rule_dir, body, pointer, expected) in enumerate(cases):
        yaml, _ = config(suite.workdir(), "%s\nfield-modes: {%s}\n" % (setting, pointer), "audit-%d.log" % i)
        with suite.stack(config=yaml, rules=rule_dir) as (sim, gw):
            got = verdict(sim, gw, body.encode(), "ptr-on-%d" % i, path=path_)
            if got != ("rejected", [expected]):
                wrong.append("%s, field-modes {%s}, %s: expected rejected with %s, got %r"
                             % (setting, pointer, body[:60], expected, got))
    check(not wrong, "the pointer's enforce did not win:\n" + "\n".join(wrong))


# ---- modes in a rule file -------------------------------------------------------------------------------


def write_rules(workdir, file_mode=None, schema_mode=None, name="modes-rules"):
    """A small rule file: interaction (schema mode `schema_mode`) and interactionReferences (no schema mode)."""
    interaction = {
        "unknown-fields": "reject",
        "fields": {
            "ChannelTypeCd": {"type": "string", "maxLength": 30},
            "Description": {"type": "string", "maxLength": 10, "mode": "report"},
            "Subject": {"type": "string", "maxLength": 10, "mode": "enforce"},
            "DirectionCd": {"type": "string", "maxLength": 10},
            "CreatedBy": {"type": "string", "readOnly": True},
            "Code": {"type": "string", "pattern": "[A-Z]+"},
        },
    }
    if schema_mode is not None:
        interaction["mode"] = schema_mode
    doc = {
        "crmgate-rules": 1,
        "description": "e2e test: modes at file, schema and field level",
        "params": {"version": "latest|[0-9]+(?:\\.[0-9]+)*"},
        "lookups": {"CODES": ["A", "B"]},
        "schemas": {
            "interaction": interaction,
            "reference": {"fields": {"ObjectTypeCd": {"type": "string", "lookup": "CODES"},
                                     "CreatedBy": {"type": "string", "readOnly": True}}},
        },
        "routes": [
            {"method": "POST", "path": "/crmRestApi/resources/{version}/interactions", "schema": "interaction",
             "operation": "create"},
            {"method": "POST", "path": "/crmRestApi/resources/{version}/interactions/{InteractionId}/child/"
                                       "interactionReferences", "schema": "reference", "operation": "create"},
        ],
    }
    if file_mode is not None:
        doc["mode"] = file_mode
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "modes.json"), "w") as f:
        json.dump(doc, f, indent=2)
    return d


def verdict(sim, gw, body, rid, path=INTERACTIONS):
    """'rejected' (400, nothing forwarded) or 'forwarded' (201, byte-exact), with the enforced codes."""
    mark = sim.mark()
    r = send(gw, body, rid, path=path)
    if r.status == 400:
        sim.expect_nothing_since(mark, rid)
        return "rejected", codes(r)
    eq(r.status, 201, "%s: status\n%s" % (rid, r.describe()))
    check(sim.expect_one_since(mark, rid).body == body, rid + ": forwarded bytes differ")
    return "forwarded", r.header("x-crmgate-report")


@suite.test
def rule_file_field_mode_beats_config_kind_mode():
    rules = write_rules(suite.workdir())
    long_ = "x" * 11
    for kind_mode, expect in (
            ("enforce", {"Description": ("forwarded", "CRMGATE-MAX-LENGTH /Description"),
                         "Subject": ("rejected", [("CRMGATE-MAX-LENGTH", "/Subject")]),
                         "DirectionCd": ("rejected", [("CRMGATE-MAX-LENGTH", "/DirectionCd")])}),
            ("report", {"Description": ("forwarded", "CRMGATE-MAX-LENGTH /Description"),
                        "Subject": ("rejected", [("CRMGATE-MAX-LENGTH", "/Subject")]),
                        "DirectionCd": ("forwarded", "CRMGATE-MAX-LENGTH /DirectionCd")}),
            ("off", {"Description": ("forwarded", "CRMGATE-MAX-LENGTH /Description"),
                     "Subject": ("rejected", [("CRMGATE-MAX-LENGTH", "/Subject")]),
                     "DirectionCd": ("forwarded", None)})):
        yaml, _ = config(suite.workdir(), "modes: {maxLength: %s}\nreport-header: on\n" % kind_mode,
                         "audit-%s.log" % kind_mode)
        with suite.stack(config=yaml, rules=rules) as (sim, gw):
            for field, want in expect.items():
                got = verdict(sim, gw, ('{"%s":"%s"}' % (field, long_)).encode(), "rf-%s-%s" % (kind_mode, field))
                eq(got, want, "modes {maxLength: %s}, rule-file field %s over its maxLength" % (kind_mode, field))


@suite.test
def config_pointer_beats_rule_file_field_mode():
    rules = write_rules(suite.workdir())
    yaml, path = config(suite.workdir(), 'field-modes: {"/Subject": off, "/Description": enforce}\n')
    with suite.stack(config=yaml, rules=rules) as (sim, gw):
        eq(verdict(sim, gw, b'{"Subject":"xxxxxxxxxxx"}', "ptr-subject"), ("forwarded", None),
           "Subject (field mode enforce) under field-modes off")
        eq(audit(path, "ptr-subject")["violations"], [], "audited violations of Subject")
        eq(verdict(sim, gw, b'{"Description":"xxxxxxxxxxx"}', "ptr-description"),
           ("rejected", [("CRMGATE-MAX-LENGTH", "/Description")]), "Description (field mode report) under field-modes enforce")


@suite.test
def file_schema_and_kind_modes_in_order():
    workdir = suite.workdir()
    # file report, schema enforce: the schema wins; the schema without a mode takes the file's
    rules = write_rules(workdir, file_mode="report", schema_mode="enforce", name="rules-a")
    yaml, path = config(workdir, "mode: enforce\nreport-header: on\n")
    with suite.stack(config=yaml, rules=rules) as (sim, gw):
        eq(verdict(sim, gw, b'{"CreatedBy":"x"}', "fs-schema"), ("rejected", [("CRMGATE-READ-ONLY", "/CreatedBy")]),
           "read-only in a schema with mode enforce, in a file with mode report")
        eq(verdict(sim, gw, b'{"ObjectTypeCd":"C","CreatedBy":"x"}', "fs-file", path=REFERENCES),
           ("forwarded", "CRMGATE-LOOKUP /ObjectTypeCd, CRMGATE-READ-ONLY /CreatedBy"),
           "a schema without a mode, in a file with mode report, under config mode enforce")
        eq(verdict(sim, gw, b'{"DirectionCd":"xxxxxxxxxxx"}', "fs-field-default"),
           ("rejected", [("CRMGATE-MAX-LENGTH", "/DirectionCd")]), "a field without a mode takes its schema's")
        rec = audit(path, "fs-file")
        eq(ph.violation_set(rec), [("CRMGATE-LOOKUP", "/ObjectTypeCd", "report"),
                                   ("CRMGATE-READ-ONLY", "/CreatedBy", "report")], "audited violations")
    # config kind beats schema; the config's mode is the default of a file without one
    rules = write_rules(workdir, schema_mode="enforce", name="rules-b")
    yaml, path = config(workdir, "mode: report\nmodes: {readOnly: report, lookup: enforce}\nreport-header: on\n",
                        "audit-b.log")
    with suite.stack(config=yaml, rules=rules) as (sim, gw):
        eq(verdict(sim, gw, b'{"CreatedBy":"x"}', "kb-schema"), ("forwarded", "CRMGATE-READ-ONLY /CreatedBy"),
           "modes {readOnly: report} over a schema with mode enforce")
        eq(verdict(sim, gw, b'{"ObjectTypeCd":"C"}', "kb-lookup", path=REFERENCES),
           ("rejected", [("CRMGATE-LOOKUP", "/ObjectTypeCd")]), "modes {lookup: enforce} in config mode report")
        eq(verdict(sim, gw, b'{"DirectionCd":"xxxxxxxxxxx"}', "kb-length"),
           ("rejected", [("CRMGATE-MAX-LENGTH", "/DirectionCd")]), "schema mode enforce beats the config's report")


# ---- rules show -----------------------------------------------------------------------------------


def field_line(listing, schema, field):
    in_schema = False
    for line in listing.splitlines():
        if line.startswith("  schema "):
            in_schema = line.startswith("  schema %s " % schema)
        elif in_schema and line.split()[:1] == [field]:
            return line
    h.fail("no line for field %s of schema %s in:\n%s" % (field, schema, listing))


@suite.test
def rules_show_lists_effective_modes():
    workdir = suite.workdir()
    plain = h.run_cli(["rules", "show", "--rules", h.RULES_DIR])
    eq(plain.returncode, 0, "rules show exit status")
    check(":report" not in plain.stdout_text and ":off" not in plain.stdout_text,
          "the shipped rules in the default mode list a non-enforce mode:\n%s" % plain.stdout_text[:2000])
    cfg = os.path.join(workdir, "kinds.yaml")
    with open(cfg, "w") as f:
        f.write("modes: {maxLength: report, lookup: off}\n")
    cp = h.run_cli(["rules", "show", "-c", cfg, "--rules", h.RULES_DIR])
    eq(cp.returncode, 0, "rules show -c exit status:\n" + cp.stderr_text)
    line = field_line(cp.stdout_text, "interaction", "Description")
    check("maxLength:report" in line.split() and "maxLength 1000" in line, "Description line: %r" % line)
    line = field_line(cp.stdout_text, "interaction", "CreatedBy")
    check("maxLength:report" in line and "readOnly:" not in line, "CreatedBy line: %r" % line)
    line = field_line(cp.stdout_text, "interactionReference", "ObjectTypeCd")
    check("lookup:off" in line and "maxLength:report" in line, "ObjectTypeCd line: %r" % line)
    # the digest covers the modes: the listing, -t and the running gateway agree
    digest = ph.digest_of(cfg)
    check(digest != ph.digest_of(None), "the digest does not change with the modes")
    check(cp.stdout_text.startswith("rule set %s\n" % digest), "rules show digest differs from -t's %s:\n%s"
          % (digest, cp.stdout_text[:200]))
    with open(cfg) as f:
        yaml = f.read()
    with suite.stack(config=yaml) as (sim, gw):
        status, body = ph.admin_get(gw, "/-/rules")
        eq(status, 200, "/-/rules status")
        eq(body.decode(), cp.stdout_text, "/-/rules listing (the gateway runs the same configuration)")
        eq(ph.readyz(gw), (200, "ready rules=%s\n" % digest), "/-/readyz")
    # a rule file's own modes
    rules = write_rules(workdir, file_mode="report")
    cp = h.run_cli(["rules", "show", "--rules", rules])
    check("(length unit characters, mode report)" in cp.stdout_text, "file line:\n%s" % cp.stdout_text)
    line = field_line(cp.stdout_text, "interaction", "Subject")
    check("maxLength:" not in line, "Subject (field mode enforce) line: %r" % line)
    line = field_line(cp.stdout_text, "interaction", "DirectionCd")
    check("maxLength:report" in line, "DirectionCd (the file's mode) line: %r" % line)
    check("(unknown fields: reject in report mode)" in cp.stdout_text, "schema line:\n%s" % cp.stdout_text)


# ---- the report header is bounded ---------------------------------------------------------------------


@suite.test
def report_header_is_bounded_to_1_kib():
    yaml, path = config(suite.workdir(), "report-header: on\n")
    # interaction reports unknown fields: 200 of them, the first with a key that needs escaping
    fields = ['"ChannelTypeCd":"ORA_SVC_WEB"', '"Bad\\"Key\\u00e9\\n":1']
    fields += ['"Custom%03d_c":%d' % (i, i) for i in range(199)]
    body = ("{" + ",".join(fields) + "}").encode()
    with suite.stack(config=yaml) as (sim, gw):
        for http2 in (False, True):
            rid = "bound-h%d" % (2 if http2 else 1)
            r = expect_forwarded(sim, gw, body, rid, sim.mark(), http2=http2)
            values = r.header_all("x-crmgate-report")
            eq(len(values), 1, rid + ": X-CRMGate-Report headers")
            value = values[0]
            h.note("%s: X-CRMGate-Report is %d bytes: %s...%s" % (rid, len(value), value[:80], value[-40:]))
            check(len(value.encode()) <= 1024, "%s: X-CRMGate-Report is %d bytes" % (rid, len(value.encode())))
            check(all(0x20 <= b < 0x7f for b in value.encode()), rid + ": the header holds non-printable bytes")
            entries = value.split(", ")
            more = entries.pop()
            check(more.startswith("+") and more.endswith(" more"), "%s: the header does not end with '+N more': %r"
                  % (rid, value[-60:]))
            eq(entries[0], 'CRMGATE-UNKNOWN-FIELD /Bad\\"Key\\xc3\\xa9\\x0a', rid + ": first entry (escaped)")
            for i, e in enumerate(entries[1:]):
                eq(e, "CRMGATE-UNKNOWN-FIELD /Custom%03d_c" % i, rid + ": entry %d" % (i + 1))
            eq(len(entries) + int(more[1:-5]), 200, rid + ": listed + more")
            rec = audit(path, rid)
            eq(rec["decision"], "reported", rid + ": decision")
            check(rec["violations"] and all(v["code"] == "CRMGATE-UNKNOWN-FIELD" and v["mode"] == "report"
                                            for v in rec["violations"]), rid + ": audited violations")


if __name__ == "__main__":
    suite.main()
