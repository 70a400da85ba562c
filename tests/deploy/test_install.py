"""
`cmake --install` from this build into a temporary prefix: the FHS layout (bin/crmgate; etc/crmgate/crmgate.yaml
and etc/crmgate/rules/; etc/logrotate.d/crmgate; the systemd unit; share/man/man8/crmgate.8.gz; the README), the
installed unit's Type (notify with libsystemd, simple without), and the installed binary's -t on the installed
configuration, whose rules resolve next to it.
"""
import gzip
import os
import stat

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

suite = d.h.Suite("install")


@suite.test
def install_lays_out_an_fhs_tree():
    d.need("cmake")
    if d.INSTALL_PREFIX == "/usr":
        raise h.Skip("this build's prefix is /usr: /etc and the unit directory are absolute and --prefix cannot move "
                     "them (deploy.test_package checks that layout)")
    prefix = os.path.join(suite.workdir(), "prefix")
    d.run(["cmake", "--install", d.BUILD_DIR, "--prefix", prefix], seconds=60)
    rules = sorted(f for f in os.listdir(h.RULES_DIR) if f.endswith(".json"))
    expected = ["bin/crmgate", "etc/crmgate/crmgate.yaml", "etc/logrotate.d/crmgate",
                "lib/systemd/system/crmgate.service", "share/doc/crmgate/README.md", "share/man/man8/crmgate.8.gz"]
    expected += ["etc/crmgate/rules/" + r for r in rules]
    found = sorted(os.path.relpath(os.path.join(dp, f), prefix) for dp, _, fs in os.walk(prefix) for f in fs)
    h.eq(found, sorted(expected), "installed files")
    check(os.stat(os.path.join(prefix, "bin/crmgate")).st_mode & stat.S_IXOTH, "bin/crmgate is not executable")
    h.eq(d.read(os.path.join(prefix, "etc/crmgate/crmgate.yaml")), d.read(os.path.join(d.DEPLOY_DIR, "crmgate.yaml")),
         "the installed configuration (deploy/crmgate.yaml)")
    h.eq(d.read(os.path.join(prefix, "etc/logrotate.d/crmgate")), d.read(os.path.join(d.DEPLOY_DIR, "logrotate", "crmgate")),
         "the installed logrotate snippet")
    with gzip.open(os.path.join(prefix, "share/man/man8/crmgate.8.gz"), "rt") as f:
        h.eq(f.read(), d.read(os.path.join(d.DEPLOY_DIR, "crmgate.8")), "the installed man page")
    unit = d.read(os.path.join(prefix, "lib/systemd/system/crmgate.service"))
    h.eq(d.unit_values(unit, "Type"), ["notify" if d.HAVE_SYSTEMD else "simple"], "the installed unit's Type")
    h.eq(d.unit_values(unit, "ExecStart"), ["%s/bin/crmgate -c %s/etc/crmgate/crmgate.yaml"
                                            % (d.INSTALL_PREFIX, d.INSTALL_PREFIX)], "the installed unit's ExecStart")
    # the installed binary on the installed configuration; the audit directory /var/log/crmgate is the unit's
    # LogsDirectory=, created when systemd starts it: here the audit goes to a temporary file
    binary = os.path.join(prefix, "bin/crmgate")
    cp = d.run([binary, "-t", "-c", os.path.join(prefix, "etc/crmgate/crmgate.yaml"), "--audit",
                os.path.join(suite.workdir(), "audit.log")], env=h.sanitizer_env(leaks=True))
    check(" OK; rules " in cp.out and "from %d file(s)" % len(rules) in cp.out, "crmgate -t: %r" % cp.out)
    h.note(cp.out.strip())


suite.main()
