"""
Log rotation with the shipped snippet (deploy/logrotate/crmgate, installed as /etc/logrotate.d/crmgate): a real
logrotate run, twice, against a running gateway that writes its audit trail to a temporary file while clients
keep sending requests. The snippet is used as shipped except for two substitutions: the path (the temporary
file instead of /var/log/crmgate/audit.log) and the postrotate command (`kill -USR1 PID` of this gateway
instead of `systemctl kill --kill-whom=main --signal=SIGUSR1 crmgate.service`, which needs the real service).
Every answered request has exactly one record across audit.log, audit.log.1 and audit.log.2.gz, the gateway
logged one reopen per rotation (so postrotate's signal arrived), and delaycompress left the newest rotated
file uncompressed.
"""
import gzip
import os
import threading
import time

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

import policy_helpers as ph  # noqa: E402  (tests/e2e is on sys.path through deploylib)

suite = d.h.Suite("logrotate")
SNIPPET = os.path.join(d.DEPLOY_DIR, "logrotate", "crmgate")
SHIPPED_PATH = "/var/log/crmgate/audit.log"
SHIPPED_POSTROTATE = "systemctl kill --kill-whom=main --signal=SIGUSR1 crmgate.service >/dev/null 2>&1 || true"


def snippet_for(audit_path, pid):
    text = d.read(SNIPPET)
    h.eq(text.count(SHIPPED_PATH), 1, "occurrences of %s in the snippet" % SHIPPED_PATH)
    h.eq(text.count(SHIPPED_POSTROTATE), 1, "occurrences of the postrotate command in the snippet")
    for directive in ("delaycompress", "nocreate", "missingok", "sharedscripts"):
        check(("\n    %s\n" % directive) in text, "the snippet lacks %s" % directive)
    return text.replace(SHIPPED_PATH, audit_path).replace(SHIPPED_POSTROTATE, "kill -USR1 %d" % pid)


@suite.test
def snippet_rotates_the_shipped_audit_path():
    conf = d.import_yaml().safe_load(d.read(os.path.join(d.DEPLOY_DIR, "crmgate.yaml")))
    h.eq(conf["audit"]["path"], SHIPPED_PATH, "audit.path of deploy/crmgate.yaml")
    d.need("logrotate")
    # logrotate's own parser accepts the file as shipped (debug mode: nothing is rotated)
    state = os.path.join(suite.workdir(), "state")
    cp = d.run(["logrotate", "-d", "-s", state, SNIPPET])
    check("error" not in (cp.out + cp.err).lower(), "logrotate -d reports an error:\n%s" % h.tail(cp.out + cp.err))


def read_records(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return ph.parse_audit_text(f.read(), path)


@suite.test
def rotation_under_load_loses_and_duplicates_nothing():
    d.need("logrotate")
    total = 1500 if h.SANITIZE else 4000
    workdir = suite.workdir()
    logdir = os.path.join(workdir, "log")
    os.makedirs(logdir, mode=0o750)
    audit = os.path.join(logdir, "audit.log")
    state = os.path.join(workdir, "logrotate.state")
    with suite.stack(config=ph.audit_yaml(audit)) as (sim, gw):
        conf = os.path.join(workdir, "logrotate.conf")
        with open(conf, "w") as f:
            f.write(snippet_for(audit, gw.proc.pid))
        os.chmod(conf, 0o644)  # logrotate ignores a configuration others may write
        answered = {"n": 0}
        lock = threading.Lock()
        rotations = []

        def on_progress(i):
            with lock:
                answered["n"] += 1

        def rotate_twice():
            try:
                for k in (1, 2):
                    while answered["n"] < total * k // 3:
                        time.sleep(0.005)
                    d.run(["logrotate", "-f", "-s", state, conf])
                    rotations.append(answered["n"])
            except Exception as e:  # reported by the main thread
                rotations.append(e)

        rotator = threading.Thread(target=rotate_twice, daemon=True)
        rotator.start()

        def plan(i):
            return "valid", "POST", h.INTERACTIONS, h.EXAMPLE, {"Content-Type": "application/json"}

        outcomes = ph.run_load(gw.port, (total, plan), 4, "rot", on_progress=on_progress)
        rotator.join(timeout=h.timeout(60))
        check(len(rotations) == 2 and all(isinstance(r, int) for r in rotations), "rotations: %r" % rotations)
        failed = [o for o in outcomes if o is None or o.error is not None or o.status != 201]
        check(not failed, "requests that failed during the rotations: %r" % failed[:5])
        ph.wait_until(lambda: ph.count_log(gw, r"audit sink .* reopened") >= 2, 10, "two reopens after SIGUSR1")
    # SIGTERM wrote and synced every record
    h.eq(sorted(os.listdir(logdir)), ["audit.log", "audit.log.1", "audit.log.2.gz"], "files after two rotations")
    files = {name: read_records(os.path.join(logdir, name)) for name in ("audit.log.2.gz", "audit.log.1", "audit.log")}
    h.note("rotated after %s responses; records: %s" % (rotations, {k: len(v) for k, v in files.items()}))
    for name, records in files.items():
        check(records, "%s holds no record" % name)
    ids = [r["request_id"] for records in files.values() for r in records]
    h.eq(len(ids), total, "records across the three files")
    h.eq(sorted(set(ids)), sorted(o.rid for o in outcomes), "request ids across the three files (each once)")
    h.eq(ph.count_log(gw, r"audit sink .* reopened"), 2, "reopens logged (one per postrotate SIGUSR1)")


suite.main()
