#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/*/ (files named seed-*).

Seeds come from the test data (tests/cases bodies and rule files, the shipped
rules, conf/crmgate.yaml, tests/describe) and from the hand-written inputs
below, many of them broken on purpose. Files named regress-* (minimised
reproducers of bugs) and anything else in the corpus are left alone.

    python3 tests/fuzz/make_seeds.py        # rewrite every seed-* file
"""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
MAX_LEN = 65536


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_seeds(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    seen = set()
    n = 0
    for label, data in seeds:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if len(data) > MAX_LEN or data in seen:
            continue
        seen.add(data)
        n += 1
        name = "seed-%03d-%s" % (n, label)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds, %d bytes" % (target, n, sum(len(s) for s in seen)))


def case_bodies():
    cases = os.path.join(ROOT, "tests", "cases")
    for name in sorted(os.listdir(cases)):
        path = os.path.join(cases, name, "request")
        if not os.path.isfile(path):
            continue
        raw = read(path)
        for sep in (b"\r\n\r\n", b"\n\n"):
            i = raw.find(sep)
            if i >= 0:
                yield name, raw[i + len(sep):]
                break


# ---- body -------------------------------------------------------------------

def body_seeds():
    seeds = []
    for name, body in case_bodies():
        if len(body) <= 4096:
            seeds.append(("case-" + name, body))
    seeds = seeds[:150]
    deep = "{\"a\":" * 40 + "1" + "}" * 40
    seeds += [
        ("empty", b""),
        ("array", "[]"),
        ("string", "\"s\""),
        ("number", "1"),
        ("truncated", "{\"Description\":\"abc"),
        ("bad-utf8", b"{\"Description\":\"\xff\xfe\"}"),
        ("bad-utf8-key", b"{\"\xc3\x28\":1}"),
        ("lone-surrogate", "{\"Description\":\"\\ud800\"}"),
        ("nul-escape", "{\"Description\":\"a\\u0000b\"}"),
        ("nul-key", "{\"a\\u0000\":1}"),
        ("duplicate", "{\"ChannelId\":1,\"ChannelId\":2}"),
        ("duplicate-escaped", "{\"a\\nb\":1,\"a\\nb\":2}"),
        ("overflow", "{\"ChannelId\":99999999999999999999}"),
        ("real-overflow", "{\"ChannelId\":1e400}"),
        ("deep", deep),
        ("deep-array", "{\"links\":" + "[" * 40 + "]" * 40 + "}"),
        ("unknown-newline-key", "{\"a\\nb\":1}"),
        ("unknown-slash-tilde", "{\"a/b~c\":1}"),
        ("ref-ok", "{\"ObjectId\":1,\"ObjectTypeCd\":\"MOO_OPTY\"}"),
        ("ref-bad-lookup", "{\"ObjectTypeCd\":\"MOO_OPTY \"}"),
        ("ref-create-only", "{\"InteractionNumber\":\"x\"}"),
        ("surrogate-pair", "{\"ChannelTypeCd\":\"" + "\\ud83d\\ude00" * 30 + "\"}"),
        ("emoji-31", "{\"ChannelTypeCd\":\"" + "\U0001F600" * 31 + "\"}"),
        ("datetime-leap", "{\"StartTime\":\"2024-02-29T23:59:60.123456789+14:00\"}"),
        ("nested-ok", "{\"interactionReferences\":[{\"ObjectId\":1,\"ObjectTypeCd\":\"MKL_LM_LEADS\"}],"
         "\"InteractionParticipants\":[{\"DurationMinutes\":-2147483648}]}"),
        ("int32-over", "{\"InteractionParticipants\":[{\"DurationMinutes\":2147483648}]}"),
        ("many-unknown", "{" + ",".join("\"u%d\":%d" % (i, i) for i in range(200)) + "}"),
        ("whitespace", " \t\r\n{ } \n"),
        ("trailing-garbage", "{} x"),
    ]
    # a few inputs of the maximum size, for the time check
    long_string = "{\"Description\":\"" + "\u00e9" * ((MAX_LEN - 40) // 2) + "\"}"
    many_items = "{\"interactionReferences\":[" + ",".join(["{\"ObjectId\":1}"] * 4000) + "]}"
    many_keys = "{" + ",".join("\"k%05d\":[[[1]]]" % i for i in range(3700)) + "}"
    seeds += [("max-long-string", long_string[:MAX_LEN]), ("max-many-items", many_items),
              ("max-many-keys", many_keys)]
    return seeds


# ---- rules ------------------------------------------------------------------

MINI_RULES = {
    "crmgate-rules": 1,
    "length-unit": "characters",
    "params": {"version": "[0-9.]+|latest"},
    "lookups": {"L": ["A", "B"]},
    "schemas": {
        "s": {"unknown-fields": "reject", "fields": {
            "a": {"type": "string", "maxLength": 3, "lookup": "L"},
            "b": {"type": "int32", "required": True},
            "c": {"type": "array", "items": "t"},
            "d": {"type": "string", "pattern": "[a-z]+", "mode": "report"},
            "e": {"type": "object", "schema": "t"},
        }},
        "t": {"unknown-fields": "allow", "fields": {"f": {"type": "datetime", "createOnly": True}}},
    },
    "routes": [
        {"method": "POST", "path": "/r/{version}/s", "schema": "s", "operation": "create"},
        {"method": "PATCH", "path": "/r/{version}/s/{id}", "schema": "s"},
    ],
}


def mutate(**changes):
    doc = json.loads(json.dumps(MINI_RULES))
    for path, value in changes.items():
        keys = path.split("__")
        obj = doc
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        if value is KeyError:
            del obj[keys[-1]]
        else:
            obj[keys[-1]] = value
    return json.dumps(doc, indent=1)


def rules_seeds():
    seeds = [("shipped-interactions", read(os.path.join(ROOT, "rules", "interactions.json")))]
    confrules = os.path.join(ROOT, "conf", "rules")
    for name in sorted(os.listdir(confrules)):
        if name.endswith(".json"):
            seeds.append(("conf-" + name[:-5], read(os.path.join(confrules, name))))
    cases = os.path.join(ROOT, "tests", "cases")
    for case in sorted(os.listdir(cases)):
        d = os.path.join(cases, case, "rules")
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith(".json"):
                    seeds.append(("case-" + case, read(os.path.join(d, name))))
    seeds = seeds[:60]
    seeds += [
        ("mini", json.dumps(MINI_RULES, indent=1)),
        ("mini-bytes", mutate(**{"length-unit": "bytes"})),
        ("mini-utf16-report", mutate(**{"length-unit": "utf16", "mode": "report"})),
        ("empty", ""),
        ("not-json", "crmgate-rules: 1"),
        ("array", "[]"),
        ("empty-object", "{}"),
        ("version-2", "{\"crmgate-rules\": 2}"),
        ("version-only", "{\"crmgate-rules\": 1}"),
        ("unknown-key", mutate(routs=[])),
        ("bad-unit", mutate(**{"length-unit": "runes"})),
        ("bad-mode", mutate(mode="enforced")),
        ("bad-type", mutate(schemas__s__fields__b__type="integer")),
        ("maxlength-on-int", mutate(schemas__s__fields__b__maxLength=3)),
        ("negative-maxlength", mutate(schemas__s__fields__a__maxLength=-1)),
        ("unknown-lookup", mutate(schemas__s__fields__a__lookup="M")),
        ("duplicate-code", mutate(lookups={"L": ["A", "A"]})),
        ("empty-lookup", mutate(lookups={"L": []})),
        ("bad-regex", mutate(schemas__s__fields__d__pattern="([a-z]")),
        ("catastrophic-regex", mutate(schemas__s__fields__d__pattern="(a+)+$")),
        ("bad-param-regex", mutate(params={"version": "(("})),
        ("param-breakout", mutate(params={"version": "))|.*(("})),
        ("unbalanced-brace", mutate(routes__0__path="/r/{version/s")),
        ("stray-close-brace", mutate(routes__0__path="/r/}/s")),
        ("bad-param-name", mutate(routes__0__path="/r/{1x}/s")),
        ("long-param-name", mutate(routes__0__path="/r/{" + "p" * 70 + "}/s")),
        ("duplicate-param", mutate(routes__0__path="/r/{id}/{id}")),
        ("duplicate-route", mutate(routes__1__path="/r/{v}/s", routes__1__method="POST")),
        ("bad-method", mutate(routes__0__method="post")),
        ("relative-path", mutate(routes__0__path="r/s")),
        ("unknown-schema", mutate(routes__0__schema="nope")),
        ("bad-operation", mutate(routes__0__operation="delete")),
        ("readonly-required", mutate(schemas__s__fields__b__readOnly=True)),
        ("items-on-string", mutate(schemas__s__fields__a__items="t")),
        ("schema-on-array", mutate(schemas__s__fields__c__schema="t")),
        ("missing-fields", mutate(schemas__t={"unknown-fields": "allow"})),
        ("bad-unknown-policy", mutate(**{"schemas__t__unknown-fields": "maybe"})),
        ("field-not-object", mutate(schemas__s__fields__a="string")),
        ("flag-not-bool", mutate(schemas__s__fields__b__required="yes")),
        ("typo-field-key", mutate(schemas__s__fields__a__maxlength=3)),
        ("self-reference", mutate(schemas__t__fields={"t": {"type": "array", "items": "t"}})),
        ("escaped-names", mutate(schemas__s__fields={"a/b~c\n\"": {"type": "string", "maxLength": 0}})),
    ]
    return seeds


# ---- config -----------------------------------------------------------------

def config_seeds():
    conf = read(os.path.join(ROOT, "conf", "crmgate.yaml")).decode()
    seeds = [("shipped", conf)]
    texts = [
        ("empty", ""),
        ("comment-only", "# nothing\n"),
        ("null-doc", "~\n"),
        ("scalar-doc", "hello\n"),
        ("list-doc", "- a\n- b\n"),
        ("bad-yaml", "listen: [127.0.0.1:8080\n"),
        ("tab-indent", "upstream:\n\turl: http://x\n"),
        ("typo", "lisen: 127.0.0.1:8080\n"),
        ("unknown-far", "zzzzzzzz: 1\n"),
        ("duplicate", "threads: 2\nthreads: 3\n"),
        ("listen-ipv6", "listen: \"[::1]:8080\"\nadmin: off\n"),
        ("listen-bad-port", "listen: 127.0.0.1:65536\n"),
        ("listen-no-host", "listen: :8080\n"),
        ("listen-long-host", "listen: " + "h" * 300 + ":1\n"),
        ("threads", "threads: 256\n"),
        ("threads-bad", "threads: -1\n"),
        ("upstream-short", "upstream: https://crm.example.com\n"),
        ("upstream-bad", "upstream:\n  url: ftp://x\n"),
        ("upstream-full", "upstream:\n  url: https://h/\n  keepalive-timeout: 0\n  timeout:\n    io: 2m\n"
                          "  verify-peer: off\n  ca-file: ca.pem\n"),
        ("io-zero", "upstream:\n  timeout:\n    io: 0s\n"),
        ("duration-overflow", "shutdown-timeout: 999999999999999999999m\n"),
        ("rules-list", "rules:\n  - rules\n  - /abs/x.json\n  - \"\"\n"),
        ("rules-empty-list", "rules: []\n"),
        ("rules-map", "rules: {a: b}\n"),
        ("limits", "limits:\n  max-body: 1GiB\n  max-depth: 1000\n  max-violations: 1\n  framework-version-max: 99\n"),
        ("limits-over", "limits:\n  max-body: 2g\n"),
        ("limits-size-overflow", "limits:\n  max-body: 18446744073709551615k\n"),
        ("limits-depth-unit", "limits:\n  max-depth: 10k\n"),
        ("errors", "errors:\n  format: problem+json\n"),
        ("errors-bad", "errors:\n  format: xml\n"),
        ("tls-half", "tls:\n  cert: c.pem\n"),
        ("tls", "tls:\n  cert: c.pem\n  key: /k.pem\n"),
        ("modes", "mode: report\nmodes:\n  maxLength: off\n  lookup: report\n  headers: enforce\n"),
        ("modes-structure", "modes:\n  structure: off\n"),
        ("field-modes", "field-modes:\n  \"/interactionReferences/*/ObjectTypeCd\": report\n  /Description: off\n"),
        ("field-modes-bad", "field-modes:\n  Description: off\n"),
        ("audit", "audit:\n  path: audit.log\n  fsync: always\n  fsync-interval: 10ms\n  on-failure: fail-open\n"
                  "  all-routes: on\n  queue: 4k\n"),
        ("audit-off", "audit:\n  path: off\n"),
        ("audit-queue-small", "audit:\n  queue: 1k\n"),
        ("anchors", "a: &x {b: 1}\n"),
        ("alias-key", "limits: &l\n  max-depth: 3\nerrors: *l\n"),
        ("complex-key", "? [a]\n: b\n"),
        ("flow", "{listen: \"127.0.0.1:1\", threads: auto, report-header: on}\n"),
        ("nul-escape", "rules: \"a\\0b\"\n"),
        ("multi-doc", "threads: 1\n---\nthreads: 2\n"),
        ("bom", "\ufeffthreads: 1\n"),
        ("bad-utf8", b"threads: \xff\n"),
        ("deep-flow", "listen: " + "[" * 200 + "]" * 200 + "\n"),
    ]
    return seeds + texts


# ---- describe -----------------------------------------------------------------

def strip_describe(v):
    if isinstance(v, dict):
        return {k: strip_describe(x) for k, x in v.items()
                if k not in ("properties", "title", "titlePlural", "controlType", "queryable", "annotations",
                             "actions", "links", "collection", "item")}
    if isinstance(v, list):
        return [strip_describe(x) for x in v]
    return v


def describe_seeds():
    full = json.loads(read(os.path.join(ROOT, "tests", "describe", "interactions-describe.json")))
    seeds = [("interactions-stripped", json.dumps(strip_describe(full), separators=(",", ":")))]

    def res(attrs, children=None, name="things"):
        r = {"attributes": attrs}
        if children is not None:
            r["children"] = children
        return json.dumps({"Resources": {name: r}})

    A = {"name": "A", "type": "string", "maxLength": "30"}
    seeds += [
        ("small", res([A, {"name": "N", "type": "integer", "precision": 9}, {"name": "B", "type": "boolean"}])),
        ("lookup-attr", res([{"name": "ObjectTypeCd", "type": "string", "maxLength": "30"}])),
        ("lookup-on-int", res([{"name": "ObjectTypeCd", "type": "integer"}])),
        ("children", res([A], {"kids": {"attributes": [A], "children": {"kids": {"attributes": [A]}}},
                              "links-only": {"links": []}})),
        ("child-name-clash", json.dumps({"Resources": {"a": {"attributes": [], "children": {"a": {"attributes": []}}},
                                                       "b": {"attributes": [], "children": {"a": {"attributes": []}}}}})),
        ("types", res([{"name": t, "type": t} for t in ("string", "integer", "number", "boolean", "date", "datetime",
                                                        "timestamp")])),
        ("flags", res([{"name": "R", "type": "string", "updatable": False},
                       {"name": "C", "type": "string", "allowChanges": "inCreate", "mandatory": True},
                       {"name": "M", "type": "string", "mandatory": True},
                       {"name": "D", "type": "string", "mandatory": True, "defaultValue": "x"},
                       {"name": "E", "type": "string", "mandatory": True, "hasDefaultValueExpression": True},
                       {"name": "N", "type": "string", "allowChanges": "never"}])),
        ("precision-length", res([{"name": "P", "type": "string", "precision": 12}])),
        ("length-number", res([{"name": "P", "type": "string", "maxLength": 12}])),
        ("length-bad", res([{"name": "P", "type": "string", "maxLength": "thirty"}])),
        ("length-negative", res([{"name": "P", "type": "string", "maxLength": -1}])),
        ("length-huge", res([{"name": "P", "type": "string", "maxLength": "9999999999"}])),
        ("unknown-type", res([{"name": "B", "type": "blob"}])),
        ("no-type", res([{"name": "B"}])),
        ("no-name", res([{"type": "string"}])),
        ("twice", res([A, A])),
        ("attr-not-object", res(["A"])),
        ("no-attributes", json.dumps({"Resources": {"x": {}}})),
        ("children-not-object", res([A], ["x"])),
        ("resource-not-object", json.dumps({"Resources": {"x": 1}})),
        ("empty-resources", "{\"Resources\": {}}"),
        ("empty-object", "{}"),
        ("not-json", "describe"),
        ("array", "[]"),
        ("odd-resource-name", res([A], name="a/b~c")),
        ("brace-resource-name", res([A], name="a{b}")),
        ("escaped-attr-name", res([{"name": "a\"\n/~", "type": "string"}])),
        ("links-attr", res([{"name": "links", "type": "string"}])),
    ]
    return seeds


# ---- render -------------------------------------------------------------------

def s(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return bytes([len(b)]) + b


def violation(code, flags, limit=0xffff, found=0xffff, strings=b""):
    return bytes([code, flags]) + struct.pack(">HH", limit, found) + strings


def render_seeds():
    seeds = []
    # one of each code, enforced, pointer "/" + string, with field, excerpt, expected string and actual
    for code in range(28):
        flags = 4 | 8 | 16
        v = violation(code, flags, 30, 31, s("Description") + s("Description") + s("abc\"\\\x01") +
                      s("characters") + s("a string"))
        seeds.append(("code-%02d" % code, bytes([1 + 10 * 3, 4 << 1 | 1]) + v + bytes([0, 40]) + b"upstream body"))
    seeds += [
        ("empty", b""),
        ("one-byte", b"\x05"),
        ("headers", bytes([3, 1 << 1]) +
         violation(10, 2 | 32, strings=bytes([1]) + s("x")) +
         violation(11, 2, 9, strings=bytes([2]) + s("v") + s("sent more than once") + s("")) +
         violation(22, 2, strings=bytes([0]) + s("text/plain") + s("missing"))),
        ("cap-report-then-enforce", bytes([9 + 10 * 1, 9]) + b"".join(
            violation(8, 1 | 4, strings=s("u%d" % i) + s("schema") + s("x")) for i in range(4)) +
         b"".join(violation(0, 4 | 64, 5, 6, s("D%d" % i) + s("x")) for i in range(5))),
        ("newline-pointer", bytes([1, 0]) + violation(8, 4, strings=s("a\nb") + s("interaction") + s("x"))),
        ("utf8-pointer", bytes([1, 9]) + violation(0, 4 | 8, 1, 2, s("caf\u00e9\U0001F600") + s("\u00e9") +
                                                       s("characters") + s("x"))),
        ("invalid-utf8-strings", bytes([2, 9]) + violation(3, 4 | 8 | 16, strings=s(b"\xff\xfe") + s(b"\xc3") +
                                                            s(b"\xed\xa0\x80") + s(b"L\x00") + s(b"\x80"))),
        ("type-bool", bytes([1, 9]) + violation(4, 4 | 64, strings=s("TopLevelFlag") + s("a string"))),
        ("datetime-date", bytes([1, 9]) + violation(6, 4 | 16 | 128, strings=s("StartTime") + s("2024-13-01") +
                                                    s("x"))),
        ("html-excerpt", bytes([0, 9, 1, 60]) +
         b"<html><head><style>p{}</style><script>alert(1)</script></head><body>\n<h1>Error\t500</h1>"
         b"<p>Internal   error &amp; more</p><SCRIPT>x</SCRIPT ><img src=x></body></html>"),
        ("html-unclosed", bytes([0, 9, 1, 10]) + b"text <scrip"),
        ("html-script-unclosed", bytes([0, 9, 3, 10]) + b"a<script>never closed"),
        ("text-excerpt-controls", bytes([0, 9, 0, 8]) + b"a\x00b\x01c\x7f\xc2\x85d\xe2\x80\xa8e\xff\"\\"),
        ("excerpt-zero", bytes([0, 9, 0, 0]) + b"something"),
        ("excerpt-cut-utf8", bytes([0, 9, 0, 2]) + "\u00e9\u00e9\u00e9\U0001F600".encode()),
        ("timeout", bytes([0, 9, 4 | 0, 20]) + b"x"),
        ("unreachable", bytes([0, 9, 2, 20]) + b"connection refused"),
        ("status-high", bytes([0, 9, 0xf8, 20]) + b"<p>bad</p>"),
    ]
    return seeds


def main():
    write_seeds("body", body_seeds())
    write_seeds("rules", rules_seeds())
    write_seeds("config", config_seeds())
    write_seeds("describe", describe_seeds())
    write_seeds("render", render_seeds())


if __name__ == "__main__":
    sys.exit(main())
