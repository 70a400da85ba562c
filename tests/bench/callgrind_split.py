#!/usr/bin/env python3
"""
Reads callgrind output files (written with --compress-strings=no --compress-pos=no) and splits crmgate's
instruction count per request into jansson's parse, validation, and the rest of crmgate's own code, next to h2o's.

    python3 callgrind_split.py SOURCE_DIR RUN_N.out RUN_2N.out N      -> one JSON document on stdout

Per request = (counts of the 2N-request run - counts of the N-request run) / N: start-up, rule compilation and
shutdown cancel out.

What is crmgate's own cost: every call *into* crmgate's code (a function whose source file is under
SOURCE_DIR/gateway/) from outside it -- h2o calling a handler, filter, socket or pool callback, the C library
starting the audit writer thread -- counted inclusively (so jansson, PCRE2, OpenSSL's SHA-256 and libc work done
for crmgate count as crmgate's). The functions that host h2o's event loop (main, the worker thread: they reach
h2o_evloop_run) are not counted whole; what they call in crmgate between event-loop passes is. A call into
crmgate that is itself made, through h2o, from inside crmgate code (e.g. a filter run while the handler sends a
rejection) is not added twice: it is listed as nested. Everything else is "h2o and the rest": HTTP parsing, the
proxy, sockets, libc, the dynamic loader.

The named functions of the split are listed once, in FUNCTIONS; a missing one gets a clear warning (names change
as the gateway is optimised).
"""
import collections
import json
import os
import sys

# part -> candidate functions (name, or name@file-suffix for static functions whose name is not unique).
# Inclusive instruction counts per request are reported for each part found; the first candidate present wins.
FUNCTIONS = collections.OrderedDict([
    ("parse", ["json_loadb"]),                                  # jansson: the one strict parse of the body
    ("validate", ["gw_validate_document"]),                     # the schema walk
    ("evaluate", ["gw_evaluate"]),                              # headers + parse + validation
    ("route", ["gw_evaluate_route"]),                           # method + normalised path -> route
    ("handler", ["on_req@gateway/handler.c"]),                  # h2o's handler entry (includes everything above)
    ("request_id", ["gw_request_id_ensure"]),
    ("audit_prepare", ["gw_auditlog_prepare"]),                 # the body's SHA-256 and the record's fields
    ("audit_write", ["gw_auditlog_write"]),                     # the record, at the end of the request
    ("audit_flush", ["gw_auditlog_flush"]),                     # hand-over to the writer, per event-loop pass
    ("audit_thread", ["writer_main@gateway/audit.c"]),          # the audit writer thread (write(2), fsync)
    ("sha256", ["hash_body@gateway/auditlog.c", "EVP_DigestUpdate", "SHA256"]),  # body_sha256
    ("metrics", ["gw_metrics_count_request"]),
])


def load(path):
    """-> (self cost per function, {(caller, callee): inclusive cost of the calls}, object of each function, total).
    A function is (source file, name)."""
    self_cost = collections.Counter()
    calls = collections.Counter()
    objects = {}
    total = 0
    ob = fl = key = None
    cob = cfl = cfn = None
    pending_call = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call:
                    callee = (cfl or fl, cfn)
                    calls[(key, callee)] += cost
                    objects.setdefault(callee, cob or ob)
                    pending_call = False
                    cob = cfl = None  # given per call; without them, the caller's
                else:
                    self_cost[key] += cost
                continue
            if line.startswith("fn="):
                key = (fl, line[3:])
                objects[key] = ob
                cob = cfl = cfn = None
            elif line.startswith("fl="):
                fl = line[3:]
            elif line.startswith(("cfl=", "cfi=")):
                cfl = line[4:]
            elif line.startswith("cfn="):
                cfn = line[4:]
            elif line.startswith("cob="):
                cob = line[4:]
            elif line.startswith("calls="):
                pending_call = True
            elif line.startswith("ob="):
                ob = line[3:]
            elif line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
            # fi=/fe= (inlined code: still the current function's cost), jump=, headers: not needed
    return self_cost, calls, objects, total


def matches(key, spec):
    name, _, suffix = spec.partition("@")
    return key[1] == name and (not suffix or (key[0] or "").endswith(suffix))


def inclusive(calls, spec):
    """Inclusive cost of a function: the calls into it from other functions (recursion not counted twice)."""
    total = 0
    found = False
    for (caller, callee), cost in calls.items():
        if matches(callee, spec):
            found = True
            if not matches(caller, spec):
                total += cost
    return found, total


