"""
The Debian package: deploy/build-deb.sh builds crmgate_<version>_<arch>.deb offline (a /usr-prefixed release
build in a temporary directory, then CPack's DEB generator); dpkg-deb shows its control fields (dependencies
computed by dpkg-shlibdeps), its contents and its conffiles; dpkg -x extracts it into a temporary root, where
the packaged binary checks the packaged configuration and rules with -t. The maintainer scripts run against
recording stand-ins for adduser, deluser, chown and the rest: postinst creates the system user only when it is
missing, postrm purge removes the user but keeps the audit trail, handed to root:adm. cpack refuses a build configured for another prefix than /usr. Skipped in the sanitizer build
(a package of an ASan binary means nothing).
"""
import gzip
import os
import re
import stat

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

suite = d.h.Suite("package")
if h.SANITIZE:
    suite.skip_all("the package is built from a release build; this is the sanitizer build")

STATE = {}
RULE_FILES = sorted(f for f in os.listdir(h.RULES_DIR) if f.endswith(".json"))


def project_version():
    m = re.search(r"project\(crmgate VERSION ([0-9.]+)", d.read(os.path.join(h.SOURCE_DIR, "CMakeLists.txt")))
    check(m is not None, "no project(crmgate VERSION ...) in CMakeLists.txt")
    return m.group(1)


