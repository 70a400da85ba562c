"""
End to end: the rule workflow of the command line.

`crmgate rules import-describe` turns the sample describe document into a rule
file that compiles with `crmgate -t`, is the same bytes every time, and is
written whole or not at all; bad input is refused with exit 1 and the reason,
leaving nothing behind. `crmgate rules show` prints the digest that the gateway
logs and serves on /-/readyz. `crmgate validate` exits 0, 1 and 2 as documented,
with imported rules too.
"""
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import RULES_DIR, SOURCE_DIR, check, eq  # noqa: E402

suite = h.Suite("rules_cli")
DESCRIBE = os.path.join(SOURCE_DIR, "tests", "describe", "interactions-describe.json")
LOOKUPS = os.path.join(SOURCE_DIR, "tests", "describe", "interactions-lookups.json")
DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
PATH = "/crmRestApi/resources/11.13.18.05/interactions"


def write(name, data):
    path = os.path.join(suite.workdir(), name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def files_in(directory):
    return sorted(os.listdir(directory))


@suite.test
def import_writes_rules_that_compile_and_judge_payloads():
    out = os.path.join(suite.workdir(), "imported.json")
    cp = h.run_cli(["rules", "import-describe", DESCRIBE, "--lookups", LOOKUPS, "-o", out])
    eq(cp.returncode, 0, "import exit status (stderr: %s)" % cp.stderr_text)
    check("crmgate rules show --rules" in cp.stderr_text, "the import says how to review: %r" % cp.stderr_text)
    rules = json.load(open(out))
    eq(rules["crmgate-rules"], 1, "format version")
    check(rules["schemas"]["interactions"]["unknown-fields"] == "reject", "imported schemas reject unknown fields")
    check("CustomerSentiment_c" in rules["schemas"]["interactions"]["fields"], "the tenant's custom field is imported")
    # compiles with -t, and judges payloads
    cp = h.run_cli(["-t", "--rules", out])
    eq(cp.returncode, 0, "-t on the imported rules (stderr: %s)" % cp.stderr_text)
    good = write("good.json", '{"ChannelTypeCd":"ORA_SVC_WEB","CustomerSentiment_c":"calm"}')
    bad = write("bad.json", '{"ChannelTypeCd":"ORA_SVC_WEB","Nope":1,"interactionReferences":[{"ObjectTypeCd":"MOO_OPTYX"}]}')
    eq(h.run_cli(["validate", "--rules", out, good]).returncode, 0, "validate a valid payload")
    cp = h.run_cli(["validate", "--rules", out, "--framework-version", "4", bad])
    eq(cp.returncode, 1, "validate an invalid payload")
    body = json.loads(cp.stdout_text.split("\n\n", 1)[1])
    paths = sorted(d["o:errorPath"] for d in body["o:errorDetails"])
    eq(paths, ["/Nope", "/interactionReferences/0/ObjectTypeCd"], "violations found with the imported rules")


@suite.test
def import_is_stable():
    first = h.run_cli(["rules", "import-describe", DESCRIBE, "--lookups", LOOKUPS])
    second = h.run_cli(["rules", "import-describe", DESCRIBE, "--lookups", LOOKUPS])
    eq(first.returncode, 0, "import to stdout")
    check(first.stdout == second.stdout, "two imports of the same input give the same bytes")
    check(first.stdout.count(b"\n") > 500, "the output is indented, one key per line (diffable)")


@suite.test
def bad_describe_inputs_are_refused_and_nothing_is_left_behind():
    cases = [
        ("not-json.json", "this is not json", r"not-json\.json:1:\d+: not valid JSON"),
        ("no-resources.json", '{"items": []}', r"no-resources\.json: /: no \"Resources\" object"),
        ("no-name.json", '{"Resources": {"interactions": {"attributes": [{"type": "string"}]}}}',
         r"/Resources/interactions/attributes/0: an attribute without a name"),
        ("bad-type.json", '{"Resources": {"interactions": {"attributes": [{"name": "A", "type": "blob"}]}}}',
         r"/Resources/interactions/attributes/0/type: attribute \"A\" has an unknown type \"blob\""),
        ("bad-length.json",
         '{"Resources": {"interactions": {"attributes": [{"name": "A", "type": "string", "maxLength": "x30"}]}}}',
         r"/Resources/interactions/attributes/0/maxLength: attribute \"A\": maxLength must be a number"),
    ]
    outdir = os.path.join(suite.workdir(), "out")
    os.mkdir(outdir)
    target = os.path.join(outdir, "rules.json")
    for name, text, pattern in cases:
        cp = h.run_cli(["rules", "import-describe", write(name, text), "-o", target])
        eq(cp.returncode, 1, "%s: exit status" % name)
        check(re.search(pattern, cp.stderr_text), "%s: error %r does not match %r" % (name, cp.stderr_text, pattern))
        eq(files_in(outdir), [], "%s: nothing written" % name)
    # an existing good file is not replaced by a failed import
    eq(h.run_cli(["rules", "import-describe", DESCRIBE, "-o", target]).returncode, 0, "a good import")
    before = open(target, "rb").read()
    eq(h.run_cli(["rules", "import-describe", write("broken.json", "{"), "-o", target]).returncode, 1, "a bad import")
    check(open(target, "rb").read() == before, "the previous rule file is untouched")
    eq(files_in(outdir), ["rules.json"], "no temporary file left")
    # unwritable destination: exit 1, clear message
    cp = h.run_cli(["rules", "import-describe", DESCRIBE, "-o", os.path.join(outdir, "missing", "r.json")])
    eq(cp.returncode, 1, "unwritable output: exit status")
    check("cannot write" in cp.stderr_text, "unwritable output: says why: %r" % cp.stderr_text)
    # usage errors
    eq(h.run_cli(["rules", "import-describe"]).returncode, 2, "no input: usage error")
    eq(h.run_cli(["rules", "frobnicate"]).returncode, 2, "unknown subcommand: usage error")
    eq(h.run_cli(["rules", "import-describe", DESCRIBE, "--lookups", write("l.json", '{"lookups": {}, "attributes": {"X": "Y"}}')]).returncode,
       1, "a lookups file naming an unknown lookup")


@suite.test
def show_prints_the_digest_the_gateway_serves():
    cp = h.run_cli(["rules", "show", "--rules", RULES_DIR])
    eq(cp.returncode, 0, "rules show exit status")
    digest = DIGEST.search(cp.stdout_text).group(0)
    check("POST  /crmRestApi/resources/{version}/interactions -> interaction (create)" in cp.stdout_text,
          "routes are listed with their schema and operation")
    check(re.search(r"ObjectTypeCd\s+string  maxLength 30  lookup ORA_SVC_IM_REF_OBJECT_TYPE_CD", cp.stdout_text),
          "fields are listed with their constraints")
    check(re.search(r"schema interactionReference \(unknown fields: reject\)", cp.stdout_text), "schemas show their policy")
    with suite.stack() as (sim, gw):
        # the digest line follows the listening lines the harness waited for: wait for it too
        eq(gw.proc.wait_for(r"rules ([0-9a-f]{64})", 10).group(1), digest, "digest in the start-up log")
        r = h.curl(gw.admin_url("/-/readyz"))
        eq(r.status, 200, "readyz")
        check(digest in r.text, "readyz names the digest: %r" % r.text)
        r = h.curl(gw.admin_url("/-/rules"))
        eq(r.status, 200, "/-/rules")
        check(r.text == cp.stdout_text, "/-/rules serves the same listing as rules show")
    # the digest follows the compiled rules, not the file's bytes
    rules = json.load(open(os.path.join(RULES_DIR, "interactions.json")))
    reformatted = write("reformatted.json", json.dumps(rules, indent=7, sort_keys=True))
    eq(DIGEST.search(h.run_cli(["rules", "show", "--rules", reformatted]).stdout_text).group(0), digest,
       "reformatting does not change the digest")
    rules["schemas"]["interaction"]["fields"]["Description"]["maxLength"] = 999
    changed = write("changed.json", json.dumps(rules))
    check(DIGEST.search(h.run_cli(["rules", "show", "--rules", changed]).stdout_text).group(0) != digest,
          "a changed constraint changes the digest")


@suite.test
def several_rule_files_and_duplicate_routes():
    rules_dir = os.path.join(suite.workdir(), "rules")
    os.mkdir(rules_dir)
    shipped = open(os.path.join(RULES_DIR, "interactions.json")).read()
    write("rules/a-interactions.json", shipped)
    extra = {"crmgate-rules": 1, "schemas": {"note": {"fields": {"Text": {"type": "string", "maxLength": 5}}}},
             "routes": [{"method": "POST", "path": "/crmRestApi/resources/{v}/notes", "schema": "note"}]}
    write("rules/b-notes.json", json.dumps(extra))
    cp = h.run_cli(["-t", "--rules", rules_dir])
    eq(cp.returncode, 0, "two files compile into one rule set (stderr: %s)" % cp.stderr_text)
    check("from 2 file(s)" in cp.stdout_text, "-t counts both files: %r" % cp.stdout_text)
    note = write("note.json", '{"Text": "too long"}')
    eq(h.run_cli(["validate", "--rules", rules_dir, "--path", "/crmRestApi/resources/latest/notes", note]).returncode, 1,
       "the second file's route is enforced")
    # a config listing files and directories
    conf = write("list.yaml", "rules:\n  - %s\n  - %s\n" % (os.path.join(rules_dir, "a-interactions.json"),
                                                          os.path.join(rules_dir, "b-notes.json")))
    eq(h.run_cli(["-t", "-c", conf]).returncode, 0, "rules: may list files")
    # the same route in two files: an error naming both
    write("rules/c-dup.json", shipped)
    cp = h.run_cli(["-t", "--rules", rules_dir])
    eq(cp.returncode, 1, "a duplicate route is refused")
    check("c-dup.json" in cp.stderr_text and "a-interactions.json" in cp.stderr_text,
          "the error names both files: %r" % cp.stderr_text)


@suite.test
def validate_exit_codes():
    good = write("good.json", '{"ChannelTypeCd":"ORA_SVC_WEB"}')
    bad = write("bad.json", '{"CreatedBy":"me"}')
    eq(h.run_cli(["validate", good]).returncode, 0, "valid: 0")
    cp = h.run_cli(["validate", bad])
    eq(cp.returncode, 1, "invalid: 1")
    check(cp.stdout_text.startswith("HTTP 400 Bad Request\nContent-Type: text/plain"), "prints the error: %r" % cp.stdout_text)
    eq(h.run_cli(["validate", "-"], stdin=b'{"ChannelTypeCd":"ORA_SVC_WEB"}').returncode, 0, "stdin: 0")
    eq(h.run_cli(["validate", "--path", "/not/a/route", good]).returncode, 2, "no route: 2")
    eq(h.run_cli(["validate", "--rules", write("broken.json", "{"), good]).returncode, 2, "broken rules: 2")
    eq(h.run_cli(["validate"]).returncode, 2, "no payload: 2")
    eq(h.run_cli(["validate", os.path.join(suite.workdir(), "missing.json")]).returncode, 2, "missing file: 2")
    patch = write("patch.json", '{"InteractionNumber":"X"}')
    cp = h.run_cli(["validate", "--method", "PATCH",
                    "--path", PATH + "/1/child/interactionReferences/2", patch])
    eq(cp.returncode, 1, "create-only on PATCH")
    check("CRMGATE-CREATE-ONLY" in cp.stdout_text, cp.stdout_text)


if __name__ == "__main__":
    suite.main()
