"""
systemd's notification protocol, for real: the test binds the datagram socket systemd would, passes it in
$NOTIFY_SOCKET, and reads what the gateway sends: READY=1 (with STATUS=) once every worker listens, RELOADING=1
then READY=1 around a SIGHUP reload (the STATUS saying whether the new rules or the old ones are served), and
STOPPING=1 on SIGTERM; each from the main process (systemd's NotifyAccess=main). `crmgate -t` sends nothing;
an unusable socket is a warning, not a failure. Skipped in a build without libsystemd (its unit is Type=simple).
"""
import os
import re
import shutil
import signal
import socket
import struct
import tempfile

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

import policy_helpers as ph  # noqa: E402  (tests/e2e is on sys.path through deploylib)

suite = d.h.Suite("sd_notify")
if not d.HAVE_SYSTEMD:
    suite.skip_all("built without libsystemd: no sd_notify, the unit is Type=simple")


class NotifySocket:
    """The service manager's end: a unix datagram socket receiving the sender's credentials with each message."""

    def __init__(self):
        # sun_path holds 107 bytes: a short directory of its own, not the test's deep work directory
        self.dir = tempfile.mkdtemp(prefix="crmgate-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)

    def receive(self, seconds=10):
        """(fields dict, sender pid) of the next message; fails after `seconds`."""
        self.sock.settimeout(h.timeout(seconds))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            d.fail("no notification within %.1f s" % h.timeout(seconds))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:struct.calcsize("3i")])[0]
        fields = {}
        for line in data.decode("utf-8").split("\n"):
            if line:
                key, _, value = line.partition("=")
                fields[key] = value
        return fields, pid

    def nothing_pending(self, seconds=0.5):
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return True
        d.fail("unexpected notification %r" % data)

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def with_notify_socket(path, fn):
    """Runs fn with $NOTIFY_SOCKET set for the processes it starts (the harness copies os.environ)."""
    os.environ["NOTIFY_SOCKET"] = path
    try:
        return fn()
    finally:
        del os.environ["NOTIFY_SOCKET"]


@suite.test
def ready_reloading_ready_stopping():
    workdir = suite.workdir()
    rules = os.path.join(workdir, "rules")
    shutil.copytree(h.RULES_DIR, rules)
    notify = NotifySocket()
    try:
        sim = suite.start_sim()
        gw = with_notify_socket(notify.path, lambda: suite.start_gateway(sim.port, rules=rules, allow_errors=True))
        msg, pid = notify.receive()
        h.eq(msg.get("READY"), "1", "first notification %r: READY" % msg)
        h.eq(pid, gw.proc.pid, "the sender of READY=1 (NotifyAccess=main)")
        digest = ph.digest_of(rules=rules)
        m = re.fullmatch(r"serving http://127\.0\.0\.1:(\d+) with 2 worker threads; rules ([0-9a-f]{64}) \(\d+ routes\)",
                         msg.get("STATUS", ""))
        check(m is not None, "STATUS of READY=1: %r" % msg.get("STATUS"))
        h.eq(int(m.group(1)), gw.port, "the port in STATUS")
        h.eq(m.group(2), digest, "the digest in STATUS")
        # ready means ready: both listeners answer at once, no retry
        h.eq(h.http_get(gw.admin_port, "/-/readyz")[0], 200, "/-/readyz right after READY=1")
        h.eq(h.post(gw, h.EXAMPLE).status, 201, "a request right after READY=1")

        ph.send_signal(gw, signal.SIGHUP)
        msg, pid = notify.receive()
        h.eq(msg.get("RELOADING"), "1", "notification after SIGHUP %r: RELOADING" % msg)
        check(re.fullmatch(r"\d+", msg.get("MONOTONIC_USEC", "")), "RELOADING=1 without MONOTONIC_USEC: %r" % msg)
        h.eq(pid, gw.proc.pid, "the sender of RELOADING=1")
        msg, _ = notify.receive()
        h.eq(msg.get("READY"), "1", "notification after the reload %r: READY" % msg)
        check(re.fullmatch(r"reloaded: serving rules %s \(\d+ routes\)" % digest, msg.get("STATUS", "")),
              "STATUS after a good reload: %r" % msg.get("STATUS"))

        with open(os.path.join(rules, "interactions.json"), "a") as f:
            f.write("\n{ broken")
        ph.send_signal(gw, signal.SIGHUP)
        msg, _ = notify.receive()
        h.eq(msg.get("RELOADING"), "1", "notification after the second SIGHUP %r: RELOADING" % msg)
        msg, _ = notify.receive()
        h.eq(msg.get("READY"), "1", "notification after the failed reload %r: READY (the old rules still serve)" % msg)
        check(msg.get("STATUS", "").startswith("reload failed, still serving rules %s" % digest),
              "STATUS after a failed reload: %r" % msg.get("STATUS"))
        h.eq(h.post(gw, h.EXAMPLE).status, 201, "a request after the failed reload")

        os.kill(gw.proc.pid, signal.SIGTERM)
        msg, pid = notify.receive()
        h.eq(msg.get("STOPPING"), "1", "notification after SIGTERM %r: STOPPING" % msg)
        h.eq(pid, gw.proc.pid, "the sender of STOPPING=1")
        check(msg.get("STATUS", "").startswith("draining"), "STATUS of STOPPING=1: %r" % msg.get("STATUS"))
        suite.stop(gw)
        notify.nothing_pending()
    finally:
        notify.close()


@suite.test
def check_mode_sends_nothing():
    notify = NotifySocket()
    try:
        cp = with_notify_socket(notify.path, lambda: h.run_cli(["-t", "-c", h.SHIPPED_CONFIG]))
        h.eq(cp.returncode, 0, "crmgate -t exit status")
        notify.nothing_pending()
    finally:
        notify.close()


@suite.test
def unusable_notify_socket_is_a_warning():
    missing = os.path.join(suite.workdir(), "no-such-socket")
    with suite.stack() as (sim, gw):
        pass  # a normal stack first: no warning without NOTIFY_SOCKET
    check("service manager" not in gw.proc.stderr(), "a notify warning without NOTIFY_SOCKET:\n%s" % gw.proc.stderr())
    sim = suite.start_sim()
    gw = with_notify_socket(missing, lambda: suite.start_gateway(sim.port))
    gw.proc.wait_for(r"crmgate\[warn\]: cannot notify the service manager at \$NOTIFY_SOCKET: ", 10)
    h.eq(h.post(gw, h.EXAMPLE).status, 201, "a request with an unusable NOTIFY_SOCKET")
    ph.send_signal(gw, signal.SIGHUP)
    gw.proc.wait_for(r"reloaded: rules", 10)
    h.eq(len(re.findall(r"cannot notify the service manager", gw.proc.stderr())), 1, "notify warnings (one, not one per message)")


suite.main()