def package():
    """Builds the package once for the whole file: (path, work directory)."""
    if "deb" not in STATE:
        d.need("cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "gzip")
        work = os.path.join(suite.root, "package")
        os.makedirs(work, exist_ok=True)
        cp = d.run([os.path.join(d.DEPLOY_DIR, "build-deb.sh"), os.path.join(work, "build"), os.path.join(work, "out")],
                   seconds=240)
        STATE["deb"] = cp.out.strip().splitlines()[-1]
        STATE["work"] = work
        check(os.path.isfile(STATE["deb"]), "build-deb.sh printed %r, which is not a file" % STATE["deb"])
    return STATE["deb"], STATE["work"]


def control_fields(deb):
    text = d.run(["dpkg-deb", "-f", deb]).out
    fields, last = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and last is not None:
            fields[last] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
            last = key
    return fields


def extracted_root():
    if "root" not in STATE:
        deb, work = package()
        root = os.path.join(work, "root")
        d.run(["dpkg", "-x", deb, root])
        STATE["root"] = root
    return STATE["root"]


@suite.test
def package_name_and_control_fields():
    deb, _ = package()
    arch = d.run(["dpkg", "--print-architecture"]).out.strip()
    version = project_version()
    d.check(os.path.basename(deb) == "crmgate_%s_%s.deb" % (version, arch),
            "package file %s, expected crmgate_%s_%s.deb" % (os.path.basename(deb), version, arch))
    info = d.run(["dpkg-deb", "-I", deb]).out
    h.note("dpkg-deb -I %s:\n%s" % (os.path.basename(deb), info))
    f = control_fields(deb)
    h.eq(f.get("Package"), "crmgate", "Package")
    h.eq(f.get("Version"), version, "Version")
    h.eq(f.get("Architecture"), arch, "Architecture")
    check(f.get("Maintainer"), "no Maintainer field")
    check(f.get("Description", "").startswith("validating reverse proxy"), "Description: %r" % f.get("Description"))


@suite.test
def dependencies_are_computed_from_the_binary():
    deb, _ = package()
    f = control_fields(deb)
    deps = {}
    for item in f.get("Depends", "").split(","):
        item = item.strip()
        m = re.fullmatch(r"([a-z0-9.+-]+)(?: \((.+)\))?", item)
        check(m is not None, "unexpected Depends item %r" % item)
        deps[m.group(1)] = m.group(2)
    h.note("Depends: %s" % f.get("Depends"))
    # the runtime libraries of Debian 12 the binary links: each found by dpkg-shlibdeps, most with a version
    for lib in ("libc6", "libh2o-evloop0.13", "libjansson4", "libpcre2-8-0", "libssl3", "libyaml-0-2", "adduser"):
        check(lib in deps, "Depends lacks %s: %s" % (lib, f.get("Depends")))
    check(deps["libc6"] and deps["libc6"].startswith(">= "),
          "libc6 has no version constraint: dpkg-shlibdeps did not compute the dependencies")
    check(not [p for p in deps if p.endswith("-dev")], "a -dev package in Depends: %s" % f.get("Depends"))
    # a package linked with libsystemd needs it, and then its unit is Type=notify; without it, Type=simple
    unit = d.read(os.path.join(extracted_root(), "lib/systemd/system/crmgate.service"))
    types = d.unit_values(unit, "Type")
    h.eq(types, ["notify" if "libsystemd0" in deps else "simple"], "the packaged unit's Type (libsystemd0 %s Depends)"
         % ("in" if "libsystemd0" in deps else "not in"))
    if d.HAVE_SYSTEMD:
        check("libsystemd0" in deps, "this machine has libsystemd, but the package does not depend on libsystemd0")


@suite.test
def contents_are_the_fhs_layout():
    deb, _ = package()
    listing = d.run(["dpkg-deb", "-c", deb]).out
    files = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        check(len(parts) == 6, "unexpected dpkg-deb -c line %r" % line)
        mode, owner, path = parts[0], parts[1], parts[5]
        check(owner == "root/root", "%s is owned by %s, not root/root" % (path, owner))
        if mode.startswith("-"):
            files[path] = mode
    expected = {"./usr/bin/crmgate", "./etc/crmgate/crmgate.yaml", "./etc/logrotate.d/crmgate",
                "./lib/systemd/system/crmgate.service", "./usr/share/man/man8/crmgate.8.gz",
                "./usr/share/doc/crmgate/README.md"}
    expected |= {"./etc/crmgate/rules/" + r for r in RULE_FILES}
    h.eq(sorted(files), sorted(expected), "the package's files")
    h.eq(files["./usr/bin/crmgate"], "-rwxr-xr-x", "mode of /usr/bin/crmgate")
    for path, mode in files.items():
        if path != "./usr/bin/crmgate":
            h.eq(mode, "-rw-r--r--", "mode of " + path)


@suite.test
def conffiles_and_maintainer_scripts():
    deb, work = package()
    control = os.path.join(work, "control")
    d.run(["dpkg-deb", "-e", deb, control])
    conffiles = d.read(os.path.join(control, "conffiles")).split()
    etc = ["/etc/crmgate/crmgate.yaml", "/etc/logrotate.d/crmgate"] + ["/etc/crmgate/rules/" + r for r in RULE_FILES]
    h.eq(sorted(conffiles), sorted(etc), "conffiles (every file under /etc)")
    h.note("conffiles: " + " ".join(conffiles))
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(control, script)
        check(os.path.isfile(path), "the package has no %s" % script)
        check(os.stat(path).st_mode & stat.S_IXUSR, "%s is not executable" % script)
        h.eq(d.read(path), d.read(os.path.join(d.DEPLOY_DIR, "debian", script)), script + " (from deploy/debian)")
        d.run(["sh", "-n", path])
    check(os.path.isfile(os.path.join(control, "md5sums")), "no md5sums")


def recording_commands(directory, log, user_exists):
    """getent, adduser, deluser, delgroup, systemctl, chown and rm that only record their arguments."""
    os.makedirs(directory, exist_ok=True)
    for name in ("adduser", "deluser", "delgroup", "systemctl", "chown", "rm"):
        with open(os.path.join(directory, name), "w") as f:
            f.write('#!/bin/sh\necho "%s $*" >> "%s"\nexit 0\n' % (name, log))
        os.chmod(os.path.join(directory, name), 0o755)
    with open(os.path.join(directory, "getent"), "w") as f:
        # passwd or group lookups of crmgate: found only when the test says the user exists
        f.write('#!/bin/sh\necho "getent $*" >> "%s"\n' % log)
        f.write('[ "$2" = crmgate ] && [ %d = 1 ] && { echo "crmgate:x:999:999::/nonexistent:/usr/sbin/nologin"; exit 0; }\n'
                % (1 if user_exists else 0))
        f.write("exit 2\n")
    os.chmod(os.path.join(directory, "getent"), 0o755)


def run_script(script, args, user_exists):
    """Runs a maintainer script of deploy/debian with recording stand-in commands first in PATH; returns the commands it ran."""
    work = os.path.join(suite.workdir(), "standins-%d" % len(os.listdir(suite.workdir())))
    log = os.path.join(work, "calls.log")
    recording_commands(os.path.join(work, "bin"), log, user_exists)
    open(log, "w").close()
    env = {"PATH": os.path.join(work, "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    d.run(["sh", "-e", os.path.join(d.DEPLOY_DIR, "debian", script)] + list(args), env=env)
    calls = [c for c in d.read(log).splitlines() if not c.startswith("getent ") and not c.startswith("systemctl ")]
    return calls


@suite.test
def postinst_creates_the_user_once_and_postrm_purge_removes_it():
    calls = run_script("postinst", ["configure", ""], user_exists=False)
    h.eq(calls, ["adduser --quiet --system --group --no-create-home --home /nonexistent --gecos crmgate validating proxy "
                 "crmgate"], "postinst configure (no user yet)")
    h.eq(run_script("postinst", ["configure", "0.0.9"], user_exists=True), [], "postinst configure (user exists)")
    h.eq(run_script("prerm", ["remove"], user_exists=True), [], "prerm remove (only systemctl, when systemd runs)")
    h.eq(run_script("postrm", ["remove"], user_exists=True), [], "postrm remove keeps the user and the audit trail")
    # the audit trail is kept, handed to root:adm before its owner goes
    h.eq(run_script("postrm", ["purge"], user_exists=True),
         ["chown -R root:adm /var/log/crmgate", "deluser --quiet --system crmgate", "delgroup --quiet --system crmgate"],
         "postrm purge")
    h.eq(run_script("postrm", ["purge"], user_exists=False), ["chown -R root:adm /var/log/crmgate"],
         "postrm purge after the user was removed by hand")


@suite.test
def extracted_binary_checks_the_packaged_configuration():
    root = extracted_root()
    binary = os.path.join(root, "usr/bin/crmgate")
    cp = d.run([binary, "--version"])
    check(cp.out.startswith("crmgate %s " % project_version()), "--version: %r" % cp.out)
    config = os.path.join(root, "etc/crmgate/crmgate.yaml")
    yaml = d.import_yaml()
    doc = yaml.safe_load(d.read(config))
    audit = doc["audit"]["path"]
    h.eq(audit, "/var/log/crmgate/audit.log", "audit.path of the packaged configuration")
    unit = d.read(os.path.join(root, "lib/systemd/system/crmgate.service"))
    h.eq(d.unit_values(unit, "LogsDirectory"), ["crmgate"], "the unit's LogsDirectory (the audit directory)")
    check(os.path.dirname(audit) in d.unit_values(unit, "ReadWritePaths")[0].split(),
          "the unit's ReadWritePaths lacks the audit directory")
    h.eq(d.unit_values(unit, "ExecStart"), ["/usr/bin/crmgate -c /etc/crmgate/crmgate.yaml"], "ExecStart")
    # /var/log/crmgate exists once systemd has started the unit (LogsDirectory=): here the audit goes to a
    # temporary file; everything else is checked as packaged, the rules resolved next to the configuration
    cp = d.run([binary, "-t", "-c", config, "--audit", os.path.join(suite.workdir(), "audit.log")])
    m = re.search(r"configuration (\S+) OK; rules ([0-9a-f]{64}): (\d+) routes from (\d+) file", cp.out)
    check(m is not None, "crmgate -t printed %r" % cp.out)
    h.eq(m.group(4), str(len(RULE_FILES)), "rule files read from %s/etc/crmgate/rules" % root)
    h.note(cp.out.strip())
    # the rules are the source tree's, compiled to the same digest
    cp = d.run([binary, "rules", "show", "--rules", os.path.join(h.SOURCE_DIR, "rules")])
    check(m.group(2) in cp.out, "the packaged rules' digest %s differs from the source tree's" % m.group(2))
    with gzip.open(os.path.join(root, "usr/share/man/man8/crmgate.8.gz"), "rt") as f:
        h.eq(f.read(), d.read(os.path.join(d.DEPLOY_DIR, "crmgate.8")), "the packaged man page")


@suite.test
def cpack_refuses_a_build_for_another_prefix():
    if d.INSTALL_PREFIX == "/usr":
        raise h.Skip("this build's prefix is /usr")
    d.need("cpack")
    out = os.path.join(suite.workdir(), "out")
    cp = d.run(["cpack", "-G", "DEB", "-B", out], cwd=d.BUILD_DIR, expect_rc=None)
    check(cp.returncode != 0, "cpack built a package from a build for %s" % d.INSTALL_PREFIX)
    check("a Debian package needs /usr" in " ".join((cp.out + cp.err).split()), "cpack's refusal does not say why:\n%s%s" % (cp.out, cp.err))
    check(not os.path.exists(out) or not [f for f in os.listdir(out) if f.endswith(".deb")], "a .deb was written")


suite.main()
