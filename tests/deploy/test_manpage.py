"""
The man page crmgate(8) (deploy/crmgate.8, installed compressed as share/man/man8/crmgate.8.gz): groff renders it
without a single warning (-ww), man(1) formats it, and it documents every option the code accepts (each long
option of gateway/main.c and gateway/offline.c, and each short one), every subcommand, signal and exit status,
and the installed files; its version is the binary's.
"""
import os
import re

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

suite = d.h.Suite("manpage")
PAGE = os.path.join(d.DEPLOY_DIR, "crmgate.8")


def rendered():
    d.need("groff")
    cp = d.run(["groff", "-man", "-Tutf8", "-ww", PAGE], env=dict(os.environ, LC_ALL="C.UTF-8"))
    h.eq(cp.err.strip(), "", "groff warnings")
    # plain text: no overstriking or escape sequences, and groff's hyphen (U+2010) as an ASCII one
    text = re.sub(r".\x08", "", cp.out)
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\u2010", "-").replace("\u2212", "-")
    return text


def options_in_source():
    """Long options ({"name", ...} in struct option tables) and short ones (getopt_long's optstring)."""
    longs, shorts = set(), set()
    for name in ("main.c", "offline.c"):
        src = d.read(os.path.join(h.SOURCE_DIR, "gateway", name))
        for table in re.findall(r"struct option options\[\] = \{(.*?)\{NULL, 0, NULL, 0\}\}", src, re.S):
            longs |= set(re.findall(r'\{"([a-z][a-z-]*)",', table))
        for optstring in re.findall(r'getopt_long\(argc, argv, "([^"]*)"', src):
            shorts |= set(c for c in optstring if c != ":")
    check(len(longs) >= 10, "found only %r long options in the source: the pattern is out of date" % sorted(longs))
    return longs, shorts


@suite.test
def renders_without_warnings():
    text = rendered()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "SIGNALS", "FILES", "EXIT STATUS",
                    "SEE ALSO"):
        check(re.search(r"^%s$" % section, text, re.M), "no %s section" % section)
    d.need("man")
    cp = d.run(["man", "-l", "-Tutf8", PAGE], env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    check("crmgate" in cp.out, "man -l rendered nothing useful")


@suite.test
def every_option_signal_and_status_is_documented():
    text = rendered()
    longs, shorts = options_in_source()
    missing = sorted("--" + o for o in longs if not re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(o), text))
    missing += sorted("-" + o for o in shorts if not re.search(r"(?<![\w-])-%s(?![\w-])" % re.escape(o), text))
    check(not missing, "options the code accepts but crmgate(8) does not mention: %s" % ", ".join(missing))
    h.note("documented: %s" % " ".join(sorted("--" + o for o in longs) + sorted("-" + o for o in shorts)))
    for word in ("validate", "rules show", "rules import-describe", "SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT",
                 "/etc/crmgate/crmgate.yaml", "/etc/crmgate/rules/", "/var/log/crmgate/audit.log",
                 "/etc/logrotate.d/crmgate", "crmgate.service", "/-/healthz", "/-/readyz", "/-/metrics"):
        check(word in text, "crmgate(8) does not mention %s" % word)
    status = text[text.index("EXIT STATUS"):text.index("EXAMPLES")]
    for code in ("0", "1", "2"):
        check(re.search(r"^\s+%s\s+\S" % code, status, re.M), "EXIT STATUS does not list %s" % code)


@suite.test
def version_is_the_binarys():
    m = re.search(r'^\.TH CRMGATE 8 "[^"]*" "crmgate ([0-9.]+)"', d.read(PAGE), re.M)
    check(m is not None, "no .TH line with the version")
    cp = h.run_cli(["--version"])
    check(cp.stdout_text.startswith("crmgate %s " % m.group(1)),
          "crmgate(8) says version %s, the binary %r" % (m.group(1), cp.stdout_text))


suite.main()
