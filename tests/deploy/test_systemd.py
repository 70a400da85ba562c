"""
The systemd unit: deploy/crmgate.service is Type=notify and hardened (the package user, ProtectSystem=strict,
NoNewPrivileges, no capabilities, the audit directory as LogsDirectory= and ReadWritePaths=); the copy the build
installs is Type=notify with libsystemd and Type=simple without, and names the installed paths;
`systemd-analyze verify` accepts it without a single warning (a broken copy shows the check is real); and
`systemd-analyze security --offline=true` rates its exposure, which must stay at or below 2.0 ("OK").
"""
import os
import re
import shutil

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

suite = d.h.Suite("systemd")
REPO_UNIT = os.path.join(d.DEPLOY_DIR, "crmgate.service")
BUILD_UNIT = os.path.join(d.BUILD_DIR, "deploy", "crmgate.service")
MAX_EXPOSURE = 2.0


def package_config():
    return d.import_yaml().safe_load(d.read(os.path.join(d.DEPLOY_DIR, "crmgate.yaml")))


@suite.test
def unit_is_notify_and_hardened():
    text = d.read(REPO_UNIT)
    v = lambda key: d.unit_values(text, key)  # noqa: E731
    h.eq(v("Type"), ["notify"], "Type")
    h.eq(v("ExecStart"), ["/usr/bin/crmgate -c /etc/crmgate/crmgate.yaml"], "ExecStart")
    h.eq(v("ExecReload"), ["/bin/kill -HUP $MAINPID"], "ExecReload (SIGHUP reloads)")
    h.eq(v("KillSignal"), ["SIGTERM"], "KillSignal (SIGTERM drains)")
    h.eq(v("User"), ["crmgate"], "User (the package's system user)")
    h.eq(v("NoNewPrivileges"), ["yes"], "NoNewPrivileges")
    h.eq(v("ProtectSystem"), ["strict"], "ProtectSystem")
    h.eq(v("CapabilityBoundingSet"), [""], "CapabilityBoundingSet (empty: no capabilities)")
    h.eq(v("AmbientCapabilities"), [""], "AmbientCapabilities")
    h.eq(v("LogsDirectory"), ["crmgate"], "LogsDirectory")
    conf = package_config()
    audit_dir = os.path.dirname(conf["audit"]["path"])
    h.eq(audit_dir, "/var/log/crmgate", "the audit directory of deploy/crmgate.yaml")
    check(audit_dir in " ".join(v("ReadWritePaths")).split(), "ReadWritePaths %r lacks %s" % (v("ReadWritePaths"), audit_dir))
    # no capability is needed: the listeners are on unprivileged ports
    for key in ("listen", "admin"):
        _, port = d.hostport(conf[key])
        check(port >= 1024, "deploy/crmgate.yaml %s port %d < 1024 would need CAP_NET_BIND_SERVICE" % (key, port))
    # systemd's SIGKILL must not cut the drain short
    stop = v("TimeoutStopSec")
    h.eq(len(stop), 1, "TimeoutStopSec lines")
    check(d.parse_duration_ms(stop[0]) > d.parse_duration_ms(conf["shutdown-timeout"]),
          "TimeoutStopSec=%s does not exceed shutdown-timeout %s" % (stop[0], conf["shutdown-timeout"]))


@suite.test
def installed_unit_matches_the_build():
    check(os.path.isfile(BUILD_UNIT), "the build did not generate %s" % BUILD_UNIT)
    text = d.read(BUILD_UNIT)
    h.eq(d.unit_values(text, "Type"), ["notify" if d.HAVE_SYSTEMD else "simple"],
         "Type of the build's unit (built %s libsystemd)" % ("with" if d.HAVE_SYSTEMD else "without"))
    bindir = "/usr/bin" if d.INSTALL_PREFIX == "/usr" else d.INSTALL_PREFIX + "/bin"
    etc = "/etc" if d.INSTALL_PREFIX == "/usr" else d.INSTALL_PREFIX + "/etc"
    h.eq(d.unit_values(text, "ExecStart"), ["%s/crmgate -c %s/crmgate/crmgate.yaml" % (bindir, etc)],
         "ExecStart for the prefix %s" % d.INSTALL_PREFIX)
    # apart from those two lines, the installed unit is deploy/crmgate.service
    strip = lambda t: [l for l in t.splitlines() if not l.startswith(("Type=", "ExecStart="))]  # noqa: E731
    h.eq(strip(text), strip(d.read(REPO_UNIT)), "the rest of the build's unit")


def verifiable_copy(directory, text):
    """The unit with ExecStart on the built binary (verify requires an executable) and crmgate(8) on MANPATH."""
    os.makedirs(os.path.join(directory, "man", "man8"), exist_ok=True)
    shutil.copy(os.path.join(d.DEPLOY_DIR, "crmgate.8"), os.path.join(directory, "man", "man8"))
    text = text.replace("ExecStart=/usr/bin/crmgate ", "ExecStart=%s " % h.CRMGATE_BIN)
    path = os.path.join(directory, "crmgate.service")
    with open(path, "w") as f:
        f.write(text)
    return path, dict(os.environ, MANPATH=os.path.join(directory, "man"), SYSTEMD_LOG_COLOR="0")


@suite.test
def systemd_analyze_verify_passes():
    d.need("systemd-analyze", "man")
    good, env = verifiable_copy(os.path.join(suite.workdir(), "good"), d.read(REPO_UNIT))
    cp = d.run(["systemd-analyze", "verify", good], env=env)
    h.eq((cp.out + cp.err).strip(), "", "systemd-analyze verify output (a warning is a failure)")
    # the control: verify does flag a broken unit here (it exits 0 on "ignoring" warnings: the output is the verdict)
    broken = d.read(REPO_UNIT).replace("ProtectSystem=strict", "ProtectSystem=stricter")
    bad, env = verifiable_copy(os.path.join(suite.workdir(), "bad"), broken)
    cp = d.run(["systemd-analyze", "verify", bad], env=env, expect_rc=None)
    check("stricter" in cp.out + cp.err, "verify did not flag ProtectSystem=stricter: %r" % (cp.out + cp.err))


@suite.test
def systemd_analyze_security_exposure():
    d.need("systemd-analyze")
    path, env = verifiable_copy(suite.workdir(), d.read(REPO_UNIT))
    cp = d.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path], env=env)
    m = re.search(r"Overall exposure level for crmgate\.service: ([0-9.]+) (\w+)", cp.out)
    check(m is not None, "no exposure level in:\n%s" % h.tail(cp.out))
    exposed = [l.strip() for l in cp.out.splitlines() if l.lstrip().startswith("\u2717")]
    h.note("systemd-analyze security --offline=true crmgate.service: exposure %s %s" % (m.group(1), m.group(2)))
    h.note("still exposed:\n" + "\n".join(re.sub(r"\s{2,}", "  ", l) for l in exposed))
    check(float(m.group(1)) <= MAX_EXPOSURE, "exposure %s is above %.1f" % (m.group(1), MAX_EXPOSURE))


suite.main()