# h2o functions that a crmgate filter or handler calls to pass a response on down h2o's own chain (the chunked
# encoder, the protocol's final output stream, the socket write): that work is h2o's, whoever calls it. A
# pass-through filter's do_send calls h2o_ostream_send_next for every relayed response.
HANDBACK = {"h2o_ostream_send_next", "h2o_setup_next_ostream", "h2o_send_inline", "h2o_send", "h2o_proceed_response"}


def analyse(source_dir, path):
    """
    crmgate's cost = the self cost of every function of crmgate's code (source under gateway/) + the calls it makes
    to other code (jansson, PCRE2, libcrypto, libc, h2o's helpers), except the calls that hand control back to h2o:
    calls into other code that lead back into crmgate code (jansson's calls of crmgate's allocator excepted) (h2o_evloop_run from the worker thread, the HTTP/1
    read callback the body guard wraps, h2o_setup_next_ostream from a filter...). Those are h2o's work; the crmgate
    code they reach is counted by its own self cost and calls. Nothing is counted twice.
    """
    self_cost, calls, objects, total = load(path)
    gw_prefix = os.path.join(os.path.abspath(source_dir), "gateway") + os.sep

    def is_gw(key):
        return key is not None and (key[0] or "").startswith(gw_prefix)

    callees = collections.defaultdict(set)
    for (caller, callee) in calls:
        callees[caller].add(callee)
    memo = {}

    def leads_back(start):  # reaches crmgate code through other code only
        if start in memo:
            return memo[start]
        seen, pending, found = {start}, [start], False
        while pending and not found:
            k = pending.pop()
            for n in callees.get(k, ()):
                if is_gw(n):
                    # jansson calls crmgate's allocator hooks: part of the parse, not a hand-back
                    if "libjansson" not in (objects.get(k) or ""):
                        found = True
                        break
                    continue
                if n not in seen:
                    seen.add(n)
                    pending.append(n)
        memo[start] = found
        return found

    per_fn = collections.Counter()  # crmgate function -> its self cost + the calls counted as crmgate's
    handed_back = collections.Counter()
    for k, c in self_cost.items():
        if is_gw(k):
            per_fn[k] += c
    for (caller, callee), cost in calls.items():
        if not is_gw(caller) and is_gw(callee) and "libjansson" in (objects.get(caller) or ""):
            # crmgate's allocator hooks run inside json_loadb, already counted in the call to it: not twice
            per_fn[callee] -= cost
            continue
        if not is_gw(caller) or is_gw(callee):
            continue
        if callee[1] in HANDBACK or leads_back(callee):
            handed_back["%s -> %s" % (caller[1], callee[1])] += cost
        else:
            per_fn[caller] += cost
    parts = {}
    for part, specs in FUNCTIONS.items():
        for spec in specs:
            found, cost = inclusive(calls, spec)
            if found:
                parts[part] = {"function": spec, "ir": cost}
                break
    by_fn = {"%s (%s)" % (k[1], os.path.relpath(k[0], source_dir)): c for k, c in per_fn.items()}
    return {"total": total or sum(self_cost.values()), "crmgate": sum(per_fn.values()), "by_function": by_fn,
            "handed_back": dict(handed_back), "parts": parts}


def main():
    if len(sys.argv) != 5:
        raise SystemExit("usage: callgrind_split.py SOURCE_DIR RUN_N.out RUN_2N.out N")
    source_dir, a_path, b_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    a = analyse(source_dir, a_path)
    b = analyse(source_dir, b_path)

    def per(x, y):
        return (y - x) / n

    out = {"n": n, "total": per(a["total"], b["total"]), "crmgate": per(a["crmgate"], b["crmgate"]),
           "parts": {}, "by_function": {}, "handed_back": {}, "missing": []}
    out["h2o_and_rest"] = out["total"] - out["crmgate"]
    for part, specs in FUNCTIONS.items():
        if part in b["parts"]:
            pa = a["parts"].get(part, {"ir": 0})
            out["parts"][part] = {"function": b["parts"][part]["function"], "ir": per(pa["ir"], b["parts"][part]["ir"])}
        else:
            out["missing"].append("%s (%s)" % (part, " or ".join(specs)))
    for field in ("by_function", "handed_back"):
        for name in set(a[field]) | set(b[field]):
            v = per(a[field].get(name, 0), b[field].get(name, 0))
            if abs(v) >= 0.5:
                out[field][name] = v
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
